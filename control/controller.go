package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/replicate"
	"github.com/phoenixsre/phoenix/store"
	"github.com/phoenixsre/phoenix/telemetry"
	"github.com/phoenixsre/phoenix/traffic"
)

// RiskSource is the Predictive Failure Engine as the loop reads it.
type RiskSource interface {
	Risk(c phoenix.ComponentID, now time.Time) phoenix.Risk
	// Reset forgets a component's history: its active instance changed.
	Reset(c phoenix.ComponentID)
}

// Closer is the dependency graph as the loop reads it.
type Closer interface {
	Closure(c phoenix.ComponentID) []phoenix.ComponentID
}

// Targeter is the telemetry collector as the loop steers it.
type Targeter interface {
	SetTargets(ts []telemetry.Target)
}

// Deps are what a Controller is built from.
type Deps struct {
	Config   config.Config
	Store    *store.Store
	Provider provider.Provider
	Risks    RiskSource
	Graph    Closer
	Targets  Targeter
	// History is the telemetry store, for sizing replicas from what their
	// components used; nil sizes from the policy's defaults.
	History HistorySource
	// Silence says how long a component's telemetry has been silent (no
	// successful scrape); nil or zero means unknown. It is one of the
	// signals that confirm a failure.
	Silence func(c phoenix.ComponentID, now time.Time) time.Duration
	// OnRoute is told of every change of the backends serving a component
	// (the xDS server uses it).
	OnRoute func(traffic.RouteChange)
	// OnConnection is told of every client connection a proxy accepts
	// (passive dependency discovery).
	OnConnection func(c phoenix.ComponentID, remote netip.AddrPort)
	// Executable replaces {phoenix} in replica commands.
	Executable string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Tick is how often the loop decides; default 200ms. Health transitions
	// wake it at once.
	Tick time.Duration
}

// Controller is the loop that ties Phoenix together: it reads risks and
// health, asks the allocator what to do, carries the plan out through the
// provider, the state transfer engine and the proxies, and writes every
// decision with its reason to the event log.
type Controller struct {
	deps    Deps
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	now     func() time.Time
	client  *http.Client
	proxies map[phoenix.ComponentID]*traffic.Proxy
	order   []phoenix.ComponentID
	wake    chan struct{}
	metrics *metrics
	confirm traffic.Confirmation

	mu      sync.Mutex
	comps   map[phoenix.ComponentID]*compState
	streams map[string]*runningStream // by instance ID
	scalers map[phoenix.ComponentID]*runningScaler

	// The sweeps for stray scaled replicas: when the next is due (the
	// loop's), whether one runs, and the allocations whose release failed
	// and was reported (the sweep's).
	nextStray    time.Time
	sweeping     atomic.Bool
	strayFailing map[string]bool
}

// compState is the loop's runtime knowledge of one component. What must
// survive a restart is in the store; this is rebuilt from it.
type compState struct {
	conf config.Component
	// primary is the instance now serving the component: the configured
	// primary, or the replica a switch promoted.
	primary endpoint
	risk    phoenix.Risk
	// open is the allocation in progress (provisioning, prewarmed,
	// switching or releasing), nil if none.
	open       *phoenix.Allocation
	quietSince time.Time
	failed     bool
	failReason string
	busy       bool
	// switchRequested is an operator's pending request to switch now.
	switchRequested bool
	// switched is the allocation whose replica serves now, nil while the
	// configured primary does.
	switched *phoenix.Allocation
	// failBackRequested is an operator's pending request to fail back;
	// failedBack says the proxy did it by policy.
	failBackRequested, failedBack bool
	// prewarmHeld: until then, risk alone does not start a pre-warm (the
	// last one was refused or failed).
	prewarmHeld time.Time
	// retryHeld: until then, a confirmed failure does not start another
	// emergency pre-warm (the last one failed).
	retryHeld time.Time
	// disrupted is when the component last failed or had its traffic
	// moved: its dependents' signals are suspect for a while after.
	disrupted time.Time
}

type endpoint struct {
	URL     string
	Metrics string
	DataDir string
	Env     phoenix.Environment
	Name    string
}

type runningStream struct {
	s      *replicate.Stream
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the controller and the proxy of every component, restoring
// routes from the persisted allocations: a component that was switched
// before a restart is served by its replica from the first request.
func New(d Deps) (*Controller, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Tick <= 0 {
		d.Tick = 200 * time.Millisecond
	}
	c := &Controller{
		deps:    d,
		cfg:     d.Config,
		log:     d.Logger,
		store:   d.Store,
		now:     d.Now,
		client:  &http.Client{Timeout: 10 * time.Second},
		proxies: map[phoenix.ComponentID]*traffic.Proxy{},
		wake:    make(chan struct{}, 1),
		comps:   map[phoenix.ComponentID]*compState{},
		streams: map[string]*runningStream{},
		scalers: map[phoenix.ComponentID]*runningScaler{},
		metrics: newMetrics(d.Registerer),
	}
	cf := d.Config.Traffic.Confirm
	silence := cf.Silence.D()
	if silence == 0 {
		// Three missed scrapes: long enough not to mistake one slow scrape
		// for silence, short enough to keep the RTO of a crash in seconds.
		silence = 3 * d.Config.Telemetry.ScrapeInterval.D()
	}
	// The pre-emptive path belongs to the allocator (it also weighs the lead
	// time); confirmation here is about failures that have happened.
	c.confirm = traffic.Confirmation{MinSignals: cf.MinSignals, Errors: cf.Errors, Silence: silence, Risk: cf.Risk, Preemptive: 2}.WithDefaults()
	if err := c.confirm.Validate(); err != nil {
		return nil, fmt.Errorf("traffic.confirm: %w", err)
	}
	allocs, err := d.Store.Allocations()
	if err != nil {
		return nil, err
	}
	for _, comp := range d.Config.Components {
		st := &compState{conf: comp, primary: endpoint{
			URL: comp.Primary.URL, Metrics: comp.Primary.Metrics, DataDir: comp.State.Dir,
			Env: phoenix.Primary, Name: string(comp.Name) + "@primary",
		}}
		c.restore(st, allocs)
		c.comps[comp.Name] = st
		c.order = append(c.order, comp.Name)
	}
	for _, name := range c.order {
		if err := c.newProxy(c.comps[name]); err != nil {
			c.closeProxies()
			return nil, err
		}
	}
	return c, nil
}

// restore rebuilds a component's runtime state from its allocations: the
// latest switched one names its current primary, an unfinished one is open.
func (c *Controller) restore(st *compState, allocs []phoenix.Allocation) {
	var mine []phoenix.Allocation
	for _, a := range allocs {
		if a.Component == st.conf.Name {
			mine = append(mine, a)
		}
	}
	slices.SortFunc(mine, func(a, b phoenix.Allocation) int { return a.PredictedAt.Compare(b.PredictedAt) })
	for i := range mine {
		a := mine[i]
		switch {
		case a.Phase == phoenix.PhaseSwitched:
			m := a.Members[len(a.Members)-1]
			st.primary = endpoint{URL: m.URL, Metrics: m.URL + "/metrics", DataDir: m.DataDir, Env: phoenix.Secondary, Name: m.InstanceID}
			st.open = nil
			st.switched = &a
		case !a.Phase.Done():
			st.open = &a
		}
	}
}

func (c *Controller) newProxy(st *compState) error {
	u, err := url.Parse(st.primary.URL)
	if err != nil {
		return fmt.Errorf("component %s: primary url: %w", st.conf.Name, err)
	}
	name := st.conf.Name
	t := c.cfg.Traffic
	o := t.Outlier
	p, err := traffic.New(traffic.Config{
		Component:      name,
		Protocol:       traffic.Protocol(st.conf.Protocol),
		Listen:         st.conf.Proxy,
		HealthPath:     st.conf.HealthPath,
		HealthInterval: c.cfg.Traffic.HealthInterval.D(),
		HealthTimeout:  c.cfg.Traffic.HealthTimeout.D(),
		UnhealthyAfter: c.cfg.Traffic.UnhealthyAfter,
		HoldTimeout:    c.cfg.Traffic.HoldTimeout.D(),
		DrainTimeout:   c.cfg.Traffic.DrainTimeout.D(),
		ClientTimeout:  c.cfg.Traffic.ClientTimeout.D(),
		Outlier: traffic.OutlierConfig{Disabled: o.Disabled, ConsecutiveErrors: o.ConsecutiveErrors, ErrorRate: o.ErrorRate,
			MinRequests: o.MinRequests, Interval: o.Interval.D(), EjectionTime: o.EjectionTime.D(),
			MaxEjectionTime: o.MaxEjectionTime.D(), MaxEjectedPercent: o.MaxEjectedPercent},
		FailBack: traffic.FailbackPolicy{Enabled: t.Failback.Enabled, Auto: t.Failback.Auto,
			HealthyFor: t.Failback.HealthyFor.D(), MinDwell: t.Failback.MinDwell.D()},
		FailBackPrepare: func(ctx context.Context) error { return c.failBackPrepare(ctx, name) },
		Logger:          c.log.With("proxy", string(name)),
		Registerer:      c.deps.Registerer,
		OnHealth: func(b traffic.Backend, healthy bool, reason string) {
			c.log.Info("health changed", "component", name, "backend", b.Name, "healthy", healthy, "reason", reason)
			c.poke()
		},
		OnConnection: c.deps.OnConnection,
		OnRoute: func(rc traffic.RouteChange) {
			if c.deps.OnRoute != nil {
				c.deps.OnRoute(rc)
			}
			if rc.Cause == "failback" {
				c.failedBack(name)
			}
		},
	}, traffic.Backend{Name: st.primary.Name, URL: u})
	if err != nil {
		return fmt.Errorf("component %s: proxy: %w", name, err)
	}
	c.proxies[name] = p
	return nil
}

func (c *Controller) closeProxies() {
	for _, p := range c.proxies {
		p.Close()
	}
}

// ProxyAddr returns the address a component's proxy listens on.
func (c *Controller) ProxyAddr(name phoenix.ComponentID) string {
	if p, ok := c.proxies[name]; ok {
		return p.Addr().String()
	}
	return ""
}

func (c *Controller) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run serves the proxies and runs the loop until ctx ends. In-flight
// actions are given the context, so they stop with it; their state is
// persisted at every step and resumed by the next Run.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(c.proxies))
	for name, p := range c.proxies {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("proxy %s: %w", name, err)
				cancel()
			}
		})
	}
	defer wg.Wait()

	c.setTargets()
	c.event(phoenix.Event{Kind: phoenix.EventStarted, Message: c.resumeSummary()})
	c.resume(ctx, &wg)

	t := time.NewTicker(c.deps.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.stopStreams()
			c.stopScalers()
			select {
			case err := <-errc:
				return err
			default:
			}
			return nil
		case <-t.C:
		case <-c.wake:
		}
		c.step(ctx, &wg)
		c.sweepStrayScaled(ctx, c.now(), &wg)
	}
}

// step builds the decider's view, takes its plan, and starts each
// component's actions in a worker of their own, so a slow pre-warm of one
// component never delays the switch of another.
func (c *Controller) step(ctx context.Context, wg *sync.WaitGroup) {
	now := c.now()
	view := allocate.View{Now: now, Thresholds: allocate.Thresholds{
		Prewarm: c.cfg.Thresholds.Prewarm, Switch: c.cfg.Thresholds.Switch, SwitchWithin: c.cfg.Thresholds.SwitchWithin.D(),
		Release: c.cfg.Thresholds.Release, ReleaseAfter: c.cfg.Thresholds.ReleaseAfter.D(),
	}}
	var events []phoenix.Event
	closures := make(map[phoenix.ComponentID][]phoenix.ComponentID, len(c.order))
	for _, name := range c.order {
		closures[name] = c.closure(name)
	}
	for _, name := range c.order {
		risk := c.deps.Risks.Risk(name, now)
		failed, reason := c.activeFailed(name, risk, now)
		c.mu.Lock()
		st := c.comps[name]
		events = append(events, c.observe(st, risk, failed, reason, now)...)
		var open *phoenix.Allocation
		if st.open != nil {
			a := *st.open
			open = &a
		}
		view.Components = append(view.Components, allocate.Component{
			Name: name, Risk: risk, Allocation: open, QuietSince: st.quietSince,
			Failed: st.failed, FailReason: st.failReason, Busy: st.busy, SwitchRequested: st.switchRequested,
			Switched: st.switched, FailBackRequested: st.failBackRequested, FailedBack: st.failedBack,
			Closure: closures[name], Disrupted: c.disruptedLocked(closures[name], now), PrewarmHeld: now.Before(st.prewarmHeld),
			RetryHeld: now.Before(st.retryHeld),
		})
		c.mu.Unlock()
		c.metrics.risk.WithLabelValues(string(name)).Set(risk.Probability)
	}
	for _, e := range events {
		c.event(e)
	}
	plan := allocate.Decide(view)
	byComp := map[phoenix.ComponentID][]allocate.Action{}
	for _, a := range plan {
		byComp[a.Component] = append(byComp[a.Component], a)
	}
	for name, acts := range byComp {
		c.start(ctx, wg, name, acts)
	}
}

// ErrUnknownComponent is returned for a component the config does not list.
var ErrUnknownComponent = errors.New("unknown component")

// RequestSwitch asks the loop to switch the component to its replica now.
// It fails at once if no replica is ready to take the traffic.
func (c *Controller) RequestSwitch(name phoenix.ComponentID, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.comps[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownComponent, name)
	}
	if st.open == nil || st.open.Phase != phoenix.PhasePrewarmed {
		return fmt.Errorf("%s has no pre-warmed replica to switch to; one is made when its risk passes the pre-warm threshold", name)
	}
	st.switchRequested = true
	c.log.Info("switch requested", "component", name, "reason", reason)
	c.poke()
	return nil
}

// start runs a component's actions in order in a worker goroutine.
func (c *Controller) start(ctx context.Context, wg *sync.WaitGroup, name phoenix.ComponentID, acts []allocate.Action) {
	c.mu.Lock()
	st := c.comps[name]
	if st.busy {
		c.mu.Unlock()
		return
	}
	st.busy = true
	c.mu.Unlock()
	wg.Go(func() {
		defer func() {
			c.mu.Lock()
			st.busy = false
			c.mu.Unlock()
			c.poke()
		}()
		for _, a := range acts {
			if err := c.execute(ctx, a); err != nil {
				if ctx.Err() == nil && !errors.As(err, new(reportedError)) {
					c.event(phoenix.Event{Kind: phoenix.EventError, Component: name, Message: fmt.Sprintf("%s: %v", a.Kind, err)})
				}
				return
			}
		}
	})
}

func (c *Controller) execute(ctx context.Context, a allocate.Action) error {
	switch a.Kind {
	case allocate.Prewarm:
		return c.prewarm(ctx, a)
	case allocate.Switch:
		return c.switchover(ctx, a)
	case allocate.Release:
		return c.release(ctx, a)
	case allocate.FailBack:
		return c.failBack(ctx, a)
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// observe updates the hysteresis clocks and returns the events a reader of
// the timeline needs (failure confirmed, risk cleared). Called with c.mu
// held; the caller writes the events after unlocking.
func (c *Controller) observe(st *compState, risk phoenix.Risk, failed bool, reason string, now time.Time) []phoenix.Event {
	var evs []phoenix.Event
	st.risk = risk
	t := c.cfg.Thresholds
	if risk.Probability < t.Release {
		if st.quietSince.IsZero() {
			st.quietSince = now
			if st.open != nil && st.open.Phase == phoenix.PhasePrewarmed {
				evs = append(evs, phoenix.Event{Kind: phoenix.EventRiskCleared, Component: st.conf.Name,
					Message: fmt.Sprintf("risk %.2f fell below the release threshold %.2f; the replica is released if it stays there for %s", risk.Probability, t.Release, t.ReleaseAfter)})
			}
		}
	} else {
		st.quietSince = time.Time{}
	}
	if failed {
		st.disrupted = now
	}
	if failed && !st.failed {
		evs = append(evs, phoenix.Event{Kind: phoenix.EventFailed, Component: st.conf.Name,
			Message: fmt.Sprintf("failure of %s confirmed: %s", st.primary.Name, reason)})
	}
	st.failed, st.failReason = failed, reason
	return evs
}

// disruptedLocked says which member of a closure failed or had its traffic
// moved within the prediction horizon, if any. Called with c.mu held.
func (c *Controller) disruptedLocked(closure []phoenix.ComponentID, now time.Time) string {
	for _, d := range closure {
		if st, ok := c.comps[d]; ok && !st.disrupted.IsZero() && now.Sub(st.disrupted) < c.cfg.Predict.Horizon.D() {
			return fmt.Sprintf("%s failed or switched %s ago", d, now.Sub(st.disrupted).Round(time.Second))
		}
	}
	return ""
}

// activeFailed reports whether the failure of the component's active
// backends is confirmed: enough independent signals agree (health checks,
// failed requests, telemetry silence, predicted risk). One signal alone, a
// health check timing out on a starved machine say, is not enough.
func (c *Controller) activeFailed(name phoenix.ComponentID, risk phoenix.Risk, now time.Time) (bool, string) {
	s := c.proxies[name].Status()
	if s.Switching {
		return false, ""
	}
	var silence time.Duration
	if c.deps.Silence != nil {
		silence = c.deps.Silence(name, now)
	}
	v := c.confirm.Confirm(s.Evidence(silence, risk.Probability))
	if !v.Confirmed {
		return false, ""
	}
	reason := strings.Join(v.Signals, ", ")
	if s.Active.LastError != "" {
		reason += " (" + s.Active.LastError + ")"
	}
	return true, reason
}

// closure is what a component needs: the live graph's closure, plus the
// configured depends_on (and theirs), dependencies first. Components that
// are not configured (a database seen only in traces) are left out: Phoenix
// has no recipe to rebuild them.
func (c *Controller) closure(name phoenix.ComponentID) []phoenix.ComponentID {
	seen := map[phoenix.ComponentID]bool{name: true}
	var out []phoenix.ComponentID
	var visit func(n phoenix.ComponentID)
	visit = func(n phoenix.ComponentID) {
		var next []phoenix.ComponentID
		if st, ok := c.comps[n]; ok {
			next = append(next, st.conf.DependsOn...)
		}
		if c.deps.Graph != nil {
			next = append(next, c.deps.Graph.Closure(n)...)
		}
		for _, d := range next {
			if seen[d] {
				continue
			}
			seen[d] = true
			if _, ok := c.comps[d]; !ok {
				continue
			}
			visit(d)
			out = append(out, d)
		}
	}
	visit(name)
	return out
}

// setTargets points the collector at every component's current primary.
func (c *Controller) setTargets() {
	if c.deps.Targets == nil {
		return
	}
	c.mu.Lock()
	ts := make([]telemetry.Target, 0, len(c.order))
	for _, name := range c.order {
		st := c.comps[name]
		ts = append(ts, telemetry.Target{Component: name, Environment: st.primary.Env, URL: st.primary.Metrics})
	}
	c.mu.Unlock()
	c.deps.Targets.SetTargets(ts)
}

func (c *Controller) resumeSummary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var open []string
	for _, name := range c.order {
		if a := c.comps[name].open; a != nil {
			open = append(open, fmt.Sprintf("%s (%s)", a.ID, a.Phase))
		}
	}
	if len(open) == 0 {
		return fmt.Sprintf("watching %d components", len(c.order))
	}
	return fmt.Sprintf("watching %d components; resuming %v", len(c.order), open)
}

// stopScalers stops every scaler and releases what they added: a daemon
// stopped this way starts them again on its next run. (A daemon killed
// instead leaves them recorded, and its next run adopts them.)
func (c *Controller) stopScalers() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range c.order {
		if err := c.stopScaler(ctx, name); err != nil {
			c.log.Warn("stop scaling", "component", name, "err", err)
		}
	}
}

// resume carries on what a previous run left unfinished. Every action is
// idempotent, so repeating a step that had completed is harmless.
func (c *Controller) resume(ctx context.Context, wg *sync.WaitGroup) {
	c.releaseStrayScaled(ctx)
	c.nextStray = c.now().Add(strayRetry)
	for _, name := range c.order {
		c.mu.Lock()
		a, sw := c.comps[name].open, c.comps[name].switched
		c.mu.Unlock()
		if sw != nil {
			if err := c.startScaler(*sw); err != nil {
				c.event(phoenix.Event{Kind: phoenix.EventError, Component: name, Message: "scaling did not resume: " + err.Error()})
			}
		}
		if a == nil {
			continue
		}
		var act allocate.Action
		switch a.Phase {
		case phoenix.PhaseProvisioning, phoenix.PhasePrewarmed:
			act = allocate.Action{Kind: allocate.Prewarm, Component: name, Reason: "resumed after restart"}
			for _, m := range a.Members {
				act.Members = append(act.Members, m.Component)
			}
		case phoenix.PhaseSwitching:
			act = allocate.Action{Kind: allocate.Switch, Component: name, Reason: "resumed after restart"}
		case phoenix.PhaseReleasing:
			act = allocate.Action{Kind: allocate.Release, Component: name, Reason: "resumed after restart"}
		default:
			continue
		}
		c.start(ctx, wg, name, []allocate.Action{act})
	}
}

// strayRetry is how often the loop looks again for scaled replicas left
// recorded for allocations that no longer scale: a release that failed (the
// provider unreachable as a scaler stopped) is retried then, not only at
// the next start.
const strayRetry = time.Minute

// sweepStrayScaled starts releaseStrayScaled in the background if a sweep
// is due and none is running: a provider that is slow to answer must not
// hold up the loop.
func (c *Controller) sweepStrayScaled(ctx context.Context, now time.Time, wg *sync.WaitGroup) {
	if ctx.Err() != nil || now.Before(c.nextStray) || !c.sweeping.CompareAndSwap(false, true) {
		return
	}
	c.nextStray = now.Add(strayRetry)
	wg.Go(func() {
		defer c.sweeping.Store(false)
		c.releaseStrayScaled(ctx)
	})
}

// releaseStrayScaled releases the scaled replicas recorded for allocations
// whose scaling no longer runs (released or failed back, whose scaler's
// release failed or was cut short by a kill): a component's switched
// allocation scales, or will once its scaler starts and adopts its own, and
// so does any allocation a scaler runs for. An allocation whose release
// fails is reported once, and tried again at the next sweep. One sweep at a
// time (at startup, then sweepStrayScaled's).
func (c *Controller) releaseStrayScaled(ctx context.Context) {
	ids, err := c.store.ScaledAllocations()
	if err != nil {
		c.log.Warn("stray scaled replicas not checked", "err", err)
		return
	}
	c.mu.Lock()
	scaling := map[string]bool{}
	for _, name := range c.order {
		if sw := c.comps[name].switched; sw != nil {
			scaling[sw.ID] = true
		}
	}
	for _, r := range c.scalers {
		scaling[r.alloc] = true
	}
	c.mu.Unlock()
	for id := range c.strayFailing {
		if !slices.Contains(ids, id) {
			delete(c.strayFailing, id) // released some other way
		}
	}
	for _, id := range ids {
		if scaling[id] {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		err := c.releaseScaled(ctx, id)
		switch {
		case err == nil:
			delete(c.strayFailing, id)
		case c.strayFailing[id]:
			c.log.Warn("stray scaled replicas still not released", "allocation", id, "err", err)
		default:
			if c.strayFailing == nil {
				c.strayFailing = map[string]bool{}
			}
			c.strayFailing[id] = true
			c.event(phoenix.Event{Kind: phoenix.EventError, Component: c.componentOf(id),
				Message: fmt.Sprintf("stray scaled replicas of %s (retried every %s): %v", id, strayRetry, err)})
		}
	}
}

// componentOf is the component of a recorded allocation, empty if there is
// none or it cannot be read.
func (c *Controller) componentOf(allocation string) phoenix.ComponentID {
	allocs, err := c.store.Allocations()
	if err != nil {
		return ""
	}
	for _, a := range allocs {
		if a.ID == allocation {
			return a.Component
		}
	}
	return ""
}

// event appends an event to the log, and to the daemon's own log.
func (c *Controller) event(e phoenix.Event) {
	if e.Time.IsZero() {
		e.Time = c.now()
	}
	e, err := c.store.Append(e)
	if err != nil {
		c.log.Error("event log write failed", "err", err, "kind", e.Kind, "message", e.Message)
		return
	}
	lvl := slog.LevelInfo
	if e.Kind == phoenix.EventError {
		lvl = slog.LevelWarn
	}
	c.log.Log(context.Background(), lvl, e.Message, "event", e.Kind, "component", e.Component, "seq", e.Seq)
}
