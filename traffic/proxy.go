package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors a caller may want to tell apart with errors.Is.
var (
	ErrNoStandby   = errors.New("no standby registered")
	ErrNoFallback  = errors.New("no fallback: nothing to fail back to")
	ErrSwitching   = errors.New("a switch is in progress")
	ErrStopped     = errors.New("proxy stopped")
	ErrRunning     = errors.New("proxy already running")
	ErrLastBackend = errors.New("it is the last backend serving: add another first, or switch")
	ErrNotFound    = errors.New("no such backend")
	ErrDuplicate   = errors.New("backend already registered")
	errAbandoned   = errors.New("abandoned by a switch")
	errSameTarget  = errors.New("standby is an active backend")
)

// Proxy is the traffic switcher of one component: an HTTP reverse proxy or a
// TCP proxy in front of an active set of backends (load-balanced), with an
// optional standby and, after a switch, the set it left as fallback.
type Proxy struct {
	cfg Config
	log *slog.Logger
	// waitFirst bounds the fast path's waits that do not read first
	// (h1WaitFirst; tests shorten it).
	waitFirst time.Duration
	ln        net.Listener
	rp        *httputil.ReverseProxy
	metrics   *metrics
	// transport carries proxied requests to every backend, so keep-alive
	// connections are pooled per backend host; healthTransport dials afresh
	// for every check, so that a check also proves new connections work.
	transport       *http.Transport
	healthTransport *http.Transport
	probe           chan struct{} // cap 1: ask the health loop for a check now
	conns           chan netip.AddrPort
	running         atomic.Bool
	route           atomic.Pointer[route] // what requests read, lock-free
	stats           counters
	notifyMu        sync.Mutex // serializes OnRoute calls

	mu                sync.Mutex // guards the fields below and targets' health and outlier state
	active            []*target  // the active set in the order added, joining members included
	standby           *target
	fallback          []*target // the set the last switch left, when FailBack.Enabled
	switching         bool
	stopping          bool
	lastSwitch        time.Time
	failingBack       bool      // an automatic fail back is running
	failBackNotBefore time.Time // after a failed automatic fail back
}

// route is an immutable view of where requests go. A new one is published
// on every change; changed is closed when this one is replaced, waking the
// requests held on it.
type route struct {
	members   []*target // the active set, joining members included
	joined    []*target // members that have joined
	usable    []*target // joined, healthy, not suspect, not ejected: where requests go
	serving   []*target // joined and not ejected: where a request held too long goes anyway
	standby   *target
	fallback  []*target
	open      bool // requests may go to usable now
	switching bool
	stopping  bool
	changed   chan struct{}
}

// target is a backend as the proxy routes to it.
type target struct {
	backend   Backend
	healthURL string
	prefixed  bool   // URL has a path prefix to join request paths to
	addr      string // host:port, for TCP

	inflight atomic.Int64 // attempts (HTTP) or connections (TCP) not finished
	draining atomic.Bool
	idle     chan struct{} // cap 1: tells a drain that inflight reached zero
	passive  passive
	pool     *h1Pool // keep-alive connections of the HTTP fast path; nil for TCP

	// abandonCtx is cancelled when a switch gives up waiting for this
	// target's in-flight requests; retryable ones are linked to it.
	abandonCtx context.Context
	abandon    context.CancelFunc

	ok, fail5xx, failed, canceled prometheus.Counter // requests by outcome, resolved once

	// guarded by Proxy.mu
	joined          bool // has passed a health check since AddBackend (or was given as active)
	health          hysteresis
	outlier         outlierState
	healthySince    time.Time // since when every check passed; zero while failing
	answeredAtCheck uint64    // requests answered (passive) as of the last check
	lastErr         string
	lastErrAt       time.Time
	lastCheck       time.Time
}

type counters struct {
	served, failed, canceled, retries, held, switches atomic.Uint64
	handoffs                                          atomic.Uint64 // connections the HTTP fast path gave to net/http
	holding                                           atomic.Int64
}

// New checks cfg, binds the listener (so Addr is known before Run) and
// returns a proxy whose traffic goes to active.
func New(cfg Config, active Backend) (*Proxy, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("traffic config: %w", err)
	}
	if err := active.validateFor(cfg.Protocol); err != nil {
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
		waitFirst:       h1WaitFirst,
		cfg:             cfg,
		log:             cfg.Logger.With("component", string(cfg.Component)),
		ln:              ln,
		metrics:         m,
		transport:       newTransport(cfg.DialTimeout),
		healthTransport: newHealthTransport(cfg.DialTimeout),
		probe:           make(chan struct{}, 1),
	}
	if cfg.OnConnection != nil {
		p.conns = make(chan netip.AddrPort, connQueue)
		p.ln = &hookListener{Listener: ln, p: p}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    (*forwarder)(p),
		BufferPool:   &bufferPool{},
		ErrorHandler: p.serveError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	p.mu.Lock()
	first := p.newTarget(active)
	first.joined = true
	p.active = []*target{first}
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
	p.notifyRoute("start")
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { p.healthLoop(bg) })
	if p.conns != nil {
		wg.Go(func() { p.dispatchConnections(bg) })
	}
	var srv server
	if p.cfg.Protocol == TCP {
		srv = newTCPServer(p)
	} else {
		srv = p.newHTTPServer()
	}
	served := make(chan error, 1)
	go func() { served <- srv.serve(p.ln) }()
	p.log.Info("proxy serving", "addr", p.Addr().String(), "protocol", string(p.cfg.Protocol), "active", p.Active().String())

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
	if serr := srv.shutdown(stopCtx); serr != nil {
		p.log.Warn("in-flight requests cut after drain timeout", "timeout", p.cfg.DrainTimeout)
		srv.close()
	}
	cancel()
	if err == nil {
		<-served // the server's closed error, now that shutdown has returned
	}
	stopBackground()
	wg.Wait()
	p.transport.CloseIdleConnections()
	p.healthTransport.CloseIdleConnections()
	p.closePools()
	p.log.Info("proxy stopped")
	return err
}

// server is the data plane Run drives: HTTP or TCP.
type server interface {
	serve(net.Listener) error
	shutdown(context.Context) error // graceful: waits for in-flight work or ctx
	close() error                   // cuts what is left
}

// Active returns a backend traffic goes to: the first healthy member of the
// active set, or its first member if none is healthy. Backends lists them all.
func (p *Proxy) Active() Backend {
	return p.route.Load().primary().backend.clone()
}

// primary is the member Active and Status report.
func (r *route) primary() *target {
	if len(r.usable) > 0 {
		return r.usable[0]
	}
	if len(r.joined) > 0 {
		return r.joined[0]
	}
	return r.members[0]
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
		if err := b.validateFor(p.cfg.Protocol); err != nil {
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
	case findURL(p.active, b.URL) != nil:
		return fmt.Errorf("traffic %s: standby %s: %w", p.cfg.Component, b, errSameTarget)
	case p.standby != nil && p.standby.backend.same(*b):
		return nil
	default:
		p.dropLocked(p.standby)
		p.standby = p.newTarget(*b)
		p.standby.joined = true
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
		addr:       b.URL.Host,
		idle:       make(chan struct{}, 1),
		abandonCtx: ctx,
		abandon:    cancel,
		health:     newHysteresis(),
	}
	if p.cfg.Protocol != TCP {
		t.pool = newH1Pool(b.URL, p.cfg.DialTimeout)
	}
	t.outlier.winStart = p.cfg.Now()
	p.metrics.resolve(t)
	p.metrics.healthy.WithLabelValues(b.Name).Set(1)
	return t
}

// dropLocked forgets t: it is neither active, standby nor fallback any more.
func (p *Proxy) dropLocked(t *target) {
	if t == nil {
		return
	}
	t.abandon()
	if t.pool != nil {
		t.pool.close()
	}
	p.metrics.healthy.DeleteLabelValues(t.backend.Name)
}

// publishLocked makes the current fields the route requests read, and wakes
// every request held on the previous one.
func (p *Proxy) publishLocked() {
	r := &route{
		members:   p.active,
		standby:   p.standby,
		fallback:  p.fallback,
		switching: p.switching,
		stopping:  p.stopping,
		changed:   make(chan struct{}),
	}
	for _, t := range p.active {
		if !t.joined {
			continue
		}
		r.joined = append(r.joined, t)
		if t.outlier.ejected() {
			continue
		}
		r.serving = append(r.serving, t)
		if t.health.usable() {
			r.usable = append(r.usable, t)
		}
	}
	r.open = !p.switching && !p.stopping && len(r.usable) > 0
	if old := p.route.Swap(r); old != nil {
		close(old.changed)
	}
}

// markSuspect records a transport failure of a proxied request on t. While
// t is in the active set, it gets no new requests until a check passes; one
// check is asked for at once rather than at the next tick.
func (p *Proxy) markSuspect(t *target, err error) {
	p.mu.Lock()
	if !contains(p.active, t) || !t.health.markSuspect() {
		p.mu.Unlock()
		return
	}
	t.lastErr, t.lastErrAt = err.Error(), p.cfg.Now()
	p.publishLocked()
	open := p.route.Load().open
	p.mu.Unlock()
	if open {
		p.log.Warn("backend suspect, sending its requests to the others", "backend", t.backend.Name, "err", err)
	} else {
		p.log.Warn("active backend suspect, holding requests", "backend", t.backend.Name, "err", err)
	}
	p.askProbe()
}

func (p *Proxy) askProbe() {
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

func contains(ts []*target, t *target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func findURL(ts []*target, u *url.URL) *target {
	for _, t := range ts {
		if t.backend.URL.String() == u.String() {
			return t
		}
	}
	return nil
}

func backendsOf(ts []*target) []Backend {
	out := make([]Backend, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.backend.clone())
	}
	return out
}

// notifyRoute tells OnRoute what serves now.
func (p *Proxy) notifyRoute(cause string) {
	p.metrics.routeChanges.WithLabelValues(cause).Inc()
	if p.cfg.OnRoute == nil {
		return
	}
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	serving := backendsOf(p.route.Load().joined)
	p.cfg.OnRoute(RouteChange{Component: p.cfg.Component, Protocol: p.cfg.Protocol, Active: serving, Cause: cause})
}

// closePools closes the fast path's idle connections to every backend.
func (p *Proxy) closePools() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range append(append(p.active[:len(p.active):len(p.active)], p.fallback...), p.standby) {
		if t != nil && t.pool != nil {
			t.pool.close()
		}
	}
}
