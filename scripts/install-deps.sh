#!/usr/bin/env bash
# Installs every build, test and run dependency of fastpath from Debian 12 (bookworm) packages and
# the npm registry. Idempotent: a quick no-op when everything is present.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl curl python3
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsimdjson-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev
  liblmdb-dev libhiredis-dev libhnswlib-dev
  redis-server clang libclang-rt-14-dev
  nodejs
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm ships with the nodesource nodejs package on some machines and as a separate Debian package
# on others.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends npm
fi

# Test clients (the official openai package) are installed from the lockfile in tests/clients.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$here/tests/clients/package.json" ] && [ ! -d "$here/tests/clients/node_modules/openai" ]; then
  (cd "$here/tests/clients" && npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent)
fi
exit 0
