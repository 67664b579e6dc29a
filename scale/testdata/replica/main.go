// Command replica is the replica the scaling tests run, as a process and
// as a container: a server with a finite capacity, as a worker-pool server
// is. --workers requests are served at a time, each for --work, and the
// others queue, so its latency grows with its load, which is what a scaler
// must stay ahead of. (The example shop's services have no such limit:
// their latency does not depend on their load.) GET /healthz answers at
// once. It drains in-flight requests on SIGTERM. The tests build it
// statically (CGO_ENABLED=0) so that it also runs FROM scratch.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("replica", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	workers := fs.Int("workers", 2, "requests served at once")
	work := fs.Duration("work", 25*time.Millisecond, "time one request takes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	slots := make(chan struct{}, *workers)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(*work)
		<-slots
		io.WriteString(w, "done\n")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
