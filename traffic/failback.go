package traffic

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// FailbackPolicy says whether a proxy remembers the set a switch left and
// when it moves traffic back there by itself. Failing back on command is
// Proxy.FailBack; the policy adds the automatic case, and Due is the pure
// rule both the proxy and a caller can evaluate.
type FailbackPolicy struct {
	// Enabled keeps the set a switch leaves as fallback, health-checked,
	// so that FailBack can return to it. Off, a switch drops it.
	Enabled bool
	// Auto fails back without a command once the fallback has passed
	// every health check for HealthyFor and the last switch is MinDwell
	// old. It needs Enabled.
	Auto       bool
	HealthyFor time.Duration // default 30s
	MinDwell   time.Duration // default 2m: no ping-pong between sets
}

// Fail-back defaults.
const (
	DefaultFailBackHealthyFor = 30 * time.Second
	DefaultFailBackMinDwell   = 2 * time.Minute
)

func (f FailbackPolicy) withDefaults() FailbackPolicy {
	setDefault(&f.HealthyFor, DefaultFailBackHealthyFor)
	setDefault(&f.MinDwell, DefaultFailBackMinDwell)
	return f
}

func (f FailbackPolicy) validate() error {
	var errs []error
	if f.Auto && !f.Enabled {
		errs = append(errs, errors.New("Auto needs Enabled: without a kept fallback there is nothing to fail back to"))
	}
	if f.HealthyFor < 0 || f.MinDwell < 0 {
		errs = append(errs, errors.New("HealthyFor and MinDwell must be positive (zero means the default)"))
	}
	return errors.Join(errs...)
}

// FailbackView is what the fail-back rule reads.
type FailbackView struct {
	Now          time.Time
	LastSwitch   time.Time
	Switching    bool
	HaveFallback bool
	// HealthySince is the earliest time since which some fallback member
	// has passed every check; zero if none is passing.
	HealthySince time.Time
}

// Due reports whether the policy fails back now, and why or why not.
func (f FailbackPolicy) Due(v FailbackView) (bool, string) {
	switch {
	case !f.Enabled || !f.Auto:
		return false, "automatic fail back is off"
	case !v.HaveFallback:
		return false, "no fallback"
	case v.Switching:
		return false, "a switch is in progress"
	case v.HealthySince.IsZero():
		return false, "the fallback fails its health checks"
	case v.Now.Sub(v.HealthySince) < f.HealthyFor:
		return false, fmt.Sprintf("the fallback has been healthy for %s of the %s required", v.Now.Sub(v.HealthySince).Round(time.Millisecond), f.HealthyFor)
	case v.Now.Sub(v.LastSwitch) < f.MinDwell:
		return false, fmt.Sprintf("the last switch was %s ago, under the %s dwell", v.Now.Sub(v.LastSwitch).Round(time.Millisecond), f.MinDwell)
	}
	return true, fmt.Sprintf("the fallback has passed every check for %s and the last switch was %s ago",
		v.Now.Sub(v.HealthySince).Round(time.Second), v.Now.Sub(v.LastSwitch).Round(time.Second))
}

// FailBackDue evaluates the proxy's fail-back policy on its current state.
func (p *Proxy) FailBackDue() (bool, string) {
	p.mu.Lock()
	v := FailbackView{Now: p.cfg.Now(), LastSwitch: p.lastSwitch, Switching: p.switching, HaveFallback: len(p.fallback) > 0}
	for _, t := range p.fallback {
		if !t.healthySince.IsZero() && (v.HealthySince.IsZero() || t.healthySince.Before(v.HealthySince)) {
			v.HealthySince = t.healthySince
		}
	}
	p.mu.Unlock()
	return p.cfg.FailBack.Due(v)
}

// maybeFailBack starts an automatic fail back when the policy says so; one
// at a time, owned by the health loop.
func (p *Proxy) maybeFailBack(ctx context.Context, wg *sync.WaitGroup) {
	if !p.cfg.FailBack.Auto {
		return
	}
	due, why := p.FailBackDue()
	if !due {
		return
	}
	p.mu.Lock()
	if p.failingBack || p.cfg.Now().Before(p.failBackNotBefore) {
		p.mu.Unlock()
		return
	}
	p.failingBack = true
	p.mu.Unlock()
	p.log.Info("failing back by policy", "reason", why)
	wg.Go(func() {
		defer func() {
			p.mu.Lock()
			p.failingBack = false
			p.mu.Unlock()
		}()
		if err := p.FailBack(ctx, p.cfg.FailBackPrepare); err != nil && ctx.Err() == nil {
			p.mu.Lock()
			p.failBackNotBefore = p.cfg.Now().Add(p.cfg.FailBack.HealthyFor)
			p.mu.Unlock()
			p.log.Warn("automatic fail back failed, trying again later", "err", err, "after", p.cfg.FailBack.HealthyFor)
		}
	})
}
