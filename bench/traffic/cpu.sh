#!/usr/bin/env bash
# CPU per request of each process (proxy, backend, wrk) through HAProxy and
# through Phoenix's HTTP proxy, one backend behind both, wrk through each in
# ABBA order (HAProxy then Phoenix in odd rounds, the other way in even
# ones). CPU is read from /proc/PID/stat around each wrk run, wrk's own
# from /usr/bin/time. HAProxy adds the X-Forwarded-* headers Phoenix adds, so
# that the backend gets the same requests from both. Run from the repository
# root (needs wrk, haproxy):
#   bash bench/traffic/cpu.sh [ROUNDS] [DURATION]
# ROUNDS defaults to 6, DURATION (wrk's -d) to 4s.
set -euo pipefail
rounds=${1:-6}
duration=${2:-4s}
for c in wrk haproxy /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "$c is not installed: apt-get install -y wrk haproxy time" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/t" ./bench/traffic

source "$(dirname "$0")/procs.sh"
start backend backend_pid "$tmp/b.out" "$tmp/t" backend -name b
start phoenix phoenix_pid "$tmp/p.out" "$tmp/t" proxy -backend "b=http://$backend"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/haproxy.cfg" <<CFG
global
  maxconn 8000
  nbthread 2
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$port
  option forwardfor
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  server b $backend check inter 200ms fall 3 rise 2
CFG
haproxy -f "$tmp/haproxy.cfg" -db >/dev/null 2>&1 &
pids+=($!)
haproxy_pid=$!
sleep 1

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name addr proxy-pid
  local b0 p0 b1 p1 out
  b0=$(ticks "$backend_pid"); p0=$(ticks "$3")
  out=$({ /usr/bin/time -f "WRKCPU %U %S" wrk -t2 -c64 -d"$duration" "http://$2/who"; } 2>&1)
  b1=$(ticks "$backend_pid"); p1=$(ticks "$3")
  awk -v n="$1" -v hz="$hz" -v b=$((b1 - b0)) -v p=$((p1 - p0)) \
    -v r="$(awk '/requests in/{print $1}' <<<"$out")" -v rps="$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    -v w="$(awk '/WRKCPU/{print $2 + $3}' <<<"$out")" 'BEGIN {
    printf "%-8s %8.0f req/s  CPU per request: proxy %5.1f us  backend %5.1f us  wrk %5.1f us\n", n, rps, p/hz/r*1e6, b/hz/r*1e6, w/r*1e6 }'
}
for r in $(seq "$rounds"); do
  if (( r % 2 )); then
    run haproxy "127.0.0.1:$port" "$haproxy_pid"; run phoenix "$phoenix" "$phoenix_pid"
  else
    run phoenix "$phoenix" "$phoenix_pid"; run haproxy "127.0.0.1:$port" "$haproxy_pid"
  fi
done
