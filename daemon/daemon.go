package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/api"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/control"
	"github.com/phoenixsre/phoenix/depmap"
	"github.com/phoenixsre/phoenix/predict"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/docker"
	"github.com/phoenixsre/phoenix/provider/process"
	"github.com/phoenixsre/phoenix/store"
	"github.com/phoenixsre/phoenix/telemetry"
)

// Options are what a Daemon needs beside its config.
type Options struct {
	Logger *slog.Logger
	// Executable replaces {phoenix} in replica commands; default: this
	// process's executable (or, on the docker provider, the image's).
	Executable string
	Now        func() time.Time
	// Provider, if set, is used instead of the one the config names (tests,
	// and the demo, which shares one engine between two environments).
	Provider provider.Provider
	// ModuleDir is the source tree a static executable can be built from
	// when the docker provider needs an image and this executable is
	// dynamically linked; empty: this executable or nothing.
	ModuleDir string
}

// Daemon is a running Phoenix: the collector, the engine, the dependency
// mapper, the controller with its proxies, and the HTTP listeners, wired
// from one config. Listeners are bound by New, so their addresses are known
// (and a port conflict reported) before Run.
type Daemon struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	token   string
	scraper *telemetry.Scraper
	engine  *predict.Engine
	graph   *depmap.Graph
	ctrl    *control.Controller

	apiLn, otlpLn net.Listener
	apiSrv        *http.Server
	otlpSrv       *http.Server
}

// New builds a daemon from a validated config. ctx bounds the start-up work
// (on the docker provider, building the replicas' image).
func New(ctx context.Context, cfg config.Config, o Options) (_ *Daemon, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Executable == "" {
		if o.Executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
	}
	log := o.Logger
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	d := &Daemon{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			d.Close() // what was acquired before the failure
		}
	}()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", cfg.StateDir, err)
	}
	if d.token, err = loadOrCreateToken(cfg.API.TokenFile); err != nil {
		return nil, err
	}
	if d.store, err = store.Open(filepath.Join(cfg.StateDir, "phoenix.db")); err != nil {
		return nil, err
	}

	d.engine = predict.NewEngine(predict.Config{
		Horizon:   cfg.Predict.Horizon.D(),
		Window:    cfg.Predict.Window.D(),
		MinPoints: cfg.Predict.MinPoints,
	})
	for _, c := range cfg.Components {
		d.engine.SetLimits(c.Name, limits(c.Limits))
	}
	if d.graph, err = depmap.NewGraph(depmap.Options{Now: o.Now, Logger: log.With("part", "depmap"), Registerer: reg}); err != nil {
		return nil, err
	}
	for _, c := range cfg.Components {
		for _, dep := range c.DependsOn {
			if err := d.graph.AddEdge(c.Name, dep, depmap.SourceStatic); err != nil {
				return nil, fmt.Errorf("components %s: depends_on %s: %w", c.Name, dep, err)
			}
		}
	}
	history := telemetry.NewHistory(cfg.Telemetry.Retention.D(), 0)
	m := cfg.Telemetry.Metrics
	d.scraper = telemetry.NewScraper(telemetry.Config{
		Interval: cfg.Telemetry.ScrapeInterval.D(),
		Timeout:  cfg.Telemetry.ScrapeTimeout.D(),
		Signals: telemetry.SignalMap{Memory: m.Memory, CPU: m.CPU, Disk: m.Disk, Latency: m.Latency,
			Requests: m.Requests, Errors: m.Errors},
		Logger:     log.With("part", "telemetry"),
		Registerer: reg,
		Now:        o.Now,
		OnSample: func(s telemetry.Sample) {
			d.engine.Observe(s.Target.Component, s.Time, s.Values)
		},
	}, history)

	prov, exe := o.Provider, o.Executable
	if prov == nil {
		if prov, exe, err = newProvider(ctx, cfg, o, reg); err != nil {
			return nil, err
		}
	}
	d.ctrl, err = control.New(control.Deps{
		Config: cfg, Store: d.store, Provider: prov, Risks: d.engine, Graph: d.graph, Targets: d.scraper,
		Executable: exe, Logger: log.With("part", "control"), Registerer: reg, Now: o.Now,
	})
	if err != nil {
		return nil, err
	}

	apiHandler, err := api.New(api.Options{Status: d.ctrl, Events: d.store, Graph: d.graph, Switcher: d.ctrl,
		Token: d.token, Gatherer: reg, Logger: log.With("part", "api")})
	if err != nil {
		return nil, err
	}
	if d.apiLn, err = net.Listen("tcp", cfg.API.Listen); err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	d.apiSrv = &http.Server{Handler: apiHandler, ReadHeaderTimeout: 10 * time.Second}
	if cfg.Receivers.OTLPHTTP.Listen != "" {
		if d.otlpLn, err = net.Listen("tcp", cfg.Receivers.OTLPHTTP.Listen); err != nil {
			return nil, fmt.Errorf("receivers.otlp_http.listen %s: %w", cfg.Receivers.OTLPHTTP.Listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/traces", api.RequireToken(d.token, depmap.NewOTLPHandler(d.graph, depmap.HandlerOptions{Logger: log.With("part", "otlp")})))
		d.otlpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return d, nil
}

// newProvider builds the secondary environment's provider the config names,
// and says what {phoenix} means there.
func newProvider(ctx context.Context, cfg config.Config, o Options, reg prometheus.Registerer) (provider.Provider, string, error) {
	log := o.Logger.With("part", "provider")
	switch cfg.Secondary.Provider {
	case "docker":
		dc := cfg.Secondary.Docker
		cli, err := docker.NewClient()
		if err != nil {
			return nil, "", err
		}
		if err := docker.Ping(ctx, cli); err != nil {
			return nil, "", fmt.Errorf("secondary.provider docker: %w", err)
		}
		image := dc.Image
		if image == "" {
			bin, err := docker.StaticBinary(ctx, o.Executable, o.ModuleDir, cfg.StateDir)
			if err != nil {
				return nil, "", fmt.Errorf("secondary.docker.image is empty and no image can be made: %w", err)
			}
			img, err := docker.EnsureImage(ctx, cli, bin, "phoenix")
			if err != nil {
				return nil, "", err
			}
			image = img.Ref
		}
		p, err := docker.New(docker.Config{
			Client: cli, Image: image, Network: dc.Network, Namespace: dc.Namespace, Root: dc.Root,
			Port: dc.Port, DataPath: dc.DataPath, User: dc.User, StopTimeout: dc.StopTimeout.D(),
			Offer: docker.OfferConfig{
				ID: dc.Offer.ID, Zone: dc.Offer.Zone, PricePerHour: dc.Offer.PricePerHour, Performance: dc.Offer.Performance,
				Size:     phoenix.Resources{MilliCPU: dc.Offer.Size.MilliCPU, MemoryBytes: int64(dc.Offer.Size.Memory)},
				Capacity: phoenix.Resources{MilliCPU: dc.Offer.Capacity.MilliCPU, MemoryBytes: int64(dc.Offer.Capacity.Memory)},
			},
			Logger: log, Now: o.Now, Registerer: reg,
		})
		if err != nil {
			return nil, "", err
		}
		return p, docker.ImageExecutable, nil
	default:
		p, err := process.New(process.Config{Root: cfg.Secondary.Process.Root, Host: cfg.Secondary.Process.Host, Logger: log})
		return p, o.Executable, err
	}
}

func limits(l config.Limits) predict.Limits {
	out := predict.Limits{}
	if l.Memory > 0 {
		out[phoenix.SignalMemory] = float64(l.Memory)
	}
	if l.Disk > 0 {
		out[phoenix.SignalDisk] = float64(l.Disk)
	}
	if l.LatencyP99 > 0 {
		out[phoenix.SignalLatency] = l.LatencyP99.D().Seconds()
	}
	if l.ErrorRate > 0 {
		out[phoenix.SignalErrors] = l.ErrorRate
	}
	return out
}

// Run runs every part until ctx ends, then shuts down gracefully: the HTTP
// servers stop accepting and finish in-flight requests, the controller
// stops its streams, the store is closed.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	fail := func(err error) {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			cancel()
		}
	}
	wg.Go(func() { fail(d.scraper.Run(ctx)) })
	wg.Go(func() { fail(d.ctrl.Run(ctx)) })
	wg.Go(func() { fail(d.apiSrv.Serve(d.apiLn)) })
	if d.otlpSrv != nil {
		wg.Go(func() { fail(d.otlpSrv.Serve(d.otlpLn)) })
	}
	d.log.Info("phoenix running", "api", d.APIAddr(), "otlp", d.OTLPAddr(), "components", len(d.cfg.Components), "token_file", d.cfg.API.TokenFile)
	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = d.apiSrv.Shutdown(shutdownCtx)
	if d.otlpSrv != nil {
		_ = d.otlpSrv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	d.Close()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// Close releases what New acquired; Run calls it on the way out.
func (d *Daemon) Close() {
	if d.apiLn != nil {
		d.apiLn.Close()
	}
	if d.otlpLn != nil {
		d.otlpLn.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
}

// APIAddr is the API's bound address.
func (d *Daemon) APIAddr() string { return d.apiLn.Addr().String() }

// OTLPAddr is the OTLP/HTTP receiver's bound address, or "" if disabled.
func (d *Daemon) OTLPAddr() string {
	if d.otlpLn == nil {
		return ""
	}
	return d.otlpLn.Addr().String()
}

// ProxyAddr is the bound address of a component's proxy.
func (d *Daemon) ProxyAddr(c phoenix.ComponentID) string { return d.ctrl.ProxyAddr(c) }

// Token is the API's bearer token.
func (d *Daemon) Token() string { return d.token }

// Store is the daemon's persisted state.
func (d *Daemon) Store() *store.Store { return d.store }

// Controller is the daemon's control loop.
func (d *Daemon) Controller() *control.Controller { return d.ctrl }

// Graph is the daemon's dependency graph.
func (d *Daemon) Graph() *depmap.Graph { return d.graph }

// loadOrCreateToken reads the API token, creating a random one (0600) if the
// file does not exist. The token itself is never logged.
func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 16 {
			return "", fmt.Errorf("api.token_file %s: the token is shorter than 16 characters; put a long random token there or delete the file to have one made", path)
		}
		return t, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	t := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("api.token_file: %w", err)
	}
	return t, nil
}
