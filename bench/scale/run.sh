#!/usr/bin/env bash
# The Dynamic Scaling Engine's benchmark: the predictive policy beside the
# Kubernetes HPA (its baseline) in the same run, replayed on the request-count
# and traffic series of NAB, with the ratios the issue asks for:
# under-provisioned time (predictive / HPA, target <= 0.5) at no more
# replica-hours (predictive / HPA, target <= 1). Run from the repository root:
#   bash bench/scale/run.sh [NAB_DIR] [TARGETS]
# NAB_DIR defaults to ../shared/data/nab; TARGETS (the HPA's target
# utilisation, which the predictive policy's budget follows) to "0.8", e.g.
# "0.7 0.8 0.9" for the sensitivity. About 20 s per target.
set -euo pipefail
nab=${1:-../shared/data/nab}
targets=${2:-0.8}
bin=$(mktemp -d)/phoenix
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/phoenix

series=("$nab/realAWSCloudwatch/elb_request_count_8c0756.csv")
for f in "$nab"/realTraffic/*.csv; do series+=("$f"); done

field() { sed -E "s/.*\"$1\":([^,}]*).*/\1/" <<<"$2"; }
for target in $targets; do
  echo "== HPA target utilisation $target; capacity and start-up derived from each trace's first day"
  printf '%-26s %-10s %9s %10s %9s %8s\n' series policy under rep.hours over.rh actions
  for f in "${series[@]}"; do
    name=$(basename "$f" .csv)
    out=$("$bin" eval scale --trace "$f" --policy all --target "$target" --json)
    hpa=$(sed -n 1p <<<"$out"); pred=$(sed -n 2p <<<"$out")
    for line in "$hpa" "$pred"; do
      printf '%-26s %-10s %9.4f %10.1f %9.1f %8d\n' "$name" "$(field policy "$line" | tr -d '"')" \
        "$(field underprovisioned_fraction "$line")" "$(field replica_hours "$line")" \
        "$(field overprovisioned_replica_hours "$line")" "$(field scaling_actions "$line")"
    done
    awk -v hu="$(field underprovisioned_fraction "$hpa")" -v pu="$(field underprovisioned_fraction "$pred")" \
        -v hr="$(field replica_hours "$hpa")" -v pr="$(field replica_hours "$pred")" 'BEGIN {
      ur = (hu > 0) ? pu / hu : (pu > 0 ? 99 : 0); rr = pr / hr
      printf "%-26s %-10s %9.2f %10.3f   (under-provisioned time <= 0.5 at replica-hours <= 1: %s)\n", "", "ratio", ur, rr, (ur <= 0.5 && rr <= 1) ? "met" : "not met"
    }'
  done
done
