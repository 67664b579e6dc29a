package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phoenixsre/phoenix/examples/shop/orderlog"
)

// followEvery is how often a standby looks for appended log records.
const followEvery = 20 * time.Millisecond

// server is what every service shares: the mux, metrics, tracing, faults.
type server struct {
	cfg     config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *httpMetrics
	tracing *tracing
	faults  *faults
}

// app registers an application route: traced, measured and subject to
// the latency and errors faults, in that order from the outside, so that
// spans and metrics see the injected delay and failures.
func (s *server) app(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.tracing.handler(pattern, s.metrics.instrument(pattern, s.faults.inject(h))))
}

// plain registers an operational route (/healthz, /metrics, /admin):
// neither traced, measured nor faulted.
func (s *server) plain(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// client is the traced HTTP client for calls to another service. It
// follows no redirects and no proxy, and does not retry.
func (s *server) client() *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = nil
	base.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport:     s.tracing.transport(base),
		Timeout:       s.cfg.upstreamTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// run serves one service until ctx ends, then shuts down gracefully: stop
// accepting, finish in-flight requests, stop the goroutines, flush spans,
// close the store.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	tr, err := newTracing(ctx, cfg)
	if err != nil {
		return err
	}
	shutdownCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	}
	defer func() {
		sctx, cancel := shutdownCtx()
		defer cancel()
		if err := tr.shutdown(sctx); err != nil {
			logger.Warn("flush spans", "err", err)
		}
	}()
	s := &server{
		cfg: cfg, log: logger, mux: http.NewServeMux(),
		metrics: newHTTPMetrics(reg, cfg.dataDir),
		tracing: tr,
		faults:  newFaults(logger, cfg.dataDir, cfg.memoryLimit),
	}
	adm := &admin{token: cfg.adminToken, faults: s.faults, log: logger}
	s.plain("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	s.plain("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.plain("POST /admin/fault", adm.auth(adm.postFault))
	s.plain("GET /admin/fault", adm.auth(adm.getFault))

	var store *orderlog.Store
	switch cfg.kind {
	case kindGateway:
		u, _ := url.Parse(cfg.ordersURL) // validated by parse
		(&gateway{orders: u, client: s.client()}).register(s)
	case kindInventory:
		inventory{}.register(s)
	case kindOrders:
		u, _ := url.Parse(cfg.inventoryURL)
		if cfg.follow {
			store, err = orderlog.OpenFollower(cfg.dataDir, logger)
		} else {
			store, err = orderlog.Open(cfg.dataDir, logger)
		}
		if err != nil {
			return err
		}
		defer func() {
			if err := store.Close(); err != nil {
				logger.Error("close the order log", "err", err)
			}
		}()
		(&orders{store: store, inventory: u, client: s.client(), log: logger}).register(s, adm)
	}
	return s.serve(ctx, store, shutdownCtx)
}

// serve listens, runs the fault driver (and a standby's tailer) beside the
// HTTP server, and drains it when ctx ends.
func (s *server) serve(ctx context.Context, store *orderlog.Store, shutdownCtx func() (context.Context, context.CancelFunc)) error {
	ln, err := net.Listen("tcp", s.cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.listen, err)
	}
	attrs := []any{"addr", ln.Addr().String(), "kind", s.cfg.kind}
	if store != nil {
		st := store.State()
		attrs = append(attrs, "role", st.Role, "records", st.Records, "offset", st.Offset)
	}
	s.log.Info("listening", attrs...)
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.faults.Run(bg) })
	if store != nil && store.Role() == orderlog.Follower {
		wg.Go(func() { _ = store.Follow(bg, followEvery) })
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.log.Info("shutting down")
	sctx, cancel := shutdownCtx()
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("in-flight requests did not finish in time", "err", err)
		_ = srv.Close()
	}
	stop()
	wg.Wait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), serveErr)
	}
	return nil
}
