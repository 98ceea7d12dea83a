#!/usr/bin/env bash
# Runs fastpath's tokenizer benchmark and the official npm tiktoken package in the same session,
# one after the other, single thread each. Prints JSON lines and a ratio table.
# usage: bench/tokenizer/run.sh [BUILD_DIR] [RUNS]     (BUILD_DIR default build/release)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build/release}"
runs="${2:-5}"
corpus="$(cd "$root/.." && pwd)/shared/tokenizers/bench-corpus.txt"
if [ ! -d "$here/node/node_modules/tiktoken" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --silent)
fi
out="$(mktemp)"
"$build/bench/tokenizer/tokenizer_bench" --corpus "$corpus" --runs "$runs" --json --split | tee "$out"
node "$here/node/bench.mjs" "$corpus" "$runs" | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (r["encoding"], r["mode"])
fp = {key(r): r for r in rows if r["impl"] == "fastpath"}
npm = {key(r): r for r in rows if r["impl"].startswith("npm")}
split = [r for r in rows if r["impl"].startswith("split:")]
print(f'{"encoding":12} {"mode":10} {"fastpath MB/s":>14} {"npm MB/s":>9} {"ratio":>6} {"fastpath Mtok/s":>16} {"npm Mtok/s":>11} {"ratio (cpu)":>11}')
for k in fp:
    a, b = fp[k], npm.get(k)
    if not b:
        continue
    print(f'{k[0]:12} {k[1]:10} {a["mb_per_s_median"]:14.2f} {b["mb_per_s_median"]:9.2f} '
          f'{a["mb_per_s_median"]/b["mb_per_s_median"]:6.1f} {a["tokens_per_s_median"]/1e6:16.2f} '
          f'{b["tokens_per_s_median"]/1e6:11.2f} {a["mb_per_s_cpu_median"]/b["mb_per_s_cpu_median"]:11.1f}')
for r in split:
    print(f'pre-tokenizer only: {r["encoding"]:12} {r["impl"][6:]:10} {r["mb_per_s_median"]:8.2f} MB/s wall, '
          f'{r["mb_per_s_cpu_median"]:8.2f} MB/s cpu, {r["pieces"]} pieces')
PY
rm -f "$out"
