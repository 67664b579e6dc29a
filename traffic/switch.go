package traffic

import (
	"context"
	"fmt"
	"time"
)

// Switch moves traffic from the active backend to the standby, like a Caddy
// reload: it holds new requests, waits up to DrainTimeout for the requests in
// flight on the active, calls prepare (where the caller catches up state and
// promotes the standby), then makes the standby the active and releases the
// held requests to it. The old active is dropped; no standby remains.
//
// If prepare fails or ctx ends first, held requests go back to the old
// active, the standby stays registered, and the error is returned wrapped.
// Requests still in flight after DrainTimeout are cancelled and sent to the
// new active if they are safe to repeat; the others are left to finish on
// the old one. prepare may be nil. It fails at once without a standby
// (ErrNoStandby) or during another switch (ErrSwitching).
func (p *Proxy) Switch(ctx context.Context, prepare func(context.Context) error) error {
	p.mu.Lock()
	old, next := p.active, p.standby
	var refuse error
	switch {
	case p.stopping:
		refuse = ErrStopped
	case p.switching:
		refuse = ErrSwitching
	case next == nil:
		refuse = ErrNoStandby
	}
	if refuse != nil {
		p.mu.Unlock()
		return fmt.Errorf("traffic %s: switch: %w", p.cfg.Component, refuse)
	}
	p.switching = true
	p.publishLocked()
	p.mu.Unlock()

	began := time.Now()
	p.log.Info("switch started, holding requests", "from", old.backend.Name, "to", next.backend.Name)
	pending, err := p.drain(ctx, old)
	if err == nil && prepare != nil {
		if perr := prepare(ctx); perr != nil {
			err = fmt.Errorf("prepare: %w", perr)
		}
	}
	if err != nil {
		old.draining.Store(false)
		p.mu.Lock()
		p.switching = false
		p.publishLocked()
		p.mu.Unlock()
		p.metrics.switches.WithLabelValues("failed").Inc()
		p.log.Warn("switch failed, traffic stays on the active", "active", old.backend.Name, "err", err)
		return fmt.Errorf("traffic %s: switch from %s to %s: %w", p.cfg.Component, old.backend.Name, next.backend.Name, err)
	}

	p.mu.Lock()
	p.active, p.standby = next, nil
	p.switching = false
	p.lastSwitch = p.cfg.Now()
	p.dropLocked(old) // cancels the retryable requests still on it
	p.publishLocked()
	p.mu.Unlock()
	p.transport.CloseIdleConnections()
	p.stats.switches.Add(1)
	p.metrics.switches.WithLabelValues("ok").Inc()
	p.log.Info("switched", "from", old.backend.Name, "to", next.backend.Name,
		"took", time.Since(began), "left_in_flight", pending)
	return nil
}

// drain waits until no attempt is in flight on t, DrainTimeout passes, or
// ctx ends; it returns how many were still in flight.
func (p *Proxy) drain(ctx context.Context, t *target) (pending int64, err error) {
	t.draining.Store(true)
	timer := time.NewTimer(p.cfg.DrainTimeout)
	defer timer.Stop()
	for {
		n := t.inflight.Load()
		if n == 0 {
			return 0, nil
		}
		select {
		case <-t.idle:
		case <-timer.C:
			p.log.Warn("drain timeout, requests still in flight", "backend", t.backend.Name, "in_flight", n, "timeout", p.cfg.DrainTimeout)
			return n, nil
		case <-ctx.Done():
			return n, fmt.Errorf("drain %s: %w", t.backend.Name, ctx.Err())
		}
	}
}
