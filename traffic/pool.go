package traffic

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// AddBackend adds b to the active set. It is health-checked at once and
// joins the set (receives requests) after its first passing check; until
// then Backends lists it and Status shows it as not joined. It fails for an
// invalid backend, a name or URL already registered (ErrDuplicate), during a
// switch (ErrSwitching: retry after it) or once the proxy stops.
func (p *Proxy) AddBackend(b Backend) error {
	if err := b.validateFor(p.cfg.Protocol); err != nil {
		return fmt.Errorf("traffic %s: add backend: %w", p.cfg.Component, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stopping:
		return fmt.Errorf("traffic %s: add backend %s: %w", p.cfg.Component, b.Name, ErrStopped)
	case p.switching:
		return fmt.Errorf("traffic %s: add backend %s: %w", p.cfg.Component, b.Name, ErrSwitching)
	}
	for _, t := range p.registeredLocked() {
		if t.backend.Name == b.Name || t.backend.URL.String() == b.URL.String() {
			return fmt.Errorf("traffic %s: add backend %s: %w as %s", p.cfg.Component, b, ErrDuplicate, t.backend)
		}
	}
	t := p.newTarget(b)
	t.health = hysteresis{} // unhealthy until its first check passes
	p.metrics.healthy.WithLabelValues(b.Name).Set(0)
	p.active = append(p.active[:len(p.active):len(p.active)], t)
	p.publishLocked()
	p.log.Info("backend added, joins after a passing check", "backend", b.String())
	p.askProbe()
	return nil
}

// registeredLocked lists every backend the proxy knows.
func (p *Proxy) registeredLocked() []*target {
	all := append([]*target(nil), p.active...)
	if p.standby != nil {
		all = append(all, p.standby)
	}
	return append(all, p.fallback...)
}

// RemoveBackend takes the named backend out of the active set: it receives
// no new request from the moment RemoveBackend is called, and RemoveBackend
// returns once its in-flight requests (for TCP, connections) have finished,
// so that no request fails when the replica then stops. If ctx ends first it
// returns ctx's error; the backend stays out and its requests may still
// finish. It refuses to remove the last joined backend (ErrLastBackend).
func (p *Proxy) RemoveBackend(ctx context.Context, name string) error {
	p.mu.Lock()
	i := -1
	others := 0
	for j, t := range p.active {
		if t.backend.Name == name {
			i = j
		} else if t.joined {
			others++
		}
	}
	var err error
	switch {
	case p.switching:
		err = ErrSwitching
	case i < 0:
		err = ErrNotFound
	case p.active[i].joined && others == 0:
		err = ErrLastBackend
	}
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("traffic %s: remove backend %s: %w", p.cfg.Component, name, err)
	}
	t := p.active[i]
	p.active = append(p.active[:i:i], p.active[i+1:]...)
	t.draining.Store(true)
	p.publishLocked()
	p.mu.Unlock()
	p.log.Info("backend removed, draining", "backend", t.backend.Name, "in_flight", t.inflight.Load())
	p.notifyRoute("remove")

	// Publishing first and reading the count after pairs with enter, which
	// counts first and checks the route after: one sees the other.
	for t.inflight.Load() > 0 {
		select {
		case <-t.idle:
		case <-ctx.Done():
			return fmt.Errorf("traffic %s: remove backend %s: %d still in flight: %w", p.cfg.Component, name, t.inflight.Load(), ctx.Err())
		}
	}
	p.mu.Lock()
	p.dropLocked(t)
	p.mu.Unlock()
	p.log.Info("backend drained and removed", "backend", t.backend.Name)
	return nil
}

// Backends returns the active set in the order added, including backends
// added and not yet joined (Status tells which have).
func (p *Proxy) Backends() []Backend {
	return backendsOf(p.route.Load().members)
}

// pick chooses among usable backends the less loaded of two drawn at
// random (the power of two choices): as even as round robin when backends
// are alike, and it steers away from one that has become slow.
func pick(ts []*target) *target {
	if len(ts) == 1 {
		return ts[0]
	}
	i := rand.IntN(len(ts))
	j := rand.IntN(len(ts) - 1)
	if j >= i {
		j++
	}
	a, b := ts[i], ts[j]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}
