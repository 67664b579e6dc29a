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
	ok      bool
	timeout bool   // it failed by taking longer than HealthTimeout
	reason  string // why it failed, for OnHealth and status
}

// inconclusive reports whether a failed check says nothing: it timed out
// while proxied requests to the backend were being answered. On a loaded
// machine a check can miss a 150 ms deadline that real traffic shows the
// backend meets; counting it would mark a serving backend down and hold
// its traffic. A refused connection or an error status always counts, and
// so does a timeout while nothing is answered (a hung or cut-off backend).
func (r checkResult) inconclusive(answeredSinceLastCheck bool) bool {
	return !r.ok && r.timeout && answeredSinceLastCheck
}

// healthChange is a transition to report once locks are released.
type healthChange struct {
	backend Backend
	healthy bool
	reason  string
}

// healthLoop checks every backend the proxy knows every HealthInterval
// (HealthFastInterval while one's health is changing), and at once when a
// request has just made one suspect or one was added, until ctx ends. After
// each round it applies the outlier and fail-back rules.
func (p *Proxy) healthLoop(ctx context.Context) {
	timer := time.NewTimer(p.cfg.HealthInterval)
	defer timer.Stop()
	var failBacks sync.WaitGroup
	defer failBacks.Wait()
	for {
		began := time.Now()
		p.checkRound(ctx)
		if ctx.Err() == nil {
			p.outlierTick()
			p.maybeFailBack(ctx, &failBacks)
		}
		next := p.cfg.HealthInterval
		if p.healthChanging() {
			next = p.cfg.HealthFastInterval
		}
		timer.Reset(time.Until(began.Add(next)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.probe:
		}
	}
}

// healthChanging reports whether a backend is between a first check that
// disagrees with its health and the ones that would flip it.
func (p *Proxy) healthChanging() bool {
	r := p.route.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ts := range [][]*target{r.members, r.fallback, {r.standby}} {
		for _, t := range ts {
			if t != nil && t.joined && (t.health.healthy && t.health.failures > 0 || !t.health.healthy && t.health.successes > 0) {
				return true
			}
		}
	}
	return false
}

// checkRound checks the current backends concurrently, so a hung one costs
// HealthTimeout, not the others' turn.
func (p *Proxy) checkRound(ctx context.Context) {
	r := p.route.Load()
	targets := append([]*target(nil), r.members...)
	if r.standby != nil {
		targets = append(targets, r.standby)
	}
	targets = append(targets, r.fallback...)
	results := make([]checkResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { results[i] = p.check(ctx, t) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	p.applyChecks(targets, results)
}

// applyChecks feeds results to the targets that are still known, then
// reports transitions outside the lock.
func (p *Proxy) applyChecks(targets []*target, results []checkResult) {
	now := p.cfg.Now()
	var changes []healthChange
	joined := false
	p.mu.Lock()
	republish := false
	for i, t := range targets {
		if !p.knownLocked(t) {
			continue // dropped while it was being checked
		}
		res := results[i]
		if !t.joined {
			if res.ok {
				t.joined, joined, republish = true, true, true
				t.health = hysteresis{healthy: true, successes: 1}
				t.healthySince, t.lastCheck = now, now
				p.metrics.healthy.WithLabelValues(t.backend.Name).Set(1)
				p.log.Info("backend joined the active set", "backend", t.backend.Name)
			} else {
				t.lastCheck, t.lastErr, t.lastErrAt = now, res.reason, now
			}
			continue
		}
		c, flipped, usableChanged := p.applyCheck(t, res, now)
		if flipped {
			changes = append(changes, c)
		}
		republish = republish || flipped || usableChanged
	}
	if republish {
		p.publishLocked()
	}
	p.mu.Unlock()
	for _, c := range changes {
		p.reportHealth(c)
	}
	if joined {
		p.notifyRoute("join")
	}
}

// applyCheck feeds one result to t, with Proxy.mu held, and reports a
// transition of its health, and whether its usability changed.
func (p *Proxy) applyCheck(t *target, res checkResult, now time.Time) (c healthChange, flipped, usableChanged bool) {
	wasUsable := t.health.usable()
	t.lastCheck = now
	answered := t.passive.reqs.Load() - t.passive.errs.Load()
	progressed := answered != t.answeredAtCheck
	t.answeredAtCheck = answered
	if res.inconclusive(progressed) {
		t.lastErr, t.lastErrAt = res.reason+" (not counted: requests were answered meanwhile)", now
		return c, false, false
	}
	if !res.ok {
		t.lastErr, t.lastErrAt = res.reason, now
		t.healthySince = time.Time{}
	} else if t.healthySince.IsZero() {
		t.healthySince = now
	}
	if t.health.observe(res.ok, p.cfg.UnhealthyAfter, p.cfg.HealthyAfter) {
		reason := res.reason
		if res.ok {
			reason = fmt.Sprintf("%d consecutive checks passed", t.health.successes)
		}
		// Set under the lock, so that a target dropped meanwhile does not
		// get its series back.
		p.metrics.healthy.WithLabelValues(t.backend.Name).Set(boolGauge(res.ok))
		c, flipped = healthChange{backend: t.backend.clone(), healthy: res.ok, reason: reason}, true
	}
	return c, flipped, t.health.usable() != wasUsable
}

func (p *Proxy) knownLocked(t *target) bool {
	return t == p.standby || contains(p.active, t) || contains(p.fallback, t)
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

// check probes one backend: for HTTP its health path, where any status from
// 200 to 399 passes; for TCP a new connection.
func (p *Proxy) check(ctx context.Context, t *target) checkResult {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HealthTimeout)
	defer cancel()
	if p.cfg.Protocol == TCP {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return p.failedCheck(ctx, err)
		}
		conn.Close()
		return checkResult{ok: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.healthURL, nil)
	if err != nil {
		return checkResult{reason: err.Error()}
	}
	resp, err := p.healthTransport.RoundTrip(req)
	if err != nil {
		return p.failedCheck(ctx, err)
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return checkResult{reason: fmt.Sprintf("status %d", resp.StatusCode)}
	}
	return checkResult{ok: true}
}

func (p *Proxy) failedCheck(ctx context.Context, err error) checkResult {
	var nerr net.Error
	timeout := errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout()
	return checkResult{timeout: timeout, reason: p.checkReason(ctx, err)}
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
