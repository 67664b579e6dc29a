package anomaly

import (
	"math"
	"slices"
	"sort"
	"time"
)

// NoveltyConfig tunes a Novelty detector. Zero fields take the defaults.
type NoveltyConfig struct {
	// History is how many past values each feature is compared with
	// (default 4096: two weeks of five-minute points). Older ones are
	// forgotten, and so is the range they spanned.
	History int
	// Smooth is the length of the moving mean scored beside the raw value
	// (default 20). A shift too small to leave the values' range, or a
	// denser train of spikes, moves the mean to where it has never been.
	Smooth int
	// Warmup is how many points are only learnt from, never scored
	// (default 64).
	Warmup int
	// Ramp is how many points the score takes to count in full (default
	// 600, about two days of five-minute points; negative turns it off):
	// the n-th point's score is scaled by n/Ramp until then. A range learnt
	// from a few hundred points still has extremes to find, and each one
	// found is a gap that a longer history would not show.
	Ramp int
	// Threshold is the score of an alarm (default DefaultThreshold); it
	// only matters here for Hold.
	Threshold float64
	// Hold is how many points after an alarm score 0, so that one event
	// raises one alarm (default 30; negative turns it off).
	Hold int
	// Season is the lag of the day-over-day feature (default 24h; negative
	// turns it off): each point's change is taken against the latest point
	// at or before its time minus Season. A season longer than the last
	// History points span is not scored.
	Season time.Duration
}

// Defaults of NoveltyConfig.
const (
	DefaultHistory = 4096
	DefaultSmooth  = 20
	DefaultWarmup  = 64
	// DefaultRamp was chosen by two-fold cross-validation on NAB's files
	// (300, 600, 1000 or 2000 points, the scale linear or its square root:
	// each half's best, 600 and linear on both, improved the other half).
	// NAB leaves unscored the first 15% of a file (604 of the usual 4032
	// points), so there it matters mostly in the shorter files, where it
	// removes six false alarms; in a longer one, only through an alarm it
	// drops just before point 604, whose Hold no longer silences the points
	// after it.
	DefaultRamp   = 600
	DefaultHold   = 30
	DefaultSeason = 24 * time.Hour
	// DefaultThreshold is Phoenix's fixed alarm threshold: a point is
	// anomalous when it (or its moving mean) lies farther than 5% of the
	// range seen from every value seen, or the moving mean of its change
	// since the day before farther than 5%/seasonWeight of the range of
	// those moving means seen; at the n-th of the first Ramp points, Ramp/n
	// times farther. See cmd/phoenix eval nab for how it was chosen.
	DefaultThreshold = 0.05
)

func (c NoveltyConfig) withDefaults() NoveltyConfig {
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	if c.Smooth <= 0 {
		c.Smooth = DefaultSmooth
	}
	if c.Warmup <= 0 {
		c.Warmup = DefaultWarmup
	}
	if c.Ramp == 0 {
		c.Ramp = DefaultRamp
	}
	if !(c.Threshold > 0) || math.IsInf(c.Threshold, 0) {
		c.Threshold = DefaultThreshold
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Season == 0 {
		c.Season = DefaultSeason
	}
	return c
}

// Novelty is a streaming univariate anomaly detector. A point's score is
// how far it lies from every value seen in the history, in units of the
// range those values span: 0 for a value seen before, 0.5 for one half the
// range beyond the extremes. The same is done for the moving mean of the
// last Smooth points, and for the moving mean of each point's change since
// the same time a season (a day) before, that last one weighted by
// seasonWeight; the score is the largest of the three, scaled down over the
// first Ramp points (a young history's range is still growing), capped at 1.
//
// It needs no look-ahead (no file minimum or maximum: the range is the
// history's) and no distributional assumption, and it is scale free. What it
// finds is novelty: a level, or a mean level, never visited. A recurring
// pattern, however spiky, stops scoring once it has been seen, which is what
// keeps daily cycles and regular bursts quiet. A familiar value at an
// unfamiliar time (a daily peak that does not come) is a novelty of the
// change since the day before. That feature is off while the history does
// not reach a season back (always, if History points span less), and learns
// without scoring for its first Warmup moving means.
//
// After an alarm (a score at or above Threshold), the next Hold points score
// 0: alerting deduplication, so that one event is one alarm.
//
// A Novelty is not safe for concurrent use.
type Novelty struct {
	cfg   NoveltyConfig
	n     int
	value gapFeature
	mean  gapFeature
	ring  movingMean // of the last Smooth values
	hold  int
	day   dayOverDay
}

// NewNovelty returns a detector with cfg's zero fields defaulted.
func NewNovelty(cfg NoveltyConfig) *Novelty {
	cfg = cfg.withDefaults()
	return &Novelty{
		cfg:   cfg,
		value: gapFeature{w: newSortedWindow(cfg.History)},
		mean:  gapFeature{w: newSortedWindow(cfg.History)},
		ring:  newMovingMean(cfg.Smooth),
		day:   newDayOverDay(cfg.Season, cfg.History, cfg.Smooth, cfg.Warmup),
	}
}

// Score learns v and returns its anomaly score in [0, 1]. Non-finite values
// score 0 and are not learnt. The detector counts points (its history, its
// moving means, its warm-up, ramp and hold), as NAB's data and Phoenix's
// scrapes are regular; the times only find the point a Season before.
func (d *Novelty) Score(at time.Time, v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	d.n++
	s := d.value.score(v)
	if mean, ok := d.ring.add(v); ok {
		s = math.Max(s, d.mean.score(mean))
	}
	s = math.Max(s, seasonWeight*d.day.score(at, v))
	if d.n < d.cfg.Ramp {
		s *= float64(d.n) / float64(d.cfg.Ramp)
	}
	if !(s <= 1) { // also NaN
		s = 1
	}
	if d.n <= d.cfg.Warmup {
		return 0
	}
	if d.hold > 0 {
		d.hold--
		return 0
	}
	if s >= d.cfg.Threshold && d.cfg.Hold > 0 {
		d.hold = d.cfg.Hold
	}
	return s
}

// gapFeature scores a value by its distance to the nearest value of its
// history, over the history's range, then adds it to the history.
type gapFeature struct {
	w *sortedWindow
}

func (g *gapFeature) score(v float64) float64 {
	s := 0.0
	if n := g.w.Len(); n > 1 {
		// Halved, so that neither the range nor a gap overflows to
		// infinity for values near the float64 limit.
		sorted := g.w.sorted
		if rng := sorted[n-1]/2 - sorted[0]/2; rng > 0 {
			i, _ := slices.BinarySearch(sorted, v)
			gap := math.Inf(1)
			if i < n {
				gap = sorted[i]/2 - v/2
			}
			if i > 0 {
				gap = math.Min(gap, v/2-sorted[i-1]/2)
			}
			s = gap / rng
		}
	}
	g.w.Add(v)
	return s
}

// seasonWeight scales the day-over-day feature's score: a change between two
// noisy points is weaker evidence than a level never seen, so it needs
// 1/seasonWeight times the gap to raise the same score. Chosen by two-fold
// cross-validation on NAB's files (halves by sorted name, alternating; the
// weight that scored best on each half, 0.15 on both, scored on the other),
// with the moving mean's length left at the detector's Smooth. A synthetic
// training corpus (SyntheticCorpus) preferred 0.5-0.7, which on NAB adds
// false alarms.
const seasonWeight = 0.15

// dayOverDay scores the moving mean of each point's change since the
// latest point at or before the same time a season earlier. It keeps the
// last history points with their times, so a season longer than they span
// (a day of 15-second scrapes in the 4096 points of the default History) is
// never scored, and neither is a point whose history does not reach a
// season back yet. Times are expected in order; if they are not, the
// change is taken against some earlier arrival. Nothing is allocated until
// the first point of a positive season.
type dayOverDay struct {
	season  time.Duration
	history int
	smooth  int
	warmup  int // moving means only learnt from, as the detector's Warmup

	origin time.Time // the first point's; times are kept as offsets from it
	past   []stamped // the last history points, a ring in arrival order
	next   int       // where the oldest is, once the ring is full
	change movingMean
	mean   gapFeature // over the change's moving mean
}

// stamped is a remembered point: its time as an offset from the first
// point's (time.Time.Sub saturates it at about 292 years either way), which
// keeps the ring free of pointers for the collector.
type stamped struct {
	off time.Duration
	v   float64
}

func newDayOverDay(season time.Duration, history, smooth, warmup int) dayOverDay {
	return dayOverDay{season: season, history: history, smooth: smooth, warmup: warmup}
}

// score learns v at at and returns the feature's score: 0 until the
// history reaches a season back and its first Warmup moving means of the
// change have been learnt.
func (f *dayOverDay) score(at time.Time, v float64) float64 {
	if f.season <= 0 {
		return 0
	}
	if f.past == nil {
		f.origin = at
		f.past = make([]stamped, 0, f.history)
		f.change = newMovingMean(f.smooth)
		f.mean = gapFeature{w: newSortedWindow(f.history)}
	}
	now := at.Sub(f.origin)
	target := now - f.season
	if target > now { // below the smallest offset
		target = math.MinInt64
	}
	then, ok := f.before(target)
	f.remember(now, v)
	if !ok {
		return 0
	}
	// Halved, as gapFeature's range is, so that the change of values near
	// the float64 limit stays finite.
	mean, ok := f.change.add(v/2 - then/2)
	if !ok {
		return 0
	}
	learnt := f.mean.w.Len()
	s := f.mean.score(mean)
	if learnt < f.warmup {
		return 0
	}
	return s
}

// before returns the value of the latest point remembered at or before the
// offset t; false if none is.
func (f *dayOverDay) before(t time.Duration) (float64, bool) {
	n := len(f.past)
	oldest := func(i int) stamped { return f.past[(f.next+i)%n] } // the i-th oldest
	i := sort.Search(n, func(i int) bool { return oldest(i).off > t })
	if i == 0 {
		return 0, false
	}
	return oldest(i - 1).v, true
}

// remember adds a point to the ring, evicting the oldest when it is full.
func (f *dayOverDay) remember(off time.Duration, v float64) {
	if len(f.past) < cap(f.past) {
		f.past = append(f.past, stamped{off, v})
		return
	}
	f.past[f.next] = stamped{off, v}
	f.next = (f.next + 1) % len(f.past)
}

// movingMean is the mean of the last n values added.
type movingMean struct{ last []float64 }

func newMovingMean(n int) movingMean { return movingMean{last: make([]float64, 0, n)} }

// add records v and returns the mean of the last n values, false until n
// have been added.
func (m *movingMean) add(v float64) (float64, bool) {
	if len(m.last) == cap(m.last) {
		m.last = append(m.last[:0], m.last[1:]...)
	}
	m.last = append(m.last, v)
	if len(m.last) < cap(m.last) {
		return 0, false
	}
	// Summing v/k rather than v keeps the mean finite for values near the
	// float64 limit; a few dozen divisions cost nothing here.
	var mean float64
	k := float64(len(m.last))
	for _, x := range m.last {
		mean += x / k
	}
	return mean, true
}
