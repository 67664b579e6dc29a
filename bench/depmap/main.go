// Command depmap-bench measures Phoenix's dependency mapper against an
// anchor over the same spans, side by side in one run:
//
//   - ingestion: the generated shop's spans (depmaptest.Shop), as OTLP/HTTP
//     protobuf export requests, sent by the same concurrent clients to
//     Phoenix's receiver and to Jaeger's (all-in-one, in-memory storage),
//     timed until each has taken every span; the ratio is Phoenix's spans/s
//     over the anchor's;
//   - edges: Phoenix's graph against the dependencies Jaeger computes from
//     the same traces (its memory store's parent/child links), against the
//     known topology;
//   - memory: Phoenix's heap under the worst input (every span a new
//     service with a new peer, no span ever pairing), against the bound.
//
// The OpenTelemetry Collector's servicegraph connector, the intended
// anchor, is not served by this machine's module proxy (every version
// tried was refused); Jaeger is the other reference implementation of
// service dependencies from spans, and the one whose rule the issue cites.
//
// Run it with ./run.sh, which builds Jaeger first.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/phoenixsre/phoenix/depmap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx))
}

func run(ctx context.Context) int {
	var (
		requests = flag.Int("requests", 40000, "shop requests to generate (about 15 spans each)")
		batch    = flag.Int("batch", 512, "spans per export request (the OTel SDK's default batch)")
		clients  = flag.Int("clients", 4, "concurrent exporting clients")
		rounds   = flag.Int("rounds", 3, "rounds per receiver; the median is reported")
		jaeger   = flag.String("jaeger", "", "the jaeger binary; empty skips the anchor")
		memSpans = flag.Int("mem-spans", 4_000_000, "spans of the worst-case input for the memory bound")
		maxIndex = flag.Int("max-index", 0, "depmap.Options.MaxIndex for the memory bound (0: the default)")
		maxPend  = flag.Int("max-pending", 0, "depmap.Options.MaxPending for the memory bound (0: the default)")
		maxEdges = flag.Int("max-edges", 0, "depmap.Options.MaxEdges for the memory bound (0: the default)")
	)
	flag.Parse()
	fmt.Printf("# depmap benchmark, %s, GOMAXPROCS=%d, %s\n\n", time.Now().UTC().Format(time.DateTime), runtime.GOMAXPROCS(0), runtime.Version())

	w, err := newWorkload(*requests, *batch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		return 1
	}
	fmt.Printf("workload: %d spans in %d OTLP/HTTP protobuf requests of %d spans (%.1f MB), %d clients, median of %d rounds\n\n",
		w.spans, len(w.bodies), *batch, float64(w.bytes)/1e6, *clients, *rounds)

	ph, err := benchPhoenix(ctx, w, *clients, *rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "phoenix:", err)
		return 1
	}
	var jr *result
	if *jaeger != "" {
		if jr, err = benchJaeger(ctx, *jaeger, w, *clients, *rounds); err != nil {
			fmt.Fprintln(os.Stderr, "jaeger:", err)
			return 1
		}
	}
	report(w, ph, jr)

	mem, err := worstCaseMemory(*memSpans, depmap.Options{MaxIndex: *maxIndex, MaxPending: *maxPend, MaxEdges: *maxEdges})
	if err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		return 1
	}
	mem.print()
	return 0
}
