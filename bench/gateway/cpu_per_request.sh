#!/usr/bin/env bash
# CPU time the proxy itself spends per request (perf stat task-clock of its process), fastpath or
# nginx, in front of `fastpath mock --profile zero`, everything pinned to one CPU as in
# overhead.sh. Less sensitive to other load on the machine than wall-clock latency, so it is what
# the gateway's hot-path work is steered by; overhead.sh gives the acceptance figures.
#
# usage: bench/gateway/cpu_per_request.sh            (from the repository root, after a release build)
# knobs: TARGET=fastpath|nginx BIN=build/release/fastpath N=20000 C=1 STREAM=0|1 CPU=0
#        CACHE_ENABLED=false|true (fastpath: the default memory cache on; bench requests are not
#        repeatable, so this measures its bypass path)
#        PROFILE=FILE (also `perf record -g` the proxy into FILE for `perf report -i FILE`)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$(realpath "${BIN:-build/release/fastpath}")"
TARGET="${TARGET:-fastpath}"; N="${N:-20000}"; C="${C:-1}"; CPU="${CPU:-0}"
STREAM_FLAG=""; [ "${STREAM:-0}" = 1 ] && STREAM_FLAG="--stream"
MOCK_PORT="${MOCK_PORT:-19311}"; PROXY_PORT="${PROXY_PORT:-19312}"
command -v perf >/dev/null || { echo "cpu_per_request.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
OUT="$(mktemp -d)"; PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; exit 1; }

taskset -c "$CPU" "$BIN" mock --port "$MOCK_PORT" --profile zero --threads 1 >/dev/null 2>&1 & PIDS+=($!)
wait_port "$MOCK_PORT"
if [ "$TARGET" = nginx ]; then
  mkdir -p "$OUT"/{logs,tmp}
  cat >"$OUT/nginx.conf" <<NGINX
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 10000000; keepalive_timeout 120s;
  client_body_temp_path tmp/client; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 128; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$PROXY_PORT reuseport backlog=4096;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_cache off; proxy_read_timeout 120s; }
  }
}
NGINX
  taskset -c "$CPU" "$(command -v nginx || echo /usr/sbin/nginx)" -p "$OUT" -c "$OUT/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 & PIDS+=($!)
  wait_port "$PROXY_PORT"
  PID="$(pgrep -P "${PIDS[-1]}" | head -1)"  # the worker process
else
  cat >"$OUT/gw.yaml" <<YAML
server: {host: 127.0.0.1, port: $PROXY_PORT, threads: 1}
log: {access_log: false, level: error}
cache: {enabled: ${CACHE_ENABLED:-false}}
providers: [{name: mock, kind: openai, base_url: "http://127.0.0.1:$MOCK_PORT/v1", max_connections: 256}]
models: [{name: gpt-4o, provider: mock}]
YAML
  taskset -c "$CPU" "$BIN" serve --config "$OUT/gw.yaml" >/dev/null 2>&1 & PIDS+=($!)
  wait_port "$PROXY_PORT"
  PID="${PIDS[-1]}"
fi
URL="http://127.0.0.1:$PROXY_PORT/v1"
"$BIN" bench --url "$URL" --model gpt-4o -c "$C" -n 2000 --warmup 100 --max-tokens 20 $STREAM_FLAG --json >/dev/null
perf stat -e task-clock,context-switches -p "$PID" -o "$OUT/stat.txt" & PERF=$!
REC=""; [ -n "${PROFILE:-}" ] && { perf record -q ${PROFILE_ARGS:--g} -p "$PID" -o "$PROFILE" 2>/dev/null & REC=$!; }
sleep 0.2
read -r -a T0 < <(cut -d' ' -f14,15 "/proc/$PID/stat")
taskset -c "$CPU" "$BIN" bench --url "$URL" --model gpt-4o -c "$C" -n "$N" --warmup 0 --max-tokens 20 $STREAM_FLAG --json >"$OUT/bench.json"
read -r -a T1 < <(cut -d' ' -f14,15 "/proc/$PID/stat")
kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
[ -n "$REC" ] && { kill -INT "$REC"; wait "$REC" 2>/dev/null || true; }
USER_TICKS=$((T1[0] - T0[0])); SYS_TICKS=$((T1[1] - T0[1]))
python3 - "$OUT/stat.txt" "$OUT/bench.json" "$N" "$TARGET" "$C" "${STREAM:-0}" "$USER_TICKS" "$SYS_TICKS" <<'PY'
import json, re, sys
t = open(sys.argv[1]).read(); b = json.load(open(sys.argv[2])); n = int(sys.argv[3])
u, s = int(sys.argv[7]), int(sys.argv[8])
ms = float(re.search(r'([\d.,]+)\s+msec task-clock', t).group(1).replace(',', ''))
cs = int(re.search(r'([\d,]+)\s+context-switches', t).group(1).replace(',', ''))
print(f"{sys.argv[4]} c={sys.argv[5]} stream={sys.argv[6]}: {ms*1000/n:.1f} us CPU/request, "
      f"{cs/n:.2f} context switches/request, {b['req_per_s']:.0f} req/s, p50 {b['e2e_us']['p50']:.1f} us, "
      f"user/sys {100*u/max(u+s,1):.0f}/{100*s/max(u+s,1):.0f}%")
PY
