package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/replicate"
	"github.com/phoenixsre/phoenix/traffic"
)

// readyTimeout bounds how long a new instance may take to answer its health
// check.
const readyTimeout = 30 * time.Second

// prewarmHold is how long a component whose pre-warm was refused (budget,
// placement) or failed is not pre-warmed again on risk alone; retryHold is
// how long a confirmed failure waits before another emergency pre-warm
// after one failed.
const (
	prewarmHold = 30 * time.Second
	retryHold   = 2 * time.Second
)

// prewarm provisions an allocation's members in order, copies their state,
// waits until each is ready and registers it as its component's standby.
// It creates the allocation on first call and resumes it on later ones:
// every step is idempotent (provisioning adopts what runs, the state copy
// sends only what differs), so a restart in the middle neither duplicates
// nor leaks an instance.
func (c *Controller) prewarm(ctx context.Context, act allocate.Action) error {
	a, created, err := c.openAllocation(ctx, act)
	if err != nil {
		return err
	}
	if created {
		kind := phoenix.EventPredicted
		msg := act.Reason
		if act.Emergency {
			kind = phoenix.EventFailureSuspected
			msg = "no warning came: " + act.Reason
		}
		c.event(phoenix.Event{Kind: kind, Component: a.Component, Message: msg,
			Fields: map[string]string{"allocation": a.ID, "members": memberList(a)}})
		offers := map[string]bool{}
		for _, m := range a.Members {
			offers[m.Offer] = true
		}
		c.event(phoenix.Event{Kind: phoenix.EventPlanned, Component: a.Component,
			Message: fmt.Sprintf("%s: %d replicas sized from measured history and placed on %s (the sizing field says how)", a.ID, len(a.Members), strings.Join(slices.Sorted(maps.Keys(offers)), ", ")),
			Fields:  map[string]string{"allocation": a.ID, "sizing": strings.Join(a.Sizing, "\n")}})
	}
	for i := range a.Members {
		if err := c.prewarmMember(ctx, a, i); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // stopping: the allocation resumes on the next run
			}
			c.rollback(ctx, a, err)
			return reportedError{err}
		}
	}
	if a.Phase != phoenix.PhaseProvisioning {
		return nil // resumed a prewarmed allocation: re-attached, nothing new to say
	}
	a.Phase = phoenix.PhasePrewarmed
	a.PrewarmedAt = c.now()
	if err := c.save(a); err != nil {
		return err
	}
	after := "the prediction"
	if a.Emergency {
		after = "the failure was confirmed"
	}
	c.event(phoenix.Event{Kind: phoenix.EventPrewarmed, Component: a.Component,
		Message: fmt.Sprintf("replica %s ready and registered as standby, %s after %s",
			a.Members[len(a.Members)-1].InstanceID, a.PrewarmedAt.Sub(a.PredictedAt).Round(10*time.Millisecond), after),
		Fields: map[string]string{"allocation": a.ID}})
	return nil
}

// openAllocation returns the component's open allocation, creating,
// sizing, placing and persisting a new one if there is none. A new one
// refused by the budget or by placement is not created: the refusal is
// logged, and the component's risk is not acted on again for a while.
func (c *Controller) openAllocation(ctx context.Context, act allocate.Action) (*phoenix.Allocation, bool, error) {
	c.mu.Lock()
	st := c.comps[act.Component]
	open := st.open
	c.mu.Unlock()
	if open != nil {
		a := open.Clone()
		return &a, false, nil
	}
	n, err := c.store.NextID("allocation:" + string(act.Component))
	if err != nil {
		return nil, false, err
	}
	now := c.now()
	a := &phoenix.Allocation{
		ID:          fmt.Sprintf("%s-%d", act.Component, n),
		Component:   act.Component,
		Phase:       phoenix.PhaseProvisioning,
		Reason:      act.Reason,
		Emergency:   act.Emergency,
		PredictedAt: now,
	}
	for _, m := range act.Members {
		a.Members = append(a.Members, phoenix.Member{Component: m, InstanceID: a.ID + "." + string(m)})
	}
	sizing, err := c.plan(ctx, a)
	a.Sizing = sizing
	if err != nil {
		c.hold(act.Component)
		hold := prewarmHold
		if act.Emergency {
			hold = retryHold
		}
		return nil, false, fmt.Errorf("pre-warm of %s not started (next attempt in %s at the earliest): %w", act.Component, hold, err)
	}
	if err := c.save(a); err != nil {
		return nil, false, err
	}
	return a, true, nil
}

// save persists the allocation and makes it the component's open one (or
// clears it once it is over).
func (c *Controller) save(a *phoenix.Allocation) error {
	a.UpdatedAt = c.now()
	if err := c.store.PutAllocation(*a); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.comps[a.Component]
	if st.open == nil || st.open.Phase != a.Phase {
		c.metrics.allocations.WithLabelValues(string(a.Phase)).Inc()
	}
	if a.Phase.Done() || a.Phase == phoenix.PhaseSwitched {
		st.open = nil
	} else {
		cp := a.Clone()
		st.open = &cp
	}
	return nil
}

func (c *Controller) prewarmMember(ctx context.Context, a *phoenix.Allocation, i int) error {
	m := &a.Members[i]
	conf, ok := c.cfg.Component(m.Component)
	if !ok {
		return fmt.Errorf("member %s: not a configured component", m.Component)
	}
	cmd, err := c.fill(conf.Replica.Command, a, i)
	if err != nil {
		return fmt.Errorf("member %s: replica.command: %w", m.Component, err)
	}
	env := map[string]string{}
	for k, v := range conf.Replica.Env {
		if env[k], err = c.fill1(v, a, i); err != nil {
			return fmt.Errorf("member %s: replica.env %s: %w", m.Component, k, err)
		}
	}
	spec := provider.Spec{ID: m.InstanceID, Component: m.Component, Command: cmd, Env: env, Resources: m.Resources, Offer: m.Offer}
	inst, err := c.provision(ctx, spec)
	// An offer that refused (no room), or failed even after provision's
	// retries, gives way to the next-best offer. Not for a member that was
	// provisioned before a restart: its instance may be serving as the
	// standby, and a passing outage of the provider is no reason to drop it.
	for tried := []string{}; err != nil && ctx.Err() == nil && m.ProvisionedAt.IsZero() &&
		!errors.Is(err, provider.ErrInvalidSpec) && len(tried) < maxRefusals; {
		tried = append(tried, m.Offer)
		was, how := m.Offer, "refused"
		if !noCapacity(err) {
			how = "failed"
			// Whatever the failed attempts left behind is not to leak.
			if rerr := c.deps.Provider.Release(ctx, m.InstanceID); rerr != nil {
				return fmt.Errorf("%s: offer %s failed (%v), and cleaning up after it failed too: %w", m.InstanceID, was, err, rerr)
			}
		}
		if rerr := c.replace(ctx, m, tried); rerr != nil {
			return fmt.Errorf("%s: offer %s %s (%v), and %w", m.InstanceID, was, how, err, rerr)
		}
		// The new offer is on record before the instance exists there: a
		// restart resumes with it, not with the one that refused.
		if serr := c.save(a); serr != nil {
			return serr
		}
		c.event(phoenix.Event{Kind: phoenix.EventOfferRefused, Component: a.Component,
			Message: fmt.Sprintf("offer %s %s %s (%v); trying %s", was, how, m.InstanceID, err, m.Offer),
			Fields:  map[string]string{"allocation": a.ID, "instance": m.InstanceID}})
		spec.Offer, spec.Resources = m.Offer, m.Resources
		inst, err = c.provision(ctx, spec)
	}
	if err != nil {
		return err
	}
	fresh := m.ProvisionedAt.IsZero()
	m.URL = "http://" + inst.Addr
	m.DataDir = inst.DataDir
	if fresh {
		m.ProvisionedAt = c.now()
	}
	if err := c.save(a); err != nil {
		return err
	}
	if fresh {
		c.event(phoenix.Event{Kind: phoenix.EventProvisioned, Component: a.Component,
			Message: fmt.Sprintf("%s started in the secondary environment (%s, %s) at %s", m.InstanceID, inst.Provider, inst.Detail, m.URL),
			Fields:  map[string]string{"allocation": a.ID, "instance": m.InstanceID}})
	}
	if conf.State.Method != config.StateNone {
		if err := c.copyState(ctx, a, m, conf, fresh); err != nil {
			return err
		}
	}
	if err := c.waitReady(ctx, m.InstanceID, m.URL+conf.HealthPath); err != nil {
		return err
	}
	if conf.State.Method == config.StateIncremental {
		if err := c.startStream(*m, conf); err != nil {
			return err
		}
	}
	u, err := url.Parse(m.URL)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.InstanceID, err)
	}
	if err := c.proxies[m.Component].SetStandby(&traffic.Backend{Name: m.InstanceID, URL: u}); err != nil {
		return fmt.Errorf("register %s as standby: %w", m.InstanceID, err)
	}
	return nil
}

// copyState makes the member's data directory a copy of its component's
// primary's, by the component's method: a full, verified copy for a fresh
// instance, an incremental round for a resumed one.
func (c *Controller) copyState(ctx context.Context, a *phoenix.Allocation, m *phoenix.Member, conf config.Component, fresh bool) error {
	method, err := c.method(*m, conf, true)
	if err != nil {
		return err
	}
	copyFn, what := method.Incremental, "incremental catch-up"
	if fresh {
		copyFn, what = method.Full, "full copy"
	}
	stats, err := copyFn(ctx)
	if err != nil {
		return fmt.Errorf("%s of %s state to %s: %w", what, m.Component, m.InstanceID, err)
	}
	c.event(phoenix.Event{Kind: phoenix.EventSnapshot, Component: a.Component,
		Message: fmt.Sprintf("%s of %s state (%s): %d files, %d bytes written in %s", what, m.Component, conf.State.Method, stats.Files, stats.Bytes, stats.Duration.Round(time.Millisecond)),
		Fields:  map[string]string{"allocation": a.ID, "instance": m.InstanceID}})
	return nil
}

// method builds the replication method the component's config asks for,
// from its current primary (or the agent next to it) into the member's
// data directory. throttled applies state.throttle: the final catch-up of a
// switch runs unthrottled, since requests are held while it runs.
func (c *Controller) method(m phoenix.Member, conf config.Component, throttled bool) (replicate.Method, error) {
	st := conf.State
	src := replicate.Endpoint{Dir: c.stateSource(m.Component)}
	var token string
	if st.Agent.Source != "" {
		src = replicate.Endpoint{Agent: st.Agent.Source}
		b, err := os.ReadFile(st.Agent.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("state.agent.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	env := make([]string, 0, len(st.Hooks.Env))
	for k, v := range st.Hooks.Env {
		env = append(env, k+"="+v)
	}
	var throttle int64
	if throttled {
		throttle = int64(st.Throttle)
	}
	return replicate.NewMethod(replicate.MethodConfig{
		Kind: st.Method, Src: src, Dst: replicate.Endpoint{Dir: m.DataDir},
		Hooks:    replicate.Hooks{Pre: st.Hooks.Pre, Command: st.Hooks.Command, Post: st.Hooks.Post, Env: env, Timeout: st.Hooks.Timeout.D()},
		Throttle: throttle, MaxPasses: st.MaxPasses, Token: token,
		Logger: c.log.With("replicate", m.InstanceID),
	})
}

// stateSource is the data directory of the component's current primary.
func (c *Controller) stateSource(name phoenix.ComponentID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.comps[name].primary.DataDir
}

// provision asks the provider for the instance, retrying transient
// failures with backoff.
func (c *Controller) provision(ctx context.Context, spec provider.Spec) (provider.Instance, error) {
	const attempts = 3
	backoff := 200 * time.Millisecond
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		inst, err := c.deps.Provider.Provision(ctx, spec)
		if err == nil || noCapacity(err) {
			return inst, err // another offer may have room: the caller decides
		}
		if errors.Is(err, provider.ErrInvalidSpec) {
			return provider.Instance{}, err // no attempt, here or elsewhere, can help
		}
		last = err
		c.log.Warn("provision failed", "instance", spec.ID, "attempt", attempt, "err", err)
		if attempt == attempts {
			break
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return provider.Instance{}, ctx.Err()
		}
		backoff *= 2
	}
	return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, last)
}

// waitReady polls the instance's health endpoint until it answers 2xx.
func (c *Controller) waitReady(ctx context.Context, id, healthURL string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for n := 0; ; n++ {
		last = c.probe(ctx, healthURL)
		if last == nil {
			return nil
		}
		if n%20 == 19 {
			if inst, err := c.deps.Provider.Status(ctx, id); err == nil && inst.State == provider.StateExited {
				return fmt.Errorf("%s exited before it was ready (%s); its output is in the provider's log", id, inst.Detail)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready after %s: %v", id, readyTimeout, last)
			}
			return ctx.Err()
		}
	}
}

func (c *Controller) probe(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}

var urlPlaceholder = regexp.MustCompile(`\{url:([^}]*)\}`)

// fill resolves the controller's placeholders in a replica command:
// {phoenix} and {url:NAME}. The provider fills the rest ({addr}, {port},
// {data_dir}).
func (c *Controller) fill(argv []string, a *phoenix.Allocation, i int) ([]string, error) {
	out := make([]string, len(argv))
	for j, s := range argv {
		v, err := c.fill1(s, a, i)
		if err != nil {
			return nil, err
		}
		out[j] = v
	}
	return out, nil
}

func (c *Controller) fill1(s string, a *phoenix.Allocation, i int) (string, error) {
	s = strings.ReplaceAll(s, "{phoenix}", c.deps.Executable)
	var err error
	s = urlPlaceholder.ReplaceAllStringFunc(s, func(ph string) string {
		name := phoenix.ComponentID(urlPlaceholder.FindStringSubmatch(ph)[1])
		// A member placed earlier in this allocation is in the same
		// environment: call it directly.
		for _, m := range a.Members[:i] {
			if m.Component == name && m.URL != "" {
				return m.URL
			}
		}
		p, ok := c.proxies[name]
		if !ok {
			err = fmt.Errorf("{url:%s}: no such component", name)
			return ph
		}
		return "http://" + p.Addr().String()
	})
	return s, err
}

// rollback releases what a failed allocation placed and closes it. Risk
// alone does not start another pre-warm of the component for prewarmHold,
// nor a confirmed failure another emergency one for retryHold, counted from
// the end of the release. If a release fails the allocation is left
// releasing, so that the loop tries again rather than leak the instance.
func (c *Controller) rollback(ctx context.Context, a *phoenix.Allocation, cause error) {
	released := "nothing had started"
	a.Phase = phoenix.PhaseFailed
	if err := c.releaseMembers(ctx, a); err != nil {
		c.log.Error("release after a failed allocation", "allocation", a.ID, "err", err)
		released = fmt.Sprintf("releasing failed, to be tried again: %v", err)
		a.Phase = phoenix.PhaseReleasing
	} else if ids := startedMembers(a); len(ids) > 0 {
		released = "released " + strings.Join(ids, ", ")
	}
	c.hold(a.Component)
	if err := c.save(a); err != nil {
		c.log.Error("persist failed allocation", "allocation", a.ID, "err", err)
	}
	c.event(phoenix.Event{Kind: phoenix.EventError, Component: a.Component,
		Message: fmt.Sprintf("allocation %s failed and was rolled back (%s; no new pre-warm on risk alone for %s): %v", a.ID, released, prewarmHold, cause),
		Fields:  map[string]string{"allocation": a.ID}})
}

// hold keeps the component from being pre-warmed again on risk alone for
// prewarmHold, and after a confirmed failure for retryHold.
func (c *Controller) hold(name phoenix.ComponentID) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.comps[name]
	st.prewarmHeld, st.retryHeld = now.Add(prewarmHold), now.Add(retryHold)
}

// reportedError is an error the event log already tells: the loop does not
// log it again.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// startedMembers lists the instances of a that were provisioned.
func startedMembers(a *phoenix.Allocation) []string {
	var ids []string
	for _, m := range a.Members {
		if !m.ProvisionedAt.IsZero() {
			ids = append(ids, m.InstanceID)
		}
	}
	return ids
}

func memberList(a *phoenix.Allocation) string {
	names := make([]string, len(a.Members))
	for i, m := range a.Members {
		names[i] = string(m.Component)
	}
	return strings.Join(names, ",")
}
