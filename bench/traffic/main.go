// Command traffic benchmarks Phoenix's traffic switcher, each figure side by
// side with its baseline, HAProxy (Debian's package) on the same machine and
// load:
//
//	go run ./bench/traffic failover -fault kill    # also: stop (SIGSTOP), cut (network, needs root)
//	go run ./bench/traffic overhead                # throughput and p99 against HAProxy, with wrk
//
// failover sends a steady open-loop load (default 2,000 requests/s, GETs and
// idempotent PUTs) through the proxy to a primary backend process, breaks
// the primary, and reports failed requests and the time from the fault to
// the first request served by the standby. Phoenix's proxy is run with a
// 200 ms health interval and switched by a stand-in for the control loop
// when traffic.Confirmation confirms the failure; HAProxy gets the same
// check interval with the standby as a backup server, retries and
// redispatch. overhead runs wrk against the backend directly, through
// HAProxy and through Phoenix's proxy (each proxy its own process), in
// interleaved rounds, and reports medians and ratios.
//
// The backend and proxy subcommands are the processes the benchmarks start.
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
		fmt.Fprintln(os.Stderr, "usage: traffic failover|overhead|backend|proxy [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "failover":
		err = failoverCmd(ctx, args[1:])
	case "overhead":
		err = overheadCmd(ctx, args[1:])
	case "backend":
		err = backendCmd(ctx, args[1:])
	case "proxy":
		err = proxyCmd(ctx, args[1:])
	default:
		err = fmt.Errorf("unknown command %q: use failover, overhead, backend or proxy", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "traffic bench:", err)
		return 1
	}
	return 0
}
