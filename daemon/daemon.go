package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/api"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/control"
	"github.com/phoenixsre/phoenix/depmap"
	"github.com/phoenixsre/phoenix/predict"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/docker"
	"github.com/phoenixsre/phoenix/provider/kubernetes"
	"github.com/phoenixsre/phoenix/provider/process"
	"github.com/phoenixsre/phoenix/store"
	"github.com/phoenixsre/phoenix/telemetry"
	"github.com/phoenixsre/phoenix/traffic/xds"
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
	cfg    config.Config
	log    *slog.Logger
	store  *store.Store
	token  string
	tel    *collector
	engine *predict.Engine
	graph  *depmap.Graph
	ctrl   *control.Controller
	xds    *xds.Server // nil unless xds.listen is set
	obs    *depmap.Observer

	apiLn, otlpLn, grpcLn net.Listener
	apiSrv, otlpSrv       *http.Server
	grpcSrv               *grpc.Server
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
	if d.tel, err = newCollector(cfg, log, reg, o.Now, func(s telemetry.Sample) {
		d.engine.Observe(s.Target.Component, s.Time, s.Values)
	}); err != nil {
		return nil, err
	}
	if cfg.XDS.Listen != "" {
		if d.xds, err = xds.New(xds.Config{Listen: cfg.XDS.Listen, EnvoyListeners: cfg.XDS.EnvoyListeners,
			Logger: log.With("part", "xds"), Registerer: reg}); err != nil {
			return nil, fmt.Errorf("xds: %w", err)
		}
	}

	prov, exe := o.Provider, o.Executable
	if prov == nil {
		if prov, exe, err = newProvider(ctx, cfg, o, reg); err != nil {
			return nil, err
		}
	}
	deps := control.Deps{
		Config: cfg, Store: d.store, Provider: prov, Risks: d.engine, Graph: d.graph, Targets: d.tel.targeter(),
		Silence: d.tel.silence, History: d.tel.store, Executable: exe, Logger: log.With("part", "control"), Registerer: reg, Now: o.Now,
	}
	if d.xds != nil {
		deps.OnRoute = d.xds.Update
	}
	// Passive discovery: each connection a proxy accepts is resolved to the
	// component whose process holds the client socket (on this host), and
	// becomes an edge even if that component sends no spans.
	pids, err := depmap.NewListenerPIDs(func() map[netip.AddrPort]phoenix.ComponentID { return d.ctrl.ListenAddrs() }, "", 10*time.Second)
	if err != nil {
		return nil, err
	}
	resolver, err := depmap.NewProcResolver(pids, "")
	if err != nil {
		return nil, err
	}
	if d.obs, err = depmap.NewObserver(depmap.ObserverOptions{Graph: d.graph, Resolver: resolver,
		Logger: log.With("part", "discovery"), Registerer: reg}); err != nil {
		return nil, err
	}
	deps.OnConnection = func(c phoenix.ComponentID, remote netip.AddrPort) { d.obs.Observe(c, remote) }
	d.ctrl, err = control.New(deps)
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
	if err := d.listenReceivers(); err != nil {
		return nil, err
	}
	return d, nil
}

// listenReceivers binds the listeners other programs push telemetry to:
// OTLP over HTTP (spans and metrics), Prometheus remote-write, and OTLP over
// gRPC. All need the daemon's token.
func (d *Daemon) listenReceivers() error {
	var err error
	r := d.cfg.Receivers
	if r.OTLPHTTP.Listen != "" {
		if d.otlpLn, err = net.Listen("tcp", r.OTLPHTTP.Listen); err != nil {
			return fmt.Errorf("receivers.otlp_http.listen %s: %w", r.OTLPHTTP.Listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/traces", api.RequireToken(d.token, depmap.NewOTLPHandler(d.graph, depmap.HandlerOptions{Logger: d.log.With("part", "otlp")})))
		mux.Handle("/v1/metrics", api.RequireToken(d.token, d.tel.otlp))
		mux.Handle("/api/v1/write", api.RequireToken(d.token, d.tel.remoteWrite))
		mux.Handle("/api/v2/spans", api.RequireToken(d.token, depmap.NewZipkinHandler(d.graph, depmap.HandlerOptions{Logger: d.log.With("part", "zipkin")})))
		d.otlpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	if r.OTLPGRPC.Listen != "" {
		if d.grpcLn, err = net.Listen("tcp", r.OTLPGRPC.Listen); err != nil {
			return fmt.Errorf("receivers.otlp_grpc.listen %s: %w", r.OTLPGRPC.Listen, err)
		}
		opts := append(d.tel.otlp.GRPCServerOptions(), grpc.ChainUnaryInterceptor(requireTokenGRPC(d.token)))
		d.grpcSrv = grpc.NewServer(opts...)
		d.tel.otlp.RegisterGRPC(d.grpcSrv)
		depmap.RegisterOTLPGRPC(d.grpcSrv, d.graph, depmap.GRPCOptions{Token: d.token, Logger: d.log.With("part", "otlp-grpc")})
	}
	return nil
}

// requireTokenGRPC is api.RequireToken for gRPC: the call's "authorization"
// metadata must be "Bearer <token>".
func requireTokenGRPC(token string) grpc.UnaryServerInterceptor {
	want := []byte("Bearer " + token)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, got := range md.Get("authorization") {
			if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
				return next(ctx, req)
			}
		}
		return nil, status.Error(codes.Unauthenticated, "missing or invalid authorization: Bearer <token> (the daemon's token file)")
	}
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
	case "kubernetes":
		k := cfg.Secondary.Kubernetes
		cli, _, err := kubernetes.NewClient(k.Kubeconfig, k.Context)
		if err != nil {
			return nil, "", fmt.Errorf("secondary.kubernetes: %w", err)
		}
		p, err := kubernetes.New(kubernetes.Config{Client: cli, Namespace: k.Namespace, Owner: k.Owner, Image: k.Image,
			Port: int32(k.Port), DataPath: k.DataPath, StorageClass: k.StorageClass, ServiceType: corev1.ServiceType(k.ServiceType),
			NodeAddress: k.NodeAddress, Logger: log, Registerer: reg})
		// {phoenix} is where Phoenix's own images keep it.
		return p, docker.ImageExecutable, err
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
	if d.tel.scraper != nil {
		wg.Go(func() { fail(d.tel.scraper.Run(ctx)) })
	}
	if d.tel.source != nil {
		wg.Go(func() { fail(d.tel.source.Run(ctx)) })
	}
	if d.xds != nil {
		wg.Go(func() { fail(d.xds.Run(ctx)) })
	}
	wg.Go(func() { fail(d.obs.Run(ctx)) })
	wg.Go(func() { fail(d.ctrl.Run(ctx)) })
	wg.Go(func() { fail(d.apiSrv.Serve(d.apiLn)) })
	if d.otlpSrv != nil {
		wg.Go(func() { fail(d.otlpSrv.Serve(d.otlpLn)) })
	}
	if d.grpcSrv != nil {
		wg.Go(func() { fail(d.grpcSrv.Serve(d.grpcLn)) })
	}
	d.log.Info("phoenix running", "api", d.APIAddr(), "otlp", d.OTLPAddr(), "components", len(d.cfg.Components), "token_file", d.cfg.API.TokenFile)
	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = d.apiSrv.Shutdown(shutdownCtx)
	if d.otlpSrv != nil {
		_ = d.otlpSrv.Shutdown(shutdownCtx)
	}
	if d.grpcSrv != nil {
		d.grpcSrv.GracefulStop()
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
	if d.grpcLn != nil {
		d.grpcLn.Close()
	}
	if d.xds != nil {
		d.xds.Close()
	}
	if d.tel != nil {
		d.tel.store.Close()
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
