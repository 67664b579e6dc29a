package telemetry

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Defaults of BaselineConfig.
const (
	DefaultLevelMemory  = 3 * 24 * time.Hour
	DefaultDailyMemory  = 3 * 24 * time.Hour
	DefaultWeeklyMemory = 14 * 24 * time.Hour
	DefaultWarmup       = 30
	// huberK clips a residual at this many spreads before it updates the
	// baseline: an outlier moves it no more than a point at the clip would.
	huberK = 3.0
	// normalFromMAD turns a mean absolute deviation into a normal's sigma,
	// sqrt(pi/2).
	normalFromMAD = 1.2533141373155001
	// driftMemory is the time constant of the residuals' recent drift.
	driftMemory = time.Hour
)

// BaselineConfig tunes Baselines. Zero values take the defaults.
type BaselineConfig struct {
	// LevelMemory is the time constant of the level and spread: how much
	// past they remember. Default DefaultLevelMemory.
	LevelMemory time.Duration
	// DailyMemory and WeeklyMemory are how many days (weeks) of history
	// the hour-of-day (day-of-week) shape remembers; defaults
	// DefaultDailyMemory and DefaultWeeklyMemory.
	DailyMemory  time.Duration
	WeeklyMemory time.Duration
	// Warmup is the number of points whose median and MAD start the
	// baseline; default DefaultWarmup.
	Warmup int
	// Location is where days and weeks begin; nil means UTC.
	Location *time.Location
}

// Validate reports the fields that cannot be used as given.
func (c BaselineConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"level_memory", c.LevelMemory}, {"daily_memory", c.DailyMemory}, {"weekly_memory", c.WeeklyMemory}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("baseline %s %s: must be positive (or 0 for the default)", f.name, f.d))
		}
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("baseline warmup %d: must be positive (or 0 for %d)", c.Warmup, DefaultWarmup))
	}
	return errors.Join(errs...)
}

func (c BaselineConfig) withDefaults() BaselineConfig {
	if c.LevelMemory <= 0 {
		c.LevelMemory = DefaultLevelMemory
	}
	if c.DailyMemory <= 0 {
		c.DailyMemory = DefaultDailyMemory
	}
	if c.WeeklyMemory <= 0 {
		c.WeeklyMemory = DefaultWeeklyMemory
	}
	if c.Warmup <= 0 {
		c.Warmup = DefaultWarmup
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	return c
}

// Baseline is the learned normal of one signal of one component: a robust
// level and spread, and the additive shape of a day (by hour) and of a week
// (by day) around the level. Each shape averages to zero.
type Baseline struct {
	Level  float64
	Spread float64 // as a normal's standard deviation
	Daily  [24]float64
	Weekly [7]float64 // index time.Weekday
	Points int64
	From   time.Time // first point
	At     time.Time // last point
	loc    *time.Location
	drift  float64 // recent robust mean of the residuals
}

// Expected is the baseline's value at t: the level plus the hour-of-day
// and day-of-week shapes.
func (b Baseline) Expected(t time.Time) float64 {
	if b.loc != nil {
		t = t.In(b.loc)
	}
	return b.Level + b.Daily[t.Hour()] + b.Weekly[t.Weekday()]
}

// Score is how unusual v is at t, in spreads from the expected value.
func (b Baseline) Score(t time.Time, v float64) float64 {
	if !(b.Spread > 0) {
		return 0
	}
	return (v - b.Expected(t)) / b.Spread
}

// Baselines learns a Baseline per (component, environment, signal) from
// the samples given to Observe, as they arrive.
//
// The estimator is an exponentially weighted Huber M-estimate with
// additive seasonal terms (a robust Holt-Winters without trend): every
// point's residual from the expected value, clipped at huberK spreads, moves
// the level, the hour's and the day's terms by a weight that follows the
// time since the previous point, so irregular and missing points are
// handled. The spread follows the clipped residuals' mean absolute value.
// A plain EWMA would let one spike shift the level; a windowed median and
// MAD would need the window in memory for every series: this is O(1) in
// time and memory per series, and robust. No library offers it.
type Baselines struct {
	cfg BaselineConfig

	mu sync.Mutex
	m  map[seriesKey]*baselineState
}

type baselineState struct {
	b      Baseline
	warmup []Point // until Warmup points: the seed
}

// NewBaselines returns an empty Baselines.
func NewBaselines(cfg BaselineConfig) (*Baselines, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Baselines{cfg: cfg.withDefaults(), m: make(map[seriesKey]*baselineState)}, nil
}

// Observe folds a sample's values into their baselines. Points older than
// a series' last are ignored.
func (bs *Baselines) Observe(s Sample) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for sig, v := range s.Values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		k := seriesKey{c: s.Target.Component, env: s.Target.Environment, s: sig}
		st, ok := bs.m[k]
		if !ok {
			st = &baselineState{b: Baseline{loc: bs.cfg.Location}}
			bs.m[k] = st
		}
		bs.observe(st, s.Time, v)
	}
}

// Get returns the baseline of a signal; false until it has seen Warmup
// points.
func (bs *Baselines) Get(c phoenix.ComponentID, env phoenix.Environment, sig phoenix.Signal) (Baseline, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	st, ok := bs.m[seriesKey{c: c, env: env, s: sig}]
	if !ok || st.warmup != nil || st.b.Points == 0 {
		return Baseline{}, false
	}
	return st.b, true
}

// Forget drops the baselines of a component in an environment.
func (bs *Baselines) Forget(c phoenix.ComponentID, env phoenix.Environment) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for k := range bs.m {
		if k.c == c && k.env == env {
			delete(bs.m, k)
		}
	}
}

func (bs *Baselines) observe(st *baselineState, t time.Time, v float64) {
	b := &st.b
	if b.Points > 0 && !t.After(b.At) || len(st.warmup) > 0 && !t.After(st.warmup[len(st.warmup)-1].T) {
		return
	}
	if b.Points == 0 {
		st.warmup = append(st.warmup, Point{T: t, V: v})
		if len(st.warmup) < bs.cfg.Warmup {
			return
		}
		bs.seed(st)
		return
	}
	dt := t.Sub(b.At)
	b.Points++
	b.At = t
	lt := t.In(bs.cfg.Location)
	h, d := lt.Hour(), int(lt.Weekday())
	r := v - (b.Level + b.Daily[h] + b.Weekly[d])
	clip := huberK * max(b.Spread, floorSpread(b.Level))
	// Clip around the recent drift of the residuals, not around zero: a
	// lasting shift moves the drift within hours and is then taken whole,
	// while isolated spikes barely move it.
	b.drift += weight(dt, driftMemory) * max(-clip, min(clip, r-b.drift))
	rc := b.drift + max(-clip, min(clip, r-b.drift))

	wl := weight(dt, bs.cfg.LevelMemory)
	b.Level += wl * rc
	// An hour's term sees one hour of every day: measured in its own time,
	// a memory of N days is N hours (and N days for a weekday's term).
	addCentred(b.Daily[:], h, weight(dt, bs.cfg.DailyMemory/24)*rc)
	addCentred(b.Weekly[:], d, weight(dt, bs.cfg.WeeklyMemory/7)*rc)
	b.Spread += wl * (normalFromMAD*math.Abs(rc) - b.Spread)
}

// seed starts a baseline from its warm-up points: their median and
// normal-scaled median absolute deviation.
func (bs *Baselines) seed(st *baselineState) {
	vs := make([]float64, len(st.warmup))
	for i, p := range st.warmup {
		vs[i] = p.V
	}
	med := median(vs)
	for i := range vs {
		vs[i] = math.Abs(vs[i] - med)
	}
	st.b.Level = med
	st.b.Spread = 1.4826 * median(vs)
	st.b.Points = int64(len(st.warmup))
	st.b.From, st.b.At = st.warmup[0].T, st.warmup[len(st.warmup)-1].T
	st.warmup = nil
}

// floorSpread keeps the clip open when a series has been constant: a
// millionth of its level, or a tiny absolute amount.
func floorSpread(level float64) float64 {
	return max(1e-6*math.Abs(level), 1e-9)
}

// weight is the share a point taken dt after the previous one gets in an
// exponential average with time constant tau.
func weight(dt, tau time.Duration) float64 {
	if dt <= 0 {
		return 0
	}
	return -math.Expm1(-float64(dt) / float64(tau))
}

// addCentred adds x to s[i] and removes its mean from every term, so that
// the shape stays centred on zero and the level keeps the average.
func addCentred(s []float64, i int, x float64) {
	s[i] += x
	m := x / float64(len(s))
	for j := range s {
		s[j] -= m
	}
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
