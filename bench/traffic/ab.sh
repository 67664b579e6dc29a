#!/usr/bin/env bash
# The HTTP proxy of two revisions side by side: one backend, one proxy built
# from each revision in front of it, and wrk through each in ABBA order (A
# then B in odd rounds, B then A in even ones, so that neither always runs
# second). Prints each round's requests/s and B/A, then the median of B/A.
# Run from the repository root (needs wrk):
#   bash bench/traffic/ab.sh REV_A REV_B [ROUNDS] [DURATION] [PATH]
# ROUNDS defaults to 12, DURATION (wrk's -d) to 3s, PATH to /who. A
# revision of "." is the working tree as it is.
set -euo pipefail
a_rev=${1:?name two revisions, e.g. HEAD~1 .}
b_rev=${2:?name two revisions, e.g. HEAD~1 .}
rounds=${3:-12}
duration=${4:-3s}
path=${5:-/who}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  git worktree remove --force "$tmp/wt-a" 2>/dev/null || true
  git worktree remove --force "$tmp/wt-b" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

build() { # rev out
  if [[ $1 == . ]]; then
    go build -o "$2" ./bench/traffic
  else
    git worktree add --detach -q "$3" "$1"
    (cd "$3" && go build -o "$2" ./bench/traffic)
  fi
}
build "$a_rev" "$tmp/a" "$tmp/wt-a"
build "$b_rev" "$tmp/b" "$tmp/wt-b"

source "$(dirname "$0")/procs.sh"
start backend _ "$tmp/backend.out" "$tmp/a" backend -name b
start proxy_a _ "$tmp/a.out" "$tmp/a" proxy -backend "b=http://$backend"
start proxy_b _ "$tmp/b.out" "$tmp/b" proxy -backend "b=http://$backend"

rps() { wrk -t2 -c64 -d"$duration" "http://$1$path" | awk '/Requests\/sec/{print $2}'; }
ratios=()
for r in $(seq "$rounds"); do
  if (( r % 2 )); then a=$(rps "$proxy_a"); b=$(rps "$proxy_b"); else b=$(rps "$proxy_b"); a=$(rps "$proxy_a"); fi
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b/a}')
  ratios+=("$ratio")
  echo "round $r: $a_rev $a req/s, $b_rev $b req/s, B/A $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$rounds" '{v[NR]=$1} END {
  m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
  printf "median B/A over %d rounds: %.3f\n", n, m }'
