package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Sample is what one successful scrape of a target yields.
type Sample struct {
	Target Target
	Time   time.Time
	// Values holds only the signals that could be computed from this
	// scrape: gauges always, rates and latency from the second successful
	// scrape on, and never a NaN or an infinity.
	Values map[phoenix.Signal]float64
}

// TargetHealth is the scrape state of one target.
type TargetHealth struct {
	Target              Target
	Up                  bool      // the last scrape succeeded
	LastScrape          time.Time // zero before the first attempt
	LastSuccess         time.Time // zero before the first success
	LastError           string    // why the last failed scrape failed; empty after a success
	ConsecutiveFailures int
}

// Validate reports whether t can be scraped: a valid component name, an
// environment and an absolute http(s) URL.
func (t Target) Validate() error {
	if err := t.Component.Validate(); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if t.Environment == "" {
		return fmt.Errorf("target %s: environment is empty (use %q or %q)", t.Component, phoenix.Primary, phoenix.Secondary)
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %s: URL %q is not an absolute http(s) URL such as http://127.0.0.1:9100/metrics", t.Component, t.URL)
	}
	return nil
}

type targetKey struct {
	c   phoenix.ComponentID
	env phoenix.Environment
}

func keyOf(t Target) targetKey { return targetKey{c: t.Component, env: t.Environment} }

// Scraper scrapes a changing set of targets, each in its own goroutine, and
// writes what it computes into a History.
type Scraper struct {
	cfg     Config
	hist    *History
	metrics *scrapeMetrics

	mu      sync.Mutex
	targets map[targetKey]*TargetHealth // the wanted set, with its health
	order   []targetKey                 // SetTargets order, for Health
	running bool
	changed chan struct{} // capacity 1: "targets changed, reconcile"
}

// NewScraper returns a Scraper writing into h (which may be nil to keep no
// history, when OnSample is the consumer). cfg's zero fields take their
// defaults; a Registerer that refuses the metrics is logged and ignored.
func NewScraper(cfg Config, h *History) *Scraper {
	cfg = cfg.withDefaults()
	m, err := newScrapeMetrics(cfg.Registerer)
	if err != nil {
		cfg.Logger.Error("telemetry metrics not registered", "err", err)
	}
	return &Scraper{
		cfg:     cfg,
		hist:    h,
		metrics: m,
		targets: make(map[targetKey]*TargetHealth),
		changed: make(chan struct{}, 1),
	}
}

// SetTargets replaces the set of targets. Targets are identified by
// component and environment: a second target with the same pair is ignored,
// and a changed URL restarts that target's scraping (its rates start over).
// Removed targets stop being scraped; their History is kept until Forget.
func (s *Scraper) SetTargets(ts []Target) {
	s.mu.Lock()
	next := make(map[targetKey]*TargetHealth, len(ts))
	order := make([]targetKey, 0, len(ts))
	for _, t := range ts {
		k := keyOf(t)
		if _, dup := next[k]; dup {
			s.cfg.Logger.Warn("duplicate scrape target ignored", "component", t.Component, "environment", t.Environment, "url", t.URL)
			continue
		}
		if old, ok := s.targets[k]; ok && old.Target == t {
			next[k] = old
		} else {
			next[k] = &TargetHealth{Target: t}
		}
		order = append(order, k)
	}
	for k, old := range s.targets {
		if next[k] != old {
			s.metrics.forget(old.Target)
		}
	}
	s.targets, s.order = next, order
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default: // a reconcile is already pending; it will see this set
	}
}

// Health returns the state of every current target, in SetTargets order.
func (s *Scraper) Health() []TargetHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetHealth, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, *s.targets[k])
	}
	return out
}

// Run scrapes the targets until ctx ends, then stops every scrape goroutine
// and returns nil. Each target is scraped at once, then at most once per
// Interval, each scrape bounded by Timeout. Run may be called once at a
// time.
func (s *Scraper) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("telemetry scraper: Run called while already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()

	loops := make(map[*TargetHealth]context.CancelFunc)
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range loops {
			cancel()
		}
		wg.Wait()
	}()
	for {
		s.reconcile(ctx, loops, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		}
	}
}

// reconcile starts a loop for every wanted target without one and cancels
// the loops of targets no longer wanted. A loop is keyed by its health
// record, which SetTargets replaces when a target changes.
func (s *Scraper) reconcile(ctx context.Context, loops map[*TargetHealth]context.CancelFunc, wg *sync.WaitGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wanted := make(map[*TargetHealth]bool, len(s.targets))
	for _, th := range s.targets {
		wanted[th] = true
		if _, ok := loops[th]; ok {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		loops[th] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(lctx, th)
		}()
	}
	for th, cancel := range loops {
		if !wanted[th] {
			cancel()
			delete(loops, th)
		}
	}
}

// loop scrapes one target until ctx ends. prev is the last successful
// reading, the base for rates; a failed scrape leaves it in place so the
// next success measures across the gap.
func (s *Scraper) loop(ctx context.Context, th *TargetHealth) {
	t := th.Target
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	var prev *reading
	var prevAt time.Time
	for {
		cur, at, took, err := s.scrape(ctx, t)
		if ctx.Err() != nil {
			return // stopping: a cancelled scrape says nothing about the target
		}
		s.metrics.observe(t, err == nil, took.Seconds())
		s.record(th, at, err)
		if err == nil {
			values := signalValues(prev, cur, at.Sub(prevAt))
			prev, prevAt = cur, at
			s.emit(Sample{Target: t, Time: at, Values: values})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scrape fetches and parses one target. at is when the scrape started, the
// time the values are stamped with; took is its duration.
func (s *Scraper) scrape(ctx context.Context, t Target) (r *reading, at time.Time, took time.Duration, err error) {
	at = s.cfg.Now()
	start := time.Now()
	body, ctype, err := fetch(ctx, s.cfg.Client, t.URL, s.cfg.Timeout, s.cfg.MaxBodyBytes)
	if err == nil {
		fams, perr := parseFamilies(body, ctype)
		if perr != nil {
			err = perr
		} else {
			r = extract(fams, s.cfg.Signals)
		}
	}
	if err != nil {
		err = fmt.Errorf("scrape %s (%s) at %s: %w", t.Component, t.Environment, t.URL, err)
	}
	return r, at, time.Since(start), err
}

func (s *Scraper) record(th *TargetHealth, at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasUp, first := th.Up, th.LastScrape.IsZero()
	th.LastScrape = at
	if err != nil {
		th.Up = false
		th.LastError = err.Error()
		th.ConsecutiveFailures++
		if wasUp || first {
			s.cfg.Logger.Info("target down", "component", th.Target.Component, "environment", th.Target.Environment, "err", err)
		} else {
			s.cfg.Logger.Debug("scrape failed", "component", th.Target.Component, "environment", th.Target.Environment, "err", err)
		}
		return
	}
	if !wasUp {
		s.cfg.Logger.Info("target up", "component", th.Target.Component, "environment", th.Target.Environment)
	}
	th.Up = true
	th.LastSuccess = at
	th.LastError = ""
	th.ConsecutiveFailures = 0
}

func (s *Scraper) emit(smp Sample) {
	if len(smp.Values) == 0 {
		return
	}
	if s.hist != nil {
		s.hist.Append(smp.Target, smp.Time, smp.Values)
	}
	if s.cfg.OnSample != nil {
		s.cfg.OnSample(smp)
	}
}
