package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

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
	if t.Interval < 0 || t.Timeout < 0 {
		return fmt.Errorf("target %s: interval %s and timeout %s must be positive (or 0 for the collector's)", t.Component, t.Interval, t.Timeout)
	}
	if t.Interval > 0 && t.Timeout > t.Interval {
		return fmt.Errorf("target %s: timeout %s is longer than its interval %s; make it shorter", t.Component, t.Timeout, t.Interval)
	}
	return nil
}

type targetKey struct {
	c   phoenix.ComponentID
	env phoenix.Environment
}

func keyOf(t Target) targetKey { return targetKey{c: t.Component, env: t.Environment} }

// SignalWriter is where a Scraper writes the signals it computes: a
// *History in memory or a *Store on disk.
type SignalWriter interface {
	Append(t Target, at time.Time, values map[phoenix.Signal]float64) error
}

// Scraper scrapes a changing set of targets, each in its own goroutine, and
// writes what it computes into a History.
type Scraper struct {
	cfg     Config
	hist    SignalWriter
	metrics *scrapeMetrics

	mu      sync.Mutex
	targets map[targetKey]*TargetHealth // the wanted set, with its health
	order   []targetKey                 // SetTargets order, for Health
	running bool
	changed chan struct{} // capacity 1: "targets changed, reconcile"
}

// NewScraper returns a Scraper writing into h (which may be nil to keep no
// history, when OnSample is the consumer; a typed nil *History counts as
// nil). cfg's zero fields take their
// defaults; a Registerer that refuses the metrics is logged and ignored.
func NewScraper(cfg Config, h SignalWriter) *Scraper {
	cfg = cfg.withDefaults()
	if hh, ok := h.(*History); ok && hh == nil {
		h = nil
	}
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

// SetTargets replaces the set of targets; Config.Static ones are added
// after them. Targets are identified by component and environment: a second
// target with the same pair is ignored, and a changed URL, interval or
// timeout restarts that target's scraping (its rates start over). Removed
// targets stop being scraped; their History is kept until Forget.
func (s *Scraper) SetTargets(ts []Target) {
	s.mu.Lock()
	next := make(map[targetKey]*TargetHealth, len(ts))
	order := make([]targetKey, 0, len(ts))
	for i, t := range slices.Concat(ts, s.cfg.Static) {
		if k := keyOf(t); i >= len(ts) && next[k] != nil {
			continue // a static target given to SetTargets too: SetTargets wins
		}
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
// and returns nil. Each target is scraped at once, then once per Interval
// at a phase of its own within the interval (see spreadOffset), so that
// many targets do not all hit the network and the store at the same
// instant; each scrape is bounded by Timeout. Run may be called once at a
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
	interval := cmp.Or(t.Interval, s.cfg.Interval)
	offset := spreadOffset(t, interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var prev *reading
	var prevAt time.Time
	due := time.Now() // when this scrape was due: on the target's phase from the second on
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
		due = nextScrape(due, interval, offset)
		if now := time.Now(); due.Before(now) {
			due = nextScrape(now.Add(-interval), interval, offset) // late: skip, do not catch up
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// spreadOffset is the target's phase within its interval: a hash of the
// target, so that many targets are scraped spread over the interval rather
// than all at once, each always at the same point of it (as Prometheus
// does).
func spreadOffset(t Target, interval time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = io.WriteString(h, string(t.Component)+"\xff"+string(t.Environment)+"\xff"+t.URL)
	return time.Duration(h.Sum64() % uint64(interval))
}

// nextScrape is when to scrape after a scrape due at last: the first
// instant at the target's phase (offset past a multiple of interval since
// the Unix epoch) at least one interval after last. The first scrape of a
// target is immediate; from the second on, targets keep their phases.
func nextScrape(last time.Time, interval, offset time.Duration) time.Time {
	earliest := last.Add(interval)
	rem := time.Duration(earliest.UnixNano() % int64(interval))
	return earliest.Add((offset - rem + interval) % interval)
}

// scrape fetches and parses one target. at is when the scrape started, the
// time the values are stamped with; took is its duration.
func (s *Scraper) scrape(ctx context.Context, t Target) (r *reading, at time.Time, took time.Duration, err error) {
	at = s.cfg.Now()
	start := time.Now()
	timeout := cmp.Or(t.Timeout, s.cfg.Timeout)
	body, ctype, err := fetch(ctx, s.cfg.Client, t.URL, timeout, s.cfg.MaxBodyBytes)
	if err == nil {
		fams, perr := parseFamilies(body, ctype)
		switch n := seriesCount(fams); {
		case perr != nil:
			err = perr
		case s.cfg.SeriesLimit >= 0 && n > s.cfg.SeriesLimit:
			err = fmt.Errorf("%d series exceed the per-target series limit of %d", n, s.cfg.SeriesLimit)
		default:
			r = extract(fams, s.cfg.Signals, s.cfg.Extra...)
			s.store(ctx, t, fams, at)
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

// store writes a scrape's raw series into Config.Storage, if set. A
// storage failure is logged, not held against the target.
func (s *Scraper) store(ctx context.Context, t Target, fams map[string]*dto.MetricFamily, at time.Time) {
	if s.cfg.Storage == nil {
		return
	}
	app := s.cfg.Storage.AppenderV2(ctx)
	err := appendFamilies(app, t, fams, at.UnixMilli())
	if cerr := app.Commit(); cerr != nil {
		err = cerr
	}
	if err != nil {
		s.cfg.Logger.Warn("scraped series not stored", "component", t.Component, "environment", t.Environment, "err", err)
	}
}

func (s *Scraper) emit(smp Sample) {
	if len(smp.Values) == 0 {
		return
	}
	if s.hist != nil {
		if err := s.hist.Append(smp.Target, smp.Time, smp.Values); err != nil {
			s.cfg.Logger.Warn("signals not stored", "component", smp.Target.Component, "environment", smp.Target.Environment, "err", err)
		}
	}
	if s.cfg.OnSample != nil {
		s.cfg.OnSample(smp)
	}
}
