package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// hysteresis is the health verdict on one backend. It is a pure state
// machine, fed with check results and passive failures, so its rules can be
// tested as tables without sockets.
//
// A backend starts healthy: a standby is registered once it is pre-warmed,
// and the active must serve before the first check completes.
type hysteresis struct {
	healthy   bool
	suspect   bool // a proxied request failed on transport; cleared by the next good check
	failures  int  // consecutive failed checks
	successes int  // consecutive good checks
}

func newHysteresis() hysteresis { return hysteresis{healthy: true} }

// maxStreak caps the streak counters; only the thresholds matter.
const maxStreak = 1 << 20

// observe records one check result and reports whether healthy flipped.
func (h *hysteresis) observe(ok bool, unhealthyAfter, healthyAfter int) (flipped bool) {
	if ok {
		h.failures = 0
		h.successes = min(h.successes+1, maxStreak)
		h.suspect = false
		if !h.healthy && h.successes >= healthyAfter {
			h.healthy = true
			return true
		}
		return false
	}
	h.successes = 0
	h.failures = min(h.failures+1, maxStreak)
	if h.healthy && h.failures >= unhealthyAfter {
		h.healthy = false
		return true
	}
	return false
}

// markSuspect records a passive failure and reports whether the backend was
// not suspect before (so that one immediate probe is worth scheduling).
func (h *hysteresis) markSuspect() bool {
	if h.suspect {
		return false
	}
	h.suspect = true
	return true
}

// usable reports whether new requests may be sent to the backend.
func (h hysteresis) usable() bool { return h.healthy && !h.suspect }

// checkResult is the outcome of one health check.
type checkResult struct {
	ok     bool
	reason string // why it failed, for OnHealth and status
}

// healthChange is a transition to report once locks are released.
type healthChange struct {
	backend Backend
	healthy bool
	reason  string
}

// healthLoop checks the active and the standby every HealthInterval, and at
// once when a request has just made the active suspect, until ctx ends.
func (p *Proxy) healthLoop(ctx context.Context) {
	tick := time.NewTicker(p.cfg.HealthInterval)
	defer tick.Stop()
	for {
		p.checkRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.probe:
		}
	}
}

// checkRound checks the current backends concurrently, so a hung one costs
// HealthTimeout, not the others' turn.
func (p *Proxy) checkRound(ctx context.Context) {
	r := p.route.Load()
	targets := [2]*target{r.active, r.standby}
	var results [2]checkResult
	var wg sync.WaitGroup
	for i, t := range targets {
		if t != nil {
			wg.Go(func() { results[i] = p.check(ctx, t) })
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	p.applyChecks(targets, results)
}

// applyChecks feeds results to the targets that are still routed, then
// reports transitions outside the lock.
func (p *Proxy) applyChecks(targets [2]*target, results [2]checkResult) {
	now := p.cfg.Now()
	var changes [2]healthChange
	n := 0
	p.mu.Lock()
	republish := false
	for i, t := range targets {
		if t == nil || (t != p.active && t != p.standby) {
			continue // dropped while it was being checked
		}
		res := results[i]
		wasUsable := t.health.usable()
		t.lastCheck = now
		if !res.ok {
			t.lastErr, t.lastErrAt = res.reason, now
		}
		if t.health.observe(res.ok, p.cfg.UnhealthyAfter, p.cfg.HealthyAfter) {
			reason := res.reason
			if res.ok {
				reason = fmt.Sprintf("%d consecutive checks passed", t.health.successes)
			}
			changes[n] = healthChange{backend: t.backend.clone(), healthy: res.ok, reason: reason}
			n++
			// Set under the lock, so that a target dropped meanwhile
			// does not get its series back.
			p.metrics.healthy.WithLabelValues(t.backend.Name).Set(boolGauge(res.ok))
		}
		if t.health.usable() != wasUsable {
			republish = true
		}
	}
	if republish {
		p.publishLocked()
	}
	p.mu.Unlock()
	for _, c := range changes[:n] {
		p.reportHealth(c)
	}
}

func (p *Proxy) reportHealth(c healthChange) {
	if c.healthy {
		p.log.Info("backend healthy", "backend", c.backend.Name, "reason", c.reason)
	} else {
		p.log.Warn("backend unhealthy", "backend", c.backend.Name, "reason", c.reason)
	}
	if p.cfg.OnHealth != nil {
		p.cfg.OnHealth(c.backend, c.healthy, c.reason)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// check probes one backend's health path. Any status from 200 to 399 passes.
func (p *Proxy) check(ctx context.Context, t *target) checkResult {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.healthURL, nil)
	if err != nil {
		return checkResult{reason: err.Error()}
	}
	resp, err := p.healthTransport.RoundTrip(req)
	if err != nil {
		return checkResult{reason: p.checkReason(ctx, err)}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return checkResult{reason: fmt.Sprintf("status %d", resp.StatusCode)}
	}
	return checkResult{ok: true}
}

// checkReason turns a check's error into the short reason operators read.
func (p *Proxy) checkReason(ctx context.Context, err error) string {
	var nerr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return fmt.Sprintf("timeout after %s", p.cfg.HealthTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before a response"
	}
	return err.Error()
}
