package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/traffic"
)

// Pool is the set of backends a component's traffic is spread over: the
// Traffic Switcher's proxy. RemoveBackend drains: it returns once the
// backend's in-flight requests are done.
type Pool interface {
	AddBackend(b traffic.Backend) error
	RemoveBackend(ctx context.Context, name string) error
	Backends() []traffic.Backend
}

// poolStatus is the optional ability of a pool to tell which backends have
// joined (passed their first health check); the Actor reports the others as
// not ready.
type poolStatus interface {
	Status() traffic.Status
}

// Instances is what the Actor needs of a provider.
type Instances interface {
	Provision(ctx context.Context, spec provider.Spec) (provider.Instance, error)
	Status(ctx context.Context, id string) (provider.Instance, error)
	Release(ctx context.Context, id string) error
}

var (
	_ Pool       = (*traffic.Proxy)(nil)
	_ poolStatus = (*traffic.Proxy)(nil)
	_ Instances  = provider.Provider(nil)
)

// ActorConfig configures an Actor.
type ActorConfig struct {
	// Component is the component whose replicas the Actor runs.
	Component phoenix.ComponentID
	// Template is the replica's spec; the Actor sets ID and Component per
	// replica ("<component>-scale-<n>").
	Template  provider.Spec
	Instances Instances
	Pool      Pool
	// Scheme of the replicas' URLs: http (default) or https.
	Scheme string
	// Record, if set, persists the IDs of the instances the Actor owns,
	// so that a daemon restarted after a crash can Adopt them instead of
	// losing track of them. It is called with the new list before
	// instances are provisioned (the list then names them) and after one is
	// released: a crash between the two leaves an ID recorded, never an
	// instance running unrecorded. An error stops the change.
	Record func(ids []string) error
	Logger *slog.Logger
}

// Actor carries replica counts out: it starts replicas through a provider
// and adds them to the pool, and removes replicas by draining them from the
// pool before releasing them, newest first, so that no request fails when
// one stops. Backends of the pool that the Actor did not start (the
// component's own instance) count as replicas and are never removed. An
// Actor is safe for concurrent use; Apply calls are serialised. The
// provider's Provision is called concurrently, for different IDs.
type Actor struct {
	cfg ActorConfig
	log *slog.Logger

	mu    sync.Mutex
	owned []ownedReplica // started by the Actor, oldest first
	stray []string       // out of the pool, but their release failed: still recorded
	// starting are the IDs being provisioned: recorded, not yet in the pool
	starting []string
	next     int
}

type ownedReplica struct {
	id      string // the provider's instance ID
	backend traffic.Backend
}

// NewActor validates cfg and returns an Actor with no replicas of its own.
func NewActor(cfg ActorConfig) (*Actor, error) {
	if err := cfg.Component.Validate(); err != nil {
		return nil, fmt.Errorf("scale actor: %w", err)
	}
	if cfg.Instances == nil || cfg.Pool == nil {
		return nil, errors.New("scale actor: a provider and a pool are required")
	}
	if len(cfg.Template.Command) == 0 {
		return nil, errors.New("scale actor: the template has no command")
	}
	switch cfg.Scheme {
	case "":
		cfg.Scheme = "http"
	case "http", "https":
	default:
		return nil, fmt.Errorf("scale actor: scheme %q: write http or https", cfg.Scheme)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Actor{cfg: cfg, log: cfg.Logger.With("component", string(cfg.Component))}, nil
}

// Snapshot describes the replicas as an autoscaler reads them: every
// backend of the pool is a replica, ready once it has joined (when the pool
// can tell), and external holds the External metrics.
func (a *Actor) Snapshot(s Snapshot, external map[string]float64) Snapshot {
	backends := a.cfg.Pool.Backends()
	joined := map[string]bool{}
	ps, canTell := a.cfg.Pool.(poolStatus)
	if canTell {
		for _, b := range ps.Status().Pool {
			joined[b.Name] = b.Joined
		}
	}
	s.Replicas, s.StatusReplicas = len(backends), len(backends)
	s.External = external
	s.Pods = make([]Pod, len(backends))
	for i, b := range backends {
		ready := !canTell || joined[b.Name]
		phase := PodRunning
		if !ready {
			phase = PodPending
		}
		s.Pods[i] = Pod{Name: b.Name, Phase: phase, Ready: ready}
	}
	return s
}

// Replicas is the number of backends in the pool.
func (a *Actor) Replicas() int { return len(a.cfg.Pool.Backends()) }

// Apply brings the pool to n replicas. Adding starts the missing replicas
// together, so that k of them take one start-up rather than k (a scale-up
// is most often late already), and adds each to the pool as soon as it is
// up (it joins after its first good health check); one that fails to start
// is released, and the others stay. Removing drains the newest replicas
// the Actor started, then releases them, and stops at the first error.
// Either way what was done stays in place; calling it again continues.
func (a *Actor) Apply(ctx context.Context, n int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	current := len(a.cfg.Pool.Backends())
	if current < n {
		return a.add(ctx, n-current)
	}
	for ; current > n; current-- {
		if len(a.owned) == 0 {
			return fmt.Errorf("scale %s to %d: the %d replicas left were not started by the scaler", a.cfg.Component, n, current)
		}
		if err := a.remove(ctx); err != nil {
			return err
		}
	}
	return nil
}

// idPrefix is what the IDs of the Actor's replicas start with, before
// their number.
func (a *Actor) idPrefix() string {
	prefix := a.cfg.Template.ID
	if prefix == "" {
		prefix = string(a.cfg.Component)
	}
	return prefix + "-scale-"
}

// add starts k replicas: it records their IDs, provisions them
// concurrently, and adds each to the pool as its provisioning returns, or
// releases it if that failed.
func (a *Actor) add(ctx context.Context, k int) error {
	specs := make([]provider.Spec, k)
	for i := range specs {
		a.next++
		specs[i] = a.cfg.Template
		specs[i].Component = a.cfg.Component
		specs[i].ID = a.idPrefix() + strconv.Itoa(a.next)
		a.starting = append(a.starting, specs[i].ID)
	}
	if err := a.record(); err != nil {
		a.starting = nil
		return err
	}
	type started struct {
		id   string
		inst provider.Instance
		err  error
	}
	done := make(chan started, k)
	for _, spec := range specs {
		go func() {
			inst, err := a.cfg.Instances.Provision(ctx, spec)
			done <- started{spec.ID, inst, err}
		}()
	}
	var errs []error
	first := len(a.owned)
	for range k {
		r := <-done
		a.starting = slices.DeleteFunc(a.starting, func(id string) bool { return id == r.id })
		if r.err != nil {
			errs = append(errs, errors.Join(fmt.Errorf("scale %s: provision %s: %w", a.cfg.Component, r.id, r.err), a.unstart(ctx, r.id)))
			continue
		}
		b, err := a.backendOf(r.inst)
		if err == nil {
			err = a.cfg.Pool.AddBackend(b)
		}
		if err != nil {
			errs = append(errs, errors.Join(fmt.Errorf("scale %s: add %s: %w", a.cfg.Component, r.id, err), a.unstart(ctx, r.id)))
			continue
		}
		a.owned = append(a.owned, ownedReplica{id: r.id, backend: b})
		a.log.Info("replica added", "instance", r.id, "url", b.URL.String())
	}
	// Oldest first, as started rather than as their start-ups ended.
	order := make(map[string]int, k)
	for i, spec := range specs {
		order[spec.ID] = i
	}
	slices.SortFunc(a.owned[first:], func(x, y ownedReplica) int { return order[x.id] - order[y.id] })
	if len(errs) > 0 {
		// A failed start was recorded away in arrival order: record the
		// start order, which Adopt keeps.
		errs = append(errs, a.record())
	}
	return errors.Join(errs...)
}

// unstart undoes an add that failed after id was recorded: it releases
// whatever the provider started (if anything) and records the list without
// id, or keeps id recorded as stray when the release fails.
func (a *Actor) unstart(ctx context.Context, id string) error {
	if err := a.cfg.Instances.Release(ctx, id); err != nil && !errors.Is(err, provider.ErrNotFound) {
		a.stray = append(a.stray, id)
		return fmt.Errorf("scale %s: release %s: %w", a.cfg.Component, id, err)
	}
	return a.record()
}

// backendOf is the pool's backend for a replica instance.
func (a *Actor) backendOf(inst provider.Instance) (traffic.Backend, error) {
	u, err := url.Parse(a.cfg.Scheme + "://" + inst.Addr)
	if err == nil && u.Host == "" {
		err = fmt.Errorf("instance address %q has no host", inst.Addr)
	}
	if err != nil {
		return traffic.Backend{}, err
	}
	return traffic.Backend{Name: backendName(inst.ID), URL: u}, nil
}

// record persists the IDs of the owned, stray and starting replicas
// through Record.
func (a *Actor) record() error {
	if a.cfg.Record == nil {
		return nil
	}
	ids := make([]string, 0, len(a.owned)+len(a.stray)+len(a.starting))
	for _, r := range a.owned {
		ids = append(ids, r.id)
	}
	ids = append(ids, a.stray...)
	if err := a.cfg.Record(append(ids, a.starting...)); err != nil {
		return fmt.Errorf("scale %s: record replicas: %w", a.cfg.Component, err)
	}
	return nil
}

// Adopt takes over the replicas a previous Actor recorded (its Record
// list, read back after a restart): each still running rejoins the pool as
// the Actor's own; any other is released. It must be called before the
// first Apply. What it could not settle stays recorded, for the next try.
func (a *Actor) Adopt(ctx context.Context, ids []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if n, err := strconv.Atoi(strings.TrimPrefix(id, a.idPrefix())); err == nil {
			a.next = max(a.next, n) // a new replica never reuses a recorded ID
		}
		inst, err := a.cfg.Instances.Status(ctx, id)
		if err == nil && inst.State == provider.StateRunning {
			var b traffic.Backend
			if b, err = a.backendOf(inst); err == nil {
				if err = a.cfg.Pool.AddBackend(b); err == nil {
					a.owned = append(a.owned, ownedReplica{id: id, backend: b})
					a.log.Info("replica adopted after a restart", "instance", id, "url", b.URL.String())
					continue
				}
			}
		}
		if err != nil && !errors.Is(err, provider.ErrNotFound) {
			a.log.Warn("recorded replica not adopted, releasing it", "instance", id, "err", err)
		}
		if err := a.cfg.Instances.Release(ctx, id); err != nil && !errors.Is(err, provider.ErrNotFound) {
			errs = append(errs, fmt.Errorf("scale %s: release recorded replica %s: %w", a.cfg.Component, id, err))
			a.stray = append(a.stray, id) // Close, or a later Adopt, tries again
		}
	}
	errs = append(errs, a.record())
	return errors.Join(errs...)
}

func (a *Actor) remove(ctx context.Context) error {
	r := a.owned[len(a.owned)-1]
	if err := a.cfg.Pool.RemoveBackend(ctx, r.backend.Name); err != nil && !errors.Is(err, traffic.ErrNotFound) {
		return fmt.Errorf("scale %s: drain %s: %w", a.cfg.Component, r.backend.Name, err)
	}
	a.owned = a.owned[:len(a.owned)-1]
	if err := a.release(ctx, r.id); err != nil {
		a.stray = append(a.stray, r.id) // drained, still recorded: Close tries the release again
		return err
	}
	a.log.Info("replica drained and released", "instance", r.id)
	return a.record()
}

func (a *Actor) release(ctx context.Context, id string) error {
	if err := a.cfg.Instances.Release(ctx, id); err != nil {
		return fmt.Errorf("scale %s: release %s: %w", a.cfg.Component, id, err)
	}
	return nil
}

// Close drains and releases every replica the Actor started, releasing
// even those whose drain failed, so that no instance is left behind.
func (a *Actor) Close(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	stray := a.stray
	a.stray = nil
	for len(a.owned) > 0 {
		r := a.owned[len(a.owned)-1]
		a.owned = a.owned[:len(a.owned)-1]
		if err := a.cfg.Pool.RemoveBackend(ctx, r.backend.Name); err != nil && !errors.Is(err, traffic.ErrNotFound) {
			errs = append(errs, fmt.Errorf("scale %s: drain %s: %w", a.cfg.Component, r.backend.Name, err))
		}
		stray = append(stray, r.id)
	}
	for _, id := range stray {
		if err := a.release(ctx, id); err != nil {
			errs = append(errs, err)
			a.stray = append(a.stray, id)
		}
	}
	errs = append(errs, a.record())
	return errors.Join(errs...)
}

// backendName is the pool's name for a replica: the instance ID, which is
// already in the pool's alphabet.
func backendName(id string) string { return strings.ReplaceAll(id, "/", "_") }
