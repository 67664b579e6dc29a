package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/phoenixsre/phoenix/predict"
	"github.com/phoenixsre/phoenix/telemetry"
)

// serveCmd runs Phoenix's push chain as the daemon wires it: remote-write
// and OTLP receivers, the ingestion limits (defaults), the component view
// feeding the predictive engine, and the tsdb store in -dir. It prints
// "ready URL" once listening and stops on SIGTERM.
func serveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	dir := fs.String("dir", "", "store directory (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := telemetry.OpenStore(telemetry.StoreConfig{Dir: *dir})
	if err != nil {
		return err
	}
	defer store.Close()
	engine := predict.NewEngine(predict.Config{})
	mapper, err := telemetry.NewMapper(telemetry.MappingConfig{
		OnSample: func(s telemetry.Sample) { engine.Observe(s.Target.Component, s.Time, s.Values) },
	}, store)
	if err != nil {
		return err
	}
	limits, err := telemetry.NewLimiter(telemetry.LimitsConfig{}, mapper)
	if err != nil {
		return err
	}
	rw, err := telemetry.NewRemoteWriteHandler(telemetry.RemoteWriteConfig{}, limits)
	if err != nil {
		return err
	}
	otlp, err := telemetry.NewOTLPReceiver(telemetry.OTLPConfig{}, limits)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", rw)
	mux.Handle("/v1/metrics", otlp)
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("ready http://%s\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
