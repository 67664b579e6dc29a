// Command telemetry benchmarks Phoenix's Telemetry Collector:
//
//	go run ./bench/telemetry rw          # remote-write ingestion, side by side with Debian's Prometheus
//	go run ./bench/telemetry latency     # sample arrival to updated risk, 1,000 components x 20 series every 10 s
//
// rw starts, in turn, Debian's Prometheus server as a remote-write receiver
// (--web.enable-remote-write-receiver) and Phoenix's push chain (the
// remote-write handler, the ingestion limits, the component view and the
// tsdb store, feeding the predictive engine, as the daemon wires them),
// each as its own process on this machine, and sends each the same
// generated remote-write load with client_golang's remote-write client:
// the same series, batches and concurrent senders, for the same time, in
// interleaved rounds. It reports accepted samples per second, peak and
// final resident memory and the server's CPU per million samples, with
// Phoenix/Prometheus ratios.
//
// latency runs a farm process exposing 1,000 components' /metrics (each a
// Prometheus Go client registry with 20 series) and, in this process, the
// scraper (every 10 s, storing raw series and signals in the tsdb store)
// feeding predict.Engine; for every sample it measures the time from the
// start of its scrape to the component's risk computed with it, and the
// CPU this process used over the measured window.
//
// serve and farm are the processes the benchmarks start.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: telemetry rw|latency|serve|farm [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "rw":
		err = rwCmd(ctx, args[1:])
	case "latency":
		err = latencyCmd(ctx, args[1:])
	case "serve":
		err = serveCmd(ctx, args[1:])
	case "farm":
		err = farmCmd(ctx, args[1:])
	default:
		err = fmt.Errorf("unknown command %q: use rw, latency, serve or farm", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "telemetry bench:", err)
		return 1
	}
	return 0
}
