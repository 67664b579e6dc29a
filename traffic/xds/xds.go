package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/traffic"
)

// Config is the xDS server's configuration.
type Config struct {
	Listen string // address to serve gRPC on, default "127.0.0.1:0"
	// EnvoyListeners gives, per component, the address Envoy should listen
	// on for it ("0.0.0.0:10000"); a component without one is served to
	// Envoy as a cluster only.
	EnvoyListeners map[phoenix.ComponentID]string
	Logger         *slog.Logger          // nil discards
	Registerer     prometheus.Registerer // nil: no metrics are registered
}

// The node classes snapshots are kept for.
const (
	classGRPC  = "grpc"
	classEnvoy = "envoy"
)

// nodeClass tells proxyless gRPC clients from Envoy by the user agent the
// node reports: gRPC wants API listeners, Envoy socket listeners.
type nodeClass struct{}

var _ cachev3.NodeHash = nodeClass{}

func (nodeClass) ID(n *core.Node) string {
	if strings.HasPrefix(n.GetUserAgentName(), "gRPC") {
		return classGRPC
	}
	return classEnvoy
}

// Server serves the routes of every component it is told about.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	cache   cachev3.SnapshotCache
	envoyAt map[phoenix.ComponentID]netip.AddrPort
	metrics *metrics

	mu      sync.Mutex
	routes  map[phoenix.ComponentID]componentRoute
	version uint64
}

// New checks cfg and binds the listener, so Addr is known before Run.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	envoyAt := map[phoenix.ComponentID]netip.AddrPort{}
	var errs []error
	for c, a := range cfg.EnvoyListeners {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("EnvoyListeners[%s] %q: write ip:port, such as 0.0.0.0:10000", c, a))
			continue
		}
		envoyAt[c] = ap
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("xds config: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("xds metrics: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("xds listen: %w", err)
	}
	lg := cfg.Logger.With("part", "xds")
	return &Server{
		cfg: cfg, log: lg, ln: ln, envoyAt: envoyAt, metrics: m,
		cache:  cachev3.NewSnapshotCache(true, nodeClass{}, cacheLogger(lg)),
		routes: map[phoenix.ComponentID]componentRoute{},
	}, nil
}

// Addr is the address the server listens on: the xds_servers entry of a
// client's bootstrap.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close releases the listener of a server whose Run was never called.
func (s *Server) Close() error { return s.ln.Close() }

// Run serves xDS until ctx ends. Streams are cut when it ends: clients keep
// their last configuration and reconnect.
func (s *Server) Run(ctx context.Context) error {
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			s.metrics.streams.Inc()
			return nil
		},
		StreamClosedFunc: func(int64, *core.Node) { s.metrics.streams.Dec() },
		StreamRequestFunc: func(id int64, req *discovery.DiscoveryRequest) error {
			if d := req.GetErrorDetail(); d != nil {
				s.metrics.nacks.Inc()
				s.log.Warn("xds update rejected by a client", "node", req.GetNode().GetId(), "type", req.GetTypeUrl(),
					"version", req.GetVersionInfo(), "reason", d.GetMessage())
			}
			return nil
		},
	}
	xs := serverv3.NewServer(ctx, s.cache, cb)
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, xs)

	served := make(chan error, 1)
	go func() { served <- gs.Serve(s.ln) }()
	s.log.Info("xds serving", "addr", s.Addr().String())
	select {
	case <-ctx.Done():
		gs.Stop()
		<-served
		return nil
	case err := <-served:
		return fmt.Errorf("xds serve %s: %w", s.Addr(), err)
	}
}

// Update sets a component's route to the backends in c, and publishes a new
// snapshot version to every client. It has the signature of
// traffic.Config.OnRoute. A backend that is not an IP address is refused:
// the route keeps its previous endpoints, and the error is logged.
func (s *Server) Update(c traffic.RouteChange) {
	if err := s.SetRoute(c.Component, c.Protocol, c.Active); err != nil {
		s.log.Error("xds route not updated", "component", string(c.Component), "cause", c.Cause, "err", err)
	}
}

// SetRoute sets a component's route and publishes it; an empty set removes
// the component.
func (s *Server) SetRoute(component phoenix.ComponentID, proto traffic.Protocol, backends []traffic.Backend) error {
	if err := component.Validate(); err != nil {
		return fmt.Errorf("xds route: %w", err)
	}
	eps, names, err := endpointsOf(backends)
	if err != nil {
		s.metrics.updates.WithLabelValues("refused").Inc()
		return fmt.Errorf("xds route %s: %w", component, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(eps) == 0 {
		delete(s.routes, component)
	} else {
		s.routes[component] = componentRoute{protocol: proto, endpoints: eps, names: names}
	}
	return s.publishLocked()
}

func (s *Server) publishLocked() error {
	s.version++
	v := strconv.FormatUint(s.version, 10)
	g, e, err := snapshots(v, s.routes, s.envoyAt)
	if err != nil {
		s.metrics.updates.WithLabelValues("refused").Inc()
		return err
	}
	ctx := context.Background()
	if err := s.cache.SetSnapshot(ctx, classGRPC, g); err != nil {
		return fmt.Errorf("xds set snapshot: %w", err)
	}
	if err := s.cache.SetSnapshot(ctx, classEnvoy, e); err != nil {
		return fmt.Errorf("xds set snapshot: %w", err)
	}
	s.metrics.updates.WithLabelValues("ok").Inc()
	s.metrics.version.Set(float64(s.version))
	s.log.Info("xds snapshot published", "version", v, "components", len(s.routes))
	return nil
}

// Version is the number of the snapshot served now.
func (s *Server) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// cacheLogger adapts slog to go-control-plane's printf-style logger.
func cacheLogger(l *slog.Logger) log.Logger {
	at := func(level slog.Level) func(string, ...any) {
		return func(format string, args ...any) {
			l.Log(context.Background(), level, fmt.Sprintf(format, args...))
		}
	}
	return log.LoggerFuncs{DebugFunc: at(slog.LevelDebug), InfoFunc: at(slog.LevelDebug), WarnFunc: at(slog.LevelWarn), ErrorFunc: at(slog.LevelError)}
}

type metrics struct {
	version prometheus.Gauge
	updates *prometheus.CounterVec
	nacks   prometheus.Counter
	streams prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "phoenix_xds_snapshot_version", Help: "Version of the xDS snapshot served."}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phoenix_xds_updates_total", Help: "Route updates by result (ok, refused)."}, []string{"result"}),
		nacks:   prometheus.NewCounter(prometheus.CounterOpts{Name: "phoenix_xds_nacks_total", Help: "Updates a client rejected."}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "phoenix_xds_streams", Help: "Open xDS streams."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.version, m.updates, m.nacks, m.streams} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
