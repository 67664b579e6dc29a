#!/usr/bin/env bash
# Runs the dependency mapper's benchmark: Phoenix against Jaeger over the
# same spans, and Phoenix's memory under the worst input. It builds Jaeger
# v2 (all-in-one, from the module in ./jaeger) first: that is a large build
# (several minutes cold). Arguments go to the benchmark (see -help), e.g.
#   bench/depmap/run.sh -requests 40000 -rounds 3
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${JAEGER_BIN:-}"
if [[ -z "$bin" ]]; then
  bin="$here/.build/jaeger"
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$here/.build"
    echo "building jaeger (once) ..." >&2
    (cd "$here/jaeger" && go build -o "$bin" github.com/jaegertracing/jaeger/cmd/jaeger)
  fi
fi
cd "$here"
go build -o .build/depmap-bench .
exec .build/depmap-bench -jaeger "$bin" "$@"
