#!/usr/bin/env bash
# Puts the default local model at models/stories260K.gguf: copied from ../shared/models when it is
# there (offline path, used by tests and CI), else downloaded from its public source.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/stories260K.gguf
[ -f "$dest" ] && exit 0
mkdir -p models
if [ -f ../shared/models/stories260K.gguf ]; then
  cp ../shared/models/stories260K.gguf "$dest"
  exit 0
fi
url="${FASTPATH_MODEL_URL:-https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf}"
echo "fetch-model: downloading $url"
curl -fL --retry 3 -o "$dest.tmp" "$url" && mv "$dest.tmp" "$dest"
