#!/usr/bin/env bash
# Every NAB series (the data files, not reference-results/) replayed under
# the HPA and the predictive policy, one tab-separated line per series:
#   series hpa_under pred_under under_ratio replica_hours_ratio
# so that two builds can be compared line by line (join on the first field).
# Run from the repository root:
#   bash bench/scale/all.sh [NAB_DIR] [TARGET] [BINARY]
# NAB_DIR defaults to ../shared/data/nab, TARGET to 0.8; BINARY, if given,
# is used instead of building ./cmd/phoenix. About 1 s per series, but
# ec2_network_in_5abac7 takes about 7 s (its spikes make the replay simulate
# tens of thousands of replicas); series that cannot be replayed (negative
# values) get a line "error: ...".
set -euo pipefail
nab=${1:-../shared/data/nab}
target=${2:-0.8}
bin=${3:-}
if [[ -z $bin ]]; then
  bin=$(mktemp -d)/phoenix
  build=$(dirname "$bin")
  go build -o "$bin" ./cmd/phoenix
fi
err=$(mktemp)
trap 'rm -rf "$err" ${build:+"$build"}' EXIT
field() { sed -E "s/.*\"$1\":([^,}]*).*/\1/" <<<"$2"; }
find "$nab" -name '*.csv' -not -path '*/reference-results/*' | sort | while read -r f; do
  name=${f#"$nab"/}
  name=${name%.csv}
  if ! out=$("$bin" eval scale --trace "$f" --policy all --target "$target" --json 2>"$err"); then
    printf '%s\terror: %s\n' "$name" "$(tail -1 "$err")"
    continue
  fi
  hpa=$(sed -n 1p <<<"$out")
  pred=$(sed -n 2p <<<"$out")
  awk -v n="$name" -v hu="$(field underprovisioned_fraction "$hpa")" -v pu="$(field underprovisioned_fraction "$pred")" \
    -v hr="$(field replica_hours "$hpa")" -v pr="$(field replica_hours "$pred")" 'BEGIN {
    ur = (hu > 0) ? pu / hu : (pu > 0 ? 99 : 1)
    printf "%s\t%.5f\t%.5f\t%.3f\t%.3f\n", n, hu, pu, ur, pr / hr
  }'
done
