package traffic

import (
	"context"
	"fmt"
	"time"
)

// Switch moves traffic from the active set to the standby, like a Caddy
// reload: it holds new requests, waits up to DrainTimeout for the requests in
// flight on the active set, calls prepare (where the caller catches up state
// and promotes the standby), then makes the standby the active set and
// releases the held requests to it. The whole active set moves: after a
// switch the standby is the only member. No standby remains; the old set is
// kept as fallback when FailBack.Enabled, else dropped.
//
// Only healthy members are waited for: in-flight requests on a member that
// fails its checks (killed, hung, cut off) are not going to finish, so they
// are abandoned at the swap rather than after DrainTimeout.
//
// If prepare fails or ctx ends first, held requests go back to the old
// active set, the standby stays registered, and the error is returned
// wrapped. Requests still in flight after DrainTimeout are cancelled and sent
// to the new active if they are safe to repeat; the others are left to finish
// on the old one. prepare may be nil. It fails at once without a standby
// (ErrNoStandby) or during another switch (ErrSwitching).
func (p *Proxy) Switch(ctx context.Context, prepare func(context.Context) error) error {
	p.mu.Lock()
	var next []*target
	if p.standby != nil {
		next = []*target{p.standby}
	}
	return p.move(ctx, prepare, next, "switch", ErrNoStandby)
}

// FailBack moves traffic back to the set the last switch left (kept when
// FailBack.Enabled), exactly as Switch moves it to a standby: hold, drain,
// prepare (where the caller copies state back), swap. The set it leaves
// becomes the fallback in turn, so a later FailBack moves traffic forward
// again. It fails with ErrNoFallback when there is nothing to go back to, and
// when no fallback member passes its health checks. The API's fail-back
// command calls it; FailBack.Auto calls it by policy.
func (p *Proxy) FailBack(ctx context.Context, prepare func(context.Context) error) error {
	p.mu.Lock()
	next := p.fallback
	healthy := false
	for _, t := range next {
		healthy = healthy || t.health.healthy
	}
	if len(next) > 0 && !healthy {
		p.mu.Unlock()
		return fmt.Errorf("traffic %s: fail back: no member of the fallback (%s) passes its health checks", p.cfg.Component, next[0].backend.Name)
	}
	return p.move(ctx, prepare, next, "failback", ErrNoFallback)
}

// move is Switch and FailBack, entered with p.mu held: it moves traffic to
// next, or refuses with missing when next is empty.
func (p *Proxy) move(ctx context.Context, prepare func(context.Context) error, next []*target, cause string, missing error) error {
	old := p.active
	var refuse error
	switch {
	case p.stopping:
		refuse = ErrStopped
	case p.switching:
		refuse = ErrSwitching
	case len(next) == 0:
		refuse = missing
	}
	if refuse != nil {
		p.mu.Unlock()
		return fmt.Errorf("traffic %s: %s: %w", p.cfg.Component, cause, refuse)
	}
	var wait []*target // dead members' requests are abandoned at the swap
	for _, t := range old {
		if t.joined && t.health.healthy {
			wait = append(wait, t)
		}
	}
	p.switching = true
	p.publishLocked()
	p.mu.Unlock()

	began := time.Now()
	from, to := names(old), names(next)
	p.log.Info(cause+" started, holding requests", "from", from, "to", to)
	pending, err := p.drain(ctx, wait)
	if err == nil && prepare != nil {
		if perr := prepare(ctx); perr != nil {
			err = fmt.Errorf("prepare: %w", perr)
		}
	}
	if err != nil {
		p.undoMove(old)
		p.metrics.switches.WithLabelValues("failed").Inc()
		p.log.Warn(cause+" failed, traffic stays where it was", "active", from, "err", err)
		return fmt.Errorf("traffic %s: %s from %s to %s: %w", p.cfg.Component, cause, from, to, err)
	}
	p.commitMove(old, next, cause)
	p.transport.CloseIdleConnections()
	p.stats.switches.Add(1)
	p.metrics.switches.WithLabelValues("ok").Inc()
	p.log.Info(cause+" done", "from", from, "to", to, "took", time.Since(began), "left_in_flight", pending)
	p.notifyRoute(cause)
	return nil
}

// undoMove puts traffic back on old after a failed switch.
func (p *Proxy) undoMove(old []*target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range old {
		t.draining.Store(false)
	}
	p.switching = false
	p.publishLocked()
}

// commitMove makes next the active set and old the fallback (or drops it).
func (p *Proxy) commitMove(old, next []*target, cause string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cause == "switch" {
		p.standby = nil
	}
	for _, t := range next {
		t.joined = true
		t.draining.Store(false)
	}
	p.active = next
	for _, t := range p.fallback {
		if !contains(next, t) {
			p.dropLocked(t)
		}
	}
	p.fallback = nil
	for _, t := range old {
		p.dropLocked(t) // cancels the retryable requests still on it
		if p.cfg.FailBack.Enabled {
			p.fallback = append(p.fallback, p.successor(t))
		}
	}
	p.switching = false
	p.lastSwitch = p.cfg.Now()
	p.publishLocked()
}

// successor is a fresh target for t's backend, with t's health history, so
// that it can serve again later (as fallback) while t's abandoned requests
// stay cancelled.
func (p *Proxy) successor(t *target) *target {
	n := p.newTarget(t.backend)
	n.joined = true
	n.health, n.healthySince = t.health, t.healthySince
	n.lastErr, n.lastErrAt, n.lastCheck = t.lastErr, t.lastErrAt, t.lastCheck
	p.metrics.healthy.WithLabelValues(t.backend.Name).Set(boolGauge(t.health.healthy))
	return n
}

func names(ts []*target) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ","
		}
		s += t.backend.Name
	}
	return s
}

// drain waits until nothing is in flight on ts, DrainTimeout passes, or ctx
// ends; it returns how many were still in flight.
func (p *Proxy) drain(ctx context.Context, ts []*target) (pending int64, err error) {
	for _, t := range ts {
		t.draining.Store(true)
	}
	timer := time.NewTimer(p.cfg.DrainTimeout)
	defer timer.Stop()
	for _, t := range ts {
		for n := t.inflight.Load(); n > 0; n = t.inflight.Load() {
			select {
			case <-t.idle:
			case <-timer.C:
				pending = inflight(ts)
				p.log.Warn("drain timeout, requests still in flight", "backend", names(ts), "in_flight", pending, "timeout", p.cfg.DrainTimeout)
				return pending, nil
			case <-ctx.Done():
				return inflight(ts), fmt.Errorf("drain %s: %w", names(ts), ctx.Err())
			}
		}
	}
	return 0, nil
}

func inflight(ts []*target) int64 {
	var n int64
	for _, t := range ts {
		n += t.inflight.Load()
	}
	return n
}
