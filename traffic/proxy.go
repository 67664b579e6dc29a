package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors a caller may want to tell apart with errors.Is.
var (
	ErrNoStandby  = errors.New("no standby registered")
	ErrSwitching  = errors.New("a switch is in progress")
	ErrStopped    = errors.New("proxy stopped")
	ErrRunning    = errors.New("proxy already running")
	errAbandoned  = errors.New("abandoned by a switch")
	errSameTarget = errors.New("standby is the active backend")
)

// Proxy is the traffic switcher of one component: an HTTP reverse proxy with
// an active backend and an optional standby.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	rp      *httputil.ReverseProxy
	metrics *metrics
	// transport carries proxied requests to every backend, so keep-alive
	// connections are pooled per backend host; healthTransport dials afresh
	// for every check, so that a check also proves new connections work.
	transport       *http.Transport
	healthTransport *http.Transport
	probe           chan struct{} // cap 1: ask the health loop for a check now
	running         atomic.Bool
	route           atomic.Pointer[route] // what requests read, lock-free
	stats           counters

	mu         sync.Mutex // guards the fields below and targets' health
	active     *target
	standby    *target
	switching  bool
	stopping   bool
	lastSwitch time.Time
}

// route is an immutable view of where requests go. A new one is published
// on every change; changed is closed when this one is replaced, waking the
// requests held on it.
type route struct {
	active, standby *target
	open            bool // requests may go to active now
	switching       bool
	stopping        bool
	changed         chan struct{}
}

// target is a backend as the proxy routes to it.
type target struct {
	backend   Backend
	healthURL string
	prefixed  bool // URL has a path prefix to join request paths to

	inflight atomic.Int64 // attempts sent and not finished (body not closed)
	draining atomic.Bool
	idle     chan struct{} // cap 1: tells a drain that inflight reached zero

	// abandonCtx is cancelled when a switch gives up waiting for this
	// target's in-flight requests; retryable ones are linked to it.
	abandonCtx context.Context
	abandon    context.CancelFunc

	ok, fail5xx, failed, canceled prometheus.Counter // requests by outcome, resolved once

	// guarded by Proxy.mu
	health    hysteresis
	lastErr   string
	lastErrAt time.Time
	lastCheck time.Time
}

type counters struct {
	served, failed, canceled, retries, held, switches atomic.Uint64
	holding                                           atomic.Int64
}

// New checks cfg, binds the listener (so Addr is known before Run) and
// returns a proxy whose traffic goes to active.
func New(cfg Config, active Backend) (*Proxy, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("traffic config: %w", err)
	}
	if err := active.validate(); err != nil {
		return nil, fmt.Errorf("traffic %s: active: %w", cfg.Component, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("traffic %s: listen: %w", cfg.Component, err)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Component)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("traffic %s: metrics: %w", cfg.Component, err)
	}
	p := &Proxy{
		cfg:             cfg,
		log:             cfg.Logger.With("component", string(cfg.Component)),
		ln:              ln,
		metrics:         m,
		transport:       newTransport(cfg.DialTimeout),
		healthTransport: newHealthTransport(cfg.DialTimeout),
		probe:           make(chan struct{}, 1),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    (*forwarder)(p),
		BufferPool:   &bufferPool{},
		ErrorHandler: p.serveError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	p.mu.Lock()
	p.active = p.newTarget(active)
	p.publishLocked()
	p.mu.Unlock()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Close releases the listener of a proxy whose Run was never called (a
// caller that failed to start). After Run has started, end its context
// instead.
func (p *Proxy) Close() error {
	if p.running.Load() {
		return nil
	}
	return p.ln.Close()
}

// Run serves requests and checks backends until ctx ends, then stops
// gracefully: held requests are answered 503, in-flight ones may finish for
// up to DrainTimeout. It returns nil after a stop caused by ctx. Run may be
// called once.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("traffic %s: %w", p.cfg.Component, ErrRunning)
	}
	srv := &http.Server{
		Handler:           p.rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	healthCtx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { p.healthLoop(healthCtx) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(p.ln) }()
	p.log.Info("proxy serving", "addr", p.Addr().String(), "active", p.Active().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("traffic %s: serve %s: %w", p.cfg.Component, p.Addr(), err)
	}
	p.mu.Lock()
	p.stopping = true
	p.publishLocked()
	p.mu.Unlock()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
	if serr := srv.Shutdown(stopCtx); serr != nil {
		p.log.Warn("in-flight requests cut after drain timeout", "timeout", p.cfg.DrainTimeout)
		srv.Close()
	}
	cancel()
	if err == nil {
		<-served // http.ErrServerClosed, now that Shutdown has returned
	}
	stopHealth()
	wg.Wait()
	p.transport.CloseIdleConnections()
	p.healthTransport.CloseIdleConnections()
	p.log.Info("proxy stopped")
	return err
}

// Active returns the backend traffic goes to.
func (p *Proxy) Active() Backend {
	return p.route.Load().active.backend.clone()
}

// Standby returns the registered standby, if any.
func (p *Proxy) Standby() (Backend, bool) {
	t := p.route.Load().standby
	if t == nil {
		return Backend{}, false
	}
	return t.backend.clone(), true
}

// SetStandby registers b as the standby, replacing any other; nil removes
// it. The standby is health-checked but receives no traffic until Switch.
// Registering the current standby again keeps its health history. It fails
// while a switch is in progress.
func (p *Proxy) SetStandby(b *Backend) error {
	if b != nil {
		if err := b.validate(); err != nil {
			return fmt.Errorf("traffic %s: standby: %w", p.cfg.Component, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.switching:
		return fmt.Errorf("traffic %s: set standby: %w", p.cfg.Component, ErrSwitching)
	case b == nil:
		p.dropLocked(p.standby)
		p.standby = nil
	case b.URL.String() == p.active.backend.URL.String():
		return fmt.Errorf("traffic %s: standby %s: %w", p.cfg.Component, b, errSameTarget)
	case p.standby != nil && p.standby.backend.same(*b):
		return nil
	default:
		p.dropLocked(p.standby)
		p.standby = p.newTarget(*b)
		p.log.Info("standby registered", "standby", b.String())
	}
	p.publishLocked()
	return nil
}

func (p *Proxy) newTarget(b Backend) *target {
	b = b.clone()
	health := *b.URL
	health.Path, health.RawPath = joinPath(b.URL, &url.URL{Path: p.cfg.HealthPath})
	ctx, cancel := context.WithCancel(context.Background())
	t := &target{
		backend:    b,
		healthURL:  health.String(),
		prefixed:   b.URL.Path != "" && b.URL.Path != "/",
		idle:       make(chan struct{}, 1),
		abandonCtx: ctx,
		abandon:    cancel,
		health:     newHysteresis(),
	}
	p.metrics.resolve(t)
	p.metrics.healthy.WithLabelValues(b.Name).Set(1)
	return t
}

// dropLocked forgets t: it is neither active nor standby any more.
func (p *Proxy) dropLocked(t *target) {
	if t == nil {
		return
	}
	t.abandon()
	p.metrics.healthy.DeleteLabelValues(t.backend.Name)
}

// publishLocked makes the current fields the route requests read, and wakes
// every request held on the previous one.
func (p *Proxy) publishLocked() {
	r := &route{
		active:    p.active,
		standby:   p.standby,
		switching: p.switching,
		stopping:  p.stopping,
		open:      !p.switching && !p.stopping && p.active.health.usable(),
		changed:   make(chan struct{}),
	}
	if old := p.route.Swap(r); old != nil {
		close(old.changed)
	}
}

// markSuspect records a transport failure of a proxied request on t. While
// t is the active, requests are held until a check passes; one check is
// asked for at once rather than at the next tick.
func (p *Proxy) markSuspect(t *target, err error) {
	p.mu.Lock()
	if t != p.active || !t.health.markSuspect() {
		p.mu.Unlock()
		return
	}
	t.lastErr, t.lastErrAt = err.Error(), p.cfg.Now()
	p.publishLocked()
	p.mu.Unlock()
	p.log.Warn("active backend suspect, holding requests", "backend", t.backend.Name, "err", err)
	select {
	case p.probe <- struct{}{}:
	default:
	}
}

func (t *target) release() {
	if t.inflight.Add(-1) == 0 && t.draining.Load() {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// Status is a point-in-time view of the proxy, for the API and the CLI.
type Status struct {
	Component  string         `json:"component"`
	Addr       string         `json:"addr"`
	Active     BackendStatus  `json:"active"`
	Standby    *BackendStatus `json:"standby,omitempty"`
	Switching  bool           `json:"switching"`
	LastSwitch time.Time      `json:"last_switch,omitzero"`
	Holding    int64          `json:"holding"` // requests held right now
	// Counters since New.
	Served   uint64 `json:"served"`   // answered by a backend (any status)
	Failed   uint64 `json:"failed"`   // answered by the proxy with an error status
	Canceled uint64 `json:"canceled"` // the client left before an answer
	Retries  uint64 `json:"retries"`
	Held     uint64 `json:"held"` // requests that had to wait
	Switches uint64 `json:"switches"`
}

// BackendStatus is one backend's health as the proxy sees it.
type BackendStatus struct {
	Name                string    `json:"name"`
	URL                 string    `json:"url"`
	Healthy             bool      `json:"healthy"`
	Suspect             bool      `json:"suspect"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	LastCheck           time.Time `json:"last_check,omitzero"`
	InFlight            int64     `json:"in_flight"`
}

// Status reports the backends' health and the proxy's counters.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	s := Status{
		Component:  string(p.cfg.Component),
		Addr:       p.Addr().String(),
		Active:     p.active.status(),
		Switching:  p.switching,
		LastSwitch: p.lastSwitch,
	}
	if p.standby != nil {
		st := p.standby.status()
		s.Standby = &st
	}
	p.mu.Unlock()
	s.Holding = p.stats.holding.Load()
	s.Served = p.stats.served.Load()
	s.Failed = p.stats.failed.Load()
	s.Canceled = p.stats.canceled.Load()
	s.Retries = p.stats.retries.Load()
	s.Held = p.stats.held.Load()
	s.Switches = p.stats.switches.Load()
	return s
}

// status must be called with Proxy.mu held.
func (t *target) status() BackendStatus {
	return BackendStatus{
		Name:                t.backend.Name,
		URL:                 t.backend.URL.String(),
		Healthy:             t.health.healthy,
		Suspect:             t.health.suspect,
		ConsecutiveFailures: t.health.failures,
		LastError:           t.lastErr,
		LastErrorAt:         t.lastErrAt,
		LastCheck:           t.lastCheck,
		InFlight:            t.inflight.Load(),
	}
}
