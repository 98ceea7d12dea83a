#!/usr/bin/env bash
# ctest fixture: starts / stops one redis-server for every test that declares
# FIXTURES_REQUIRED redis. It listens on a unix socket and on a free 127.0.0.1 port, both written
# into DIR (DIR/socket, DIR/port, DIR/url). Nothing persists (--save '' --appendonly no).
#   redis_fixture.sh start DIR | stop DIR
set -euo pipefail
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
stop() {
  if [ -f "$dir/redis.pid" ]; then
    pid="$(cat "$dir/redis.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/redis.pid"
  fi
  rm -f "$dir/port" "$dir/socket" "$dir/url"
}
case "$cmd" in
  start)
    stop
    command -v redis-server >/dev/null || { echo "redis-server not installed (scripts/install-deps.sh)"; exit 1; }
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
    sock="$dir/redis.sock"
    rm -f "$sock"
    redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$sock" --unixsocketperm 700 \
      --save '' --appendonly no --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" \
      --logfile "$dir/redis.log" --protected-mode yes
    for _ in $(seq 1 200); do
      if redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG; then
        echo "$port" > "$dir/port"
        echo "$sock" > "$dir/socket"
        echo "unix://$sock" > "$dir/url"
        echo "redis fixture: port $port socket $sock"
        exit 0
      fi
      sleep 0.05
    done
    echo "redis fixture: redis-server did not start"; cat "$dir/redis.log" || true
    exit 1
    ;;
  stop)
    stop
    ;;
  *) echo "usage: $0 start|stop DIR"; exit 2 ;;
esac
