#!/usr/bin/env bash
# Benchmarks of the Predictive Failure Engine, each beside its baseline in
# the same run, with the ratio printed. Run from the repository root:
#   bash bench/predict/run.sh [NAB_DIR]
# NAB_DIR defaults to ../shared/data/nab. About two minutes on one core.
set -euo pipefail
nab=${1:-../shared/data/nab}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== streaming detector and forecasters, points/s on one core (GOMAXPROCS=1)"
GOMAXPROCS=1 go test -run '^$' -bench 'Novelty|HoltWinters|LSTM|SeasonalNaive' -benchtime 3s \
  ./predict/anomaly/ ./predict/forecast/ | tee "$out/bench.txt"
rate() { awk -v b="$1" '$1 ~ b {for (i=1;i<=NF;i++) if ($(i+1)=="points/s") print $i}' "$out/bench.txt" | head -1; }
nov=$(rate BenchmarkNovelty); hw=$(rate BenchmarkHoltWinters); lstm=$(rate BenchmarkLSTM); naive=$(rate BenchmarkSeasonalNaive)
awk -v n="$nov" 'BEGIN {printf "detector: %.0f points/s, %.2fx the 100000 points/s target\n", n, n/100000}'
awk -v h="$hw" -v s="$naive" 'BEGIN {printf "Holt-Winters: %.0f points/s, %.1fx slower than seasonal naive (%.0f)\n", h, s/h, s}'
awk -v l="$lstm" -v h="$hw" 'BEGIN {printf "LSTM: %.0f points/s, %.1fx slower than Holt-Winters\n", l, h/l}'

if [ -f "$nab/windows.json" ]; then
  echo "== NAB score on the shared corpus (published on the same 41 files: CAD OSE 75.89, ARTime 74.60 standard)"
  go run ./cmd/phoenix eval nab --data "$nab"
  echo "== forecasts over the NAB series, 12 steps ahead (Holt-Winters; seasonal naive is the baseline column)"
  go run ./cmd/phoenix eval forecast --data "$nab" --horizon 12 | tail -2
fi
