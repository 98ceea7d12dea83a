#!/usr/bin/env bash
# Usage: FP=build/release/fastpath bench/cache/cache_bench.sh  (prints one RESULT line per run; see docs/bench/cache.md)
# cache benchmarks: gateway (fastpath serve) in front of fastpath mock; bench = fastpath bench
set -u
FP=${FP:-build/release/fastpath}
echo "RESULT start commit=$(git rev-parse --short HEAD 2>/dev/null) load=$(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%FT%TZ)"
WORK=${WORK:-/tmp/fp-cache-bench}; mkdir -p $WORK
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
MZ=$(free_port); MG=$(free_port)
$FP mock --port $MZ --profile zero --threads 1 > /dev/null 2>&1 & PIDS="$!"
$FP mock --port $MG --profile gpt-4o --threads 1 > /dev/null 2>&1 & PIDS="$PIDS $!"
RDIR=$WORK/redis; mkdir -p $RDIR; rm -f $RDIR/r.sock
redis-server --port 0 --unixsocket $RDIR/r.sock --save '' --appendonly no --dir $RDIR --daemonize yes --pidfile $RDIR/pid --logfile $RDIR/log
sleep 0.5
start_gw() { # $1 = cache yaml
  GP=$(free_port)
  cat > $WORK/gw.yaml <<Y
server: {host: 127.0.0.1, port: $GP, threads: 2}
log: {access_log: false, level: error}
providers:
  - {name: zero, kind: openai, base_url: "http://127.0.0.1:$MZ/v1", max_connections: 256}
  - {name: g4o, kind: openai, base_url: "http://127.0.0.1:$MG/v1", max_connections: 256}
models:
  - {name: zero, provider: zero}
  - {name: gpt-4o, provider: g4o}
cache: $1
Y
  $FP serve --config $WORK/gw.yaml > $WORK/gw.log 2>&1 & GWPID=$!
  for i in $(seq 1 100); do curl -s http://127.0.0.1:$GP/health > /dev/null && break; sleep 0.05; done
}
stop_gw() { kill $GWPID; wait $GWPID 2>/dev/null; }
hitfile=$WORK/hit.jsonl
echo '{"model":"zero","messages":[{"role":"user","content":"What is the capital of France?"}],"temperature":0,"max_tokens":32}' > $hitfile
missfile=$WORK/bypass.jsonl
echo '{"model":"zero","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":32}' > $missfile
bench() { # url model file conc stream
  local s=""; [ "$5" = 1 ] && s="--stream"
  $FP bench --url http://127.0.0.1:$1/v1 --model $2 --prompts $3 -c $4 -n $6 --warmup 50 $s --threads 2 --json 2>/dev/null
}
for layer in memory disk redis; do
  case $layer in
    memory) start_gw "{}";;
    disk) rm -rf $WORK/disk; start_gw "{memory_bytes: 0, disk_path: $WORK/disk}";;
    redis) start_gw "{memory_bytes: 0, redis_url: \"unix://$RDIR/r.sock\"}";;
  esac
  for st in 0 1; do for c in 1 32; do
    echo "RESULT layer=$layer stream=$st c=$c $(bench $GP zero $hitfile $c $st 2000)"
  done; done
  stop_gw
done
# baselines: the gateway without a cache hit (bypass) and the mock directly
start_gw "{}"
for st in 0 1; do for c in 1 32; do
  echo "RESULT layer=bypass stream=$st c=$c $(bench $GP zero $missfile $c $st 2000)"
  echo "RESULT layer=direct stream=$st c=$c $(bench $MZ zero $missfile $c $st 2000)"
done; done
stop_gw
# 50% repeated questions against the gpt-4o profile, cache on vs off
python3 - <<P
import json, random
random.seed(1)
qs=[f"Question number {i}: explain topic {i} briefly." for i in range(200)]
lines=[]
for i in range(200):
    asked = [qs[j] for j in range(0, i, 2)]
    q = qs[i] if i % 2 == 0 or not asked else random.choice(asked)
    lines.append(json.dumps({"model":"gpt-4o","messages":[{"role":"user","content":q}],"temperature":0,"max_tokens":64}))
open('$WORK/half.jsonl','w').write("\n".join(lines)+"\n")
P
start_gw "{}"
echo "RESULT workload=half cache=on $($FP bench --url http://127.0.0.1:$GP/v1 --model gpt-4o --prompts $WORK/half.jsonl -c 16 -n 200 --warmup 0 --stream --threads 2 --json 2>/dev/null)"
stop_gw
start_gw "{enabled: false}"
echo "RESULT workload=half cache=off $($FP bench --url http://127.0.0.1:$GP/v1 --model gpt-4o --prompts $WORK/half.jsonl -c 16 -n 200 --warmup 0 --stream --threads 2 --json 2>/dev/null)"
stop_gw
kill $PIDS; kill $(cat $RDIR/pid)
echo "RESULT end load=$(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%FT%TZ)"
