package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promhistogram "github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/phoenixsre/phoenix"
)

// Defaults of MappingConfig.
const (
	DefaultEnvironmentLabel = "environment"
	DefaultMaxComponents    = 10_000
	DefaultStale            = 5 * time.Minute
)

// DefaultComponentLabels are the labels that name a series' component, in
// order of preference: an explicit "component" label (set by relabelling or
// by the instrumentation), then "service", then the Prometheus job (which
// is the OpenTelemetry service.name for OTLP).
func DefaultComponentLabels() []string { return []string{"component", "service", "job"} }

// MappingConfig says how pushed series become components' signals. Zero
// values take the defaults.
type MappingConfig struct {
	// ComponentLabels name the component, first present wins; default
	// DefaultComponentLabels. A value that is not a valid component name
	// leaves the series unmapped.
	ComponentLabels []string
	// EnvironmentLabel names the environment; default
	// DefaultEnvironmentLabel. DefaultEnvironment is used when it is absent;
	// default phoenix.Primary.
	EnvironmentLabel   string
	DefaultEnvironment phoenix.Environment
	// Signals names the metric behind each standard signal; zero means
	// DefaultSignalMap. Latency names the classic histogram family (its
	// _bucket series are read).
	Signals SignalMap
	// Extra are further metrics reported as their own signals.
	Extra []ExtraSignal
	// Components, if set, is the only components mapped; otherwise any
	// valid name is, up to MaxComponents (default DefaultMaxComponents).
	Components    []phoenix.ComponentID
	MaxComponents int
	// Stale is how long a series counts in its component's sums after its
	// last sample; default DefaultStale.
	Stale time.Duration
	// OnSample receives each component's signals computed from a commit,
	// after the commit; from the committing goroutine, so it must return
	// quickly. Rates and latency need two samples of a series.
	OnSample func(Sample)
	// Logger receives mapping problems at debug level; nil discards.
	Logger *slog.Logger
	// Registerer receives the view's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Validate reports the fields that cannot be used as given.
func (c MappingConfig) Validate() error {
	var errs []error
	for i, l := range c.ComponentLabels {
		if !labelNameOK(l) {
			errs = append(errs, fmt.Errorf("mapping component_labels[%d] %q: not a label name", i, l))
		}
	}
	if c.EnvironmentLabel != "" && !labelNameOK(c.EnvironmentLabel) {
		errs = append(errs, fmt.Errorf("mapping environment_label %q: not a label name", c.EnvironmentLabel))
	}
	for i, id := range c.Components {
		if err := id.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("mapping components[%d]: %w", i, err))
		}
	}
	if c.MaxComponents < 0 {
		errs = append(errs, fmt.Errorf("mapping max_components %d: must be positive (or 0 for %d)", c.MaxComponents, DefaultMaxComponents))
	}
	if c.Stale < 0 {
		errs = append(errs, fmt.Errorf("mapping stale %s: must be positive (or 0 for %s)", c.Stale, DefaultStale))
	}
	errs = append(errs, validateExtras("mapping extra", c.Extra))
	return errors.Join(errs...)
}

func labelNameOK(s string) bool {
	return s != "" && !strings.HasPrefix(s, "__") && model.LabelName(s).IsValidLegacy()
}

// role is how a series contributes to its signal.
type role uint8

const (
	roleGauge   role = iota // summed over series
	roleCounter             // per-second rate, summed over series
	roleBucket              // a classic histogram bucket, by its le
)

type binding struct {
	sig  phoenix.Signal
	role role
}

// bindings maps metric names to what they feed.
func bindings(m SignalMap, extra []ExtraSignal) map[string]binding {
	out := make(map[string]binding)
	add := func(name string, b binding) {
		if name != "" {
			out[name] = b
		}
	}
	add(m.Memory, binding{phoenix.SignalMemory, roleGauge})
	add(m.Disk, binding{phoenix.SignalDisk, roleGauge})
	add(m.CPU, binding{phoenix.SignalCPU, roleCounter})
	add(m.Requests, binding{phoenix.SignalRate, roleCounter})
	add(m.Errors, binding{phoenix.SignalErrors, roleCounter})
	add(m.IO, binding{SignalIO, roleCounter})
	if m.Latency != "" {
		add(m.Latency+"_bucket", binding{phoenix.SignalLatency, roleBucket})
	}
	for _, e := range extra {
		r := roleGauge
		if e.Rate {
			r = roleCounter
		}
		add(e.Metric, binding{e.Signal, r})
	}
	return out
}

// Mapper is the component view of pushed series. It is a
// storage.AppendableV2 placed in front of the store: every sample passes
// through to next unchanged, and once a commit has succeeded, the samples
// of series that name a component and a signal metric update that
// component's signals, which go to OnSample.
//
// Pushed series arrive one sample at a time, possibly split across
// requests, so a counter's rate is computed per series from its own last
// two samples (a decrease counts as a restart from zero, as PromQL's rate
// does) and summed over the component's series; gauges are summed; the
// latency is the 0.99 quantile of the bucket increases summed by bound.
type Mapper struct {
	cfg   MappingConfig
	next  storage.AppendableV2
	names map[string]binding
	allow map[phoenix.ComponentID]bool // nil: any valid name

	mu     sync.Mutex
	series map[uint64]*mappedSeries
	comps  map[targetKey]*componentState
	bad    map[string]bool // label values that are not component names (bounded)

	emitted   prometheus.Counter
	unmapped  prometheus.Counter
	compCount prometheus.Gauge
}

var _ storage.AppendableV2 = (*Mapper)(nil)

type mappedSeries struct {
	hash   uint64
	comp   *componentState
	b      binding
	le     float64 // roleBucket only
	n      int     // samples seen, capped at 2
	t0, t1 int64
	v0, v1 float64
}

type componentState struct {
	key    targetKey
	newest int64 // newest sample time, ms
	series []*mappedSeries
}

// NewMapper returns a Mapper in front of next.
func NewMapper(cfg MappingConfig, next storage.AppendableV2) (*Mapper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.ComponentLabels) == 0 {
		cfg.ComponentLabels = DefaultComponentLabels()
	}
	if cfg.EnvironmentLabel == "" {
		cfg.EnvironmentLabel = DefaultEnvironmentLabel
	}
	if cfg.DefaultEnvironment == "" {
		cfg.DefaultEnvironment = phoenix.Primary
	}
	if cfg.Signals == (SignalMap{}) {
		cfg.Signals = DefaultSignalMap()
	}
	if cfg.MaxComponents == 0 {
		cfg.MaxComponents = DefaultMaxComponents
	}
	if cfg.Stale == 0 {
		cfg.Stale = DefaultStale
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Mapper{
		cfg: cfg, next: next, names: bindings(cfg.Signals, cfg.Extra),
		series: make(map[uint64]*mappedSeries), comps: make(map[targetKey]*componentState), bad: make(map[string]bool),
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_telemetry_view_samples_total",
			Help: "Component signal samples computed from pushed series.",
		}),
		unmapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_telemetry_view_unmapped_samples_total",
			Help: "Samples of signal metrics whose series names no usable component.",
		}),
		compCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "phoenix_telemetry_view_components",
			Help: "Components known to the component view.",
		}),
	}
	if len(cfg.Components) > 0 {
		m.allow = make(map[phoenix.ComponentID]bool, len(cfg.Components))
		for _, c := range cfg.Components {
			m.allow[c] = true
		}
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.emitted, m.unmapped, m.compCount} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register component view metrics: %w", err)
			}
		}
	}
	return m, nil
}

// AppenderV2 returns an appender that writes into next and maps on commit.
func (m *Mapper) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &mapAppender{m: m, next: m.next.AppenderV2(ctx)}
}

type pendingSample struct {
	ls labels.Labels
	b  binding
	t  int64
	v  float64
}

type mapAppender struct {
	m       *Mapper
	next    storage.AppenderV2
	pending []pendingSample
}

func (a *mapAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *promhistogram.Histogram, fh *promhistogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	ref, err := a.next.Append(ref, ls, st, t, v, h, fh, opts)
	if err == nil && h == nil && fh == nil {
		if b, ok := a.m.names[ls.Get(labels.MetricName)]; ok {
			a.pending = append(a.pending, pendingSample{ls: ls, b: b, t: t, v: v})
		}
	}
	return ref, err
}

func (a *mapAppender) Commit() error {
	if err := a.next.Commit(); err != nil {
		return err
	}
	if len(a.pending) > 0 {
		a.m.apply(a.pending)
	}
	return nil
}

func (a *mapAppender) Rollback() error {
	a.pending = nil
	return a.next.Rollback()
}

// apply folds committed samples into the series states and emits the
// signals of every component they touched.
func (m *Mapper) apply(ps []pendingSample) {
	m.mu.Lock()
	touched := make(map[*componentState]bool)
	for _, p := range ps {
		s := m.lookup(p)
		if s == nil {
			m.unmapped.Inc()
			continue
		}
		if s.n > 0 && p.t <= s.t1 {
			continue // a sample tsdb took as a duplicate, or older: nothing new
		}
		switch {
		case value.IsStaleNaN(p.v):
			// Prometheus's staleness marker: the series ended (its target
			// went away). It leaves the sums now, and a return starts over.
			s.n, s.t1 = 0, p.t
			s.comp.newest = max(s.comp.newest, p.t)
			touched[s.comp] = true
			continue
		case math.IsNaN(p.v) || math.IsInf(p.v, 0):
			continue
		}
		s.t0, s.v0, s.t1, s.v1 = s.t1, s.v1, p.t, p.v
		s.n = min(s.n+1, 2)
		s.comp.newest = max(s.comp.newest, p.t)
		touched[s.comp] = true
	}
	out := make([]Sample, 0, len(touched))
	for c := range touched {
		if v := m.values(c); len(v) > 0 {
			out = append(out, Sample{Target: Target{Component: c.key.c, Environment: c.key.env}, Time: time.UnixMilli(c.newest), Values: v})
		}
	}
	m.compCount.Set(float64(len(m.comps)))
	m.mu.Unlock()
	m.emitted.Add(float64(len(out)))
	if m.cfg.OnSample != nil {
		for _, smp := range out {
			m.cfg.OnSample(smp)
		}
	}
}

// lookup finds or creates the state of p's series; nil when the series
// names no usable component. Called with m.mu held.
func (m *Mapper) lookup(p pendingSample) *mappedSeries {
	h := p.ls.Hash()
	if s, ok := m.series[h]; ok {
		return s
	}
	key, ok := m.componentOf(p.ls)
	if !ok {
		return nil
	}
	c, ok := m.comps[key]
	if !ok {
		if len(m.comps) >= m.cfg.MaxComponents {
			m.cfg.Logger.Debug("component view full: series ignored", "component", key.c, "max_components", m.cfg.MaxComponents)
			return nil
		}
		c = &componentState{key: key}
		m.comps[key] = c
	}
	s := &mappedSeries{hash: h, comp: c, b: p.b}
	if p.b.role == roleBucket {
		le, err := strconv.ParseFloat(p.ls.Get(labels.BucketLabel), 64)
		if err != nil || math.IsNaN(le) {
			return nil
		}
		s.le = le
	}
	m.series[h] = s
	c.series = append(c.series, s)
	return s
}

// componentOf reads the component and environment a series names.
func (m *Mapper) componentOf(ls labels.Labels) (targetKey, bool) {
	var name string
	for _, l := range m.cfg.ComponentLabels {
		if name = ls.Get(l); name != "" {
			break
		}
	}
	if name == "" || m.bad[name] {
		return targetKey{}, false
	}
	id := phoenix.ComponentID(name)
	if m.allow != nil && !m.allow[id] {
		return targetKey{}, false
	}
	if m.allow == nil && id.Validate() != nil {
		if len(m.bad) < 4*m.cfg.MaxComponents {
			m.bad[name] = true
		}
		return targetKey{}, false
	}
	env := phoenix.Environment(ls.Get(m.cfg.EnvironmentLabel))
	if env == "" {
		env = m.cfg.DefaultEnvironment
	}
	return targetKey{c: id, env: env}, true
}

// values computes a component's signals from its fresh series, and drops
// series that have been silent for ten times the stale window. Called with
// m.mu held.
func (m *Mapper) values(c *componentState) map[phoenix.Signal]float64 {
	fresh := c.newest - m.cfg.Stale.Milliseconds()
	gauges := make(map[phoenix.Signal]float64)
	rates := make(map[phoenix.Signal]float64)
	seen := make(map[phoenix.Signal]bool) // counter families present, with or without a rate yet
	buckets := make(map[float64]float64)
	kept := c.series[:0]
	for _, s := range c.series {
		if s.t1 < c.newest-10*m.cfg.Stale.Milliseconds() {
			delete(m.series, s.hash)
			continue
		}
		kept = append(kept, s)
		if s.t1 < fresh || s.n == 0 {
			continue
		}
		switch s.b.role {
		case roleGauge:
			gauges[s.b.sig] += s.v1
		case roleCounter:
			seen[s.b.sig] = true
			if inc, ok := s.increase(); ok {
				rates[s.b.sig] += inc / (float64(s.t1-s.t0) / 1000)
			}
		case roleBucket:
			if inc, ok := s.increase(); ok {
				buckets[s.le] += inc
			}
		}
	}
	clear(c.series[len(kept):])
	c.series = kept
	out := make(map[phoenix.Signal]float64, len(gauges)+len(rates)+1)
	for sig, v := range gauges {
		out[sig] = v
	}
	for sig, v := range rates {
		if sig != phoenix.SignalErrors {
			out[sig] = v
		}
	}
	if req, ok := rates[phoenix.SignalRate]; ok && req > 0 {
		// A missing errors family means no error yet (clients expose a
		// labelled counter at its first increment), as in the scraper.
		out[phoenix.SignalErrors] = min(1, rates[phoenix.SignalErrors]/req)
	} else {
		delete(out, phoenix.SignalErrors)
	}
	if len(buckets) > 0 {
		bs := make([]Bucket, 0, len(buckets))
		for le, n := range buckets {
			bs = append(bs, Bucket{UpperBound: le, Count: n})
		}
		if q, ok := HistogramQuantile(latencyQuantile, bs); ok {
			out[phoenix.SignalLatency] = q
		}
	}
	for sig, v := range out {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(out, sig)
		}
	}
	return out
}

// increase is the counter increase between the series' last two samples;
// a decrease means the counter restarted from zero.
func (s *mappedSeries) increase() (float64, bool) {
	if s.n < 2 || s.t1 <= s.t0 {
		return 0, false
	}
	if s.v1 < s.v0 {
		return s.v1, true
	}
	return s.v1 - s.v0, true
}

// Components lists the components the view knows, sorted.
func (m *Mapper) Components() []Target {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Target, 0, len(m.comps))
	for k := range m.comps {
		out = append(out, Target{Component: k.c, Environment: k.env})
	}
	slices.SortFunc(out, func(a, b Target) int {
		return strings.Compare(string(a.Component)+"\xff"+string(a.Environment), string(b.Component)+"\xff"+string(b.Environment))
	})
	return out
}
