package traffic

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// OutlierConfig is passive outlier detection, after Envoy's: a backend of the
// active set whose proxied requests keep failing (transport errors or 5xx
// answers) is ejected, receiving no new requests for a while, even though its
// health checks pass. The last serving backend of a set is never ejected: it
// is only flagged (Status shows it), and the control loop decides.
type OutlierConfig struct {
	Disabled bool // no ejection and no flag

	ConsecutiveErrors int           // failed requests in a row that eject, default 5
	ErrorRate         float64       // share of failed requests in one Interval that ejects, in (0,1], default 0.5
	MinRequests       int           // requests an Interval needs before ErrorRate applies, default 20
	Interval          time.Duration // the window ErrorRate is measured over, default 10s

	// EjectionTime is how long the first ejection lasts, default 30s; the
	// n-th in a row lasts n times as long, at most MaxEjectionTime (default 5m).
	EjectionTime    time.Duration
	MaxEjectionTime time.Duration
	// MaxEjectedPercent caps the share of the active set out at once,
	// default 50; one backend may always be ejected while another serves.
	MaxEjectedPercent int
}

// Outlier defaults.
const (
	DefaultConsecutiveErrors = 5
	DefaultErrorRate         = 0.5
	DefaultMinRequests       = 20
	DefaultOutlierInterval   = 10 * time.Second
	DefaultEjectionTime      = 30 * time.Second
	DefaultMaxEjectionTime   = 5 * time.Minute
	DefaultMaxEjectedPercent = 50
)

func (c OutlierConfig) withDefaults() OutlierConfig {
	setDefault(&c.ConsecutiveErrors, DefaultConsecutiveErrors)
	setDefault(&c.ErrorRate, DefaultErrorRate)
	setDefault(&c.MinRequests, DefaultMinRequests)
	setDefault(&c.Interval, DefaultOutlierInterval)
	setDefault(&c.EjectionTime, DefaultEjectionTime)
	setDefault(&c.MaxEjectionTime, DefaultMaxEjectionTime)
	setDefault(&c.MaxEjectedPercent, DefaultMaxEjectedPercent)
	return c
}

func (c OutlierConfig) validate() error {
	var errs []error
	if c.ConsecutiveErrors < 0 {
		errs = append(errs, fmt.Errorf("ConsecutiveErrors %d: must be at least 1", c.ConsecutiveErrors))
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("ErrorRate %g: write a share between 0 and 1, such as 0.5", c.ErrorRate))
	}
	if c.MinRequests < 0 {
		errs = append(errs, fmt.Errorf("MinRequests %d: must be at least 1", c.MinRequests))
	}
	if c.Interval < 0 || c.EjectionTime < 0 || c.MaxEjectionTime < 0 {
		errs = append(errs, errors.New("Interval, EjectionTime and MaxEjectionTime must be positive (zero means the default)"))
	}
	if c.MaxEjectionTime > 0 && c.EjectionTime > c.MaxEjectionTime {
		errs = append(errs, fmt.Errorf("EjectionTime %s exceeds MaxEjectionTime %s", c.EjectionTime, c.MaxEjectionTime))
	}
	if c.MaxEjectedPercent < 0 || c.MaxEjectedPercent > 100 {
		errs = append(errs, fmt.Errorf("MaxEjectedPercent %d: write a percentage from 1 to 100", c.MaxEjectedPercent))
	}
	return errors.Join(errs...)
}

// verdict says why a backend with consec failures in a row, and reqs
// requests of which errs failed in the current window, is an outlier; "" if
// it is not.
func (c OutlierConfig) verdict(consec int64, reqs, errs uint64) string {
	if c.Disabled {
		return ""
	}
	if consec >= int64(c.ConsecutiveErrors) {
		return fmt.Sprintf("%d consecutive failed requests", consec)
	}
	if reqs >= uint64(c.MinRequests) && reqs > 0 && float64(errs) >= c.ErrorRate*float64(reqs) {
		return fmt.Sprintf("%d of %d requests failed in %s (limit %.0f%%)", errs, reqs, c.Interval, 100*c.ErrorRate)
	}
	return ""
}

// ejectionTime is how long the n-th consecutive ejection (from 1) lasts.
func (c OutlierConfig) ejectionTime(n int) time.Duration {
	d := c.EjectionTime * time.Duration(max(n, 1))
	if d > c.MaxEjectionTime || d <= 0 {
		d = c.MaxEjectionTime
	}
	return d
}

// mayEject reports whether one more of a set of serving backends, ejected
// of which are out already, may be ejected: at least one must keep serving,
// and at most MaxEjectedPercent may be out, though one always may.
func (c OutlierConfig) mayEject(serving, ejected int) bool {
	if serving-ejected <= 1 {
		return false
	}
	limit := max(1, (serving*c.MaxEjectedPercent)/100)
	return ejected+1 <= limit
}

// passive counts a backend's proxied requests on the request path, lock-free.
type passive struct {
	consec     atomic.Int64
	reqs, errs atomic.Uint64
}

// record notes one request's outcome and returns the failures in a row.
func (p *passive) record(failed bool) int64 {
	p.reqs.Add(1)
	if failed {
		p.errs.Add(1)
		return p.consec.Add(1)
	}
	if p.consec.Load() != 0 {
		p.consec.Store(0)
	}
	return 0
}

// outlierState is a backend's ejection record, guarded by Proxy.mu.
type outlierState struct {
	ejectedUntil time.Time // zero when not ejected
	ejections    int       // ejections in a row; decays after a clean window
	flag         string    // why it is an outlier, when it could not be ejected
	flaggedAt    time.Time
	winStart     time.Time
	winReqs      uint64 // passive counters at winStart
	winErrs      uint64
}

func (o *outlierState) ejected() bool { return !o.ejectedUntil.IsZero() }

// observe records a proxied request's outcome on t and ejects t at once
// when it reaches ConsecutiveErrors failures in a row.
func (p *Proxy) observe(t *target, failed bool) {
	n := t.passive.record(failed)
	if failed && n == int64(p.cfg.Outlier.ConsecutiveErrors) && !p.cfg.Outlier.Disabled {
		p.mu.Lock()
		changed := p.judgeLocked(t, p.cfg.Now())
		p.mu.Unlock()
		if changed {
			p.notifyRoute("eject")
		}
	}
}

// judgeLocked applies the outlier rules to t and reports whether it was
// ejected (the route changed).
func (p *Proxy) judgeLocked(t *target, now time.Time) bool {
	o := &t.outlier
	if o.ejected() || !t.joined || !contains(p.active, t) {
		return false
	}
	reason := p.cfg.Outlier.verdict(t.passive.consec.Load(), t.passive.reqs.Load()-o.winReqs, t.passive.errs.Load()-o.winErrs)
	if reason == "" {
		return false
	}
	serving, ejected := 0, 0
	for _, m := range p.active {
		if m.joined {
			serving++
			if m.outlier.ejected() {
				ejected++
			}
		}
	}
	if !p.cfg.Outlier.mayEject(serving, ejected) {
		if o.flag == "" {
			p.log.Warn("backend is an outlier, not ejected: it would leave too few serving", "backend", t.backend.Name, "reason", reason)
			p.metrics.outliers.WithLabelValues("flagged").Inc()
		}
		o.flag, o.flaggedAt = reason, now
		return false
	}
	o.ejections++
	d := p.cfg.Outlier.ejectionTime(o.ejections)
	o.ejectedUntil, o.flag = now.Add(d), ""
	p.metrics.outliers.WithLabelValues("ejected").Inc()
	p.log.Warn("backend ejected", "backend", t.backend.Name, "reason", reason, "for", d)
	p.publishLocked()
	return true
}

// outlierTick ends ejections that are due, measures the error-rate window
// and clears flags of backends that recovered.
func (p *Proxy) outlierTick() {
	if p.cfg.Outlier.Disabled {
		return
	}
	now := p.cfg.Now()
	changed := false
	p.mu.Lock()
	for _, t := range p.active {
		o := &t.outlier
		if o.ejected() && !now.Before(o.ejectedUntil) {
			o.ejectedUntil = time.Time{}
			t.passive.consec.Store(0)
			o.winStart, o.winReqs, o.winErrs = now, t.passive.reqs.Load(), t.passive.errs.Load()
			p.log.Info("backend back from ejection", "backend", t.backend.Name)
			p.publishLocked()
			changed = true
			continue
		}
		if o.flag != "" && t.passive.consec.Load() == 0 && now.Sub(o.flaggedAt) >= p.cfg.HealthInterval {
			o.flag = "" // it served again; the window will flag it anew if its rate is still bad
		}
		if now.Sub(o.winStart) < p.cfg.Outlier.Interval {
			continue
		}
		if p.judgeLocked(t, now) {
			changed = true
		} else if o.flag == "" && o.ejections > 0 {
			o.ejections-- // a clean window after an ejection
		}
		o.winStart, o.winReqs, o.winErrs = now, t.passive.reqs.Load(), t.passive.errs.Load()
	}
	p.mu.Unlock()
	if changed {
		p.notifyRoute("eject")
	}
}
