package anomaly

import (
	"math"
	"slices"
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
	// Threshold is the score of an alarm (default DefaultThreshold); it
	// only matters here for Hold.
	Threshold float64
	// Hold is how many points after an alarm score 0, so that one event
	// raises one alarm (default 30; negative turns it off).
	Hold int
}

// Defaults of NoveltyConfig.
const (
	DefaultHistory = 4096
	DefaultSmooth  = 20
	DefaultWarmup  = 64
	DefaultHold    = 30
	// DefaultThreshold is Phoenix's fixed alarm threshold: a point is
	// anomalous when it (or its moving mean) lies farther than 5% of the
	// range seen from every value seen. See cmd/phoenix eval nab for how it
	// was chosen.
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
	if !(c.Threshold > 0) || math.IsInf(c.Threshold, 0) {
		c.Threshold = DefaultThreshold
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	return c
}

// Novelty is a streaming univariate anomaly detector. A point's score is
// how far it lies from every value seen in the history, in units of the
// range those values span: 0 for a value seen before, 0.5 for one half the
// range beyond the extremes. The same is done for the moving mean of the
// last Smooth points, and the score is the larger of the two, capped at 1.
//
// It needs no look-ahead (no file minimum or maximum: the range is the
// history's) and no distributional assumption, and it is scale free. What it
// finds is novelty: a level, or a mean level, never visited. A recurring
// pattern, however spiky, stops scoring once it has been seen, which is what
// keeps daily cycles and regular bursts quiet. What it cannot find is a
// familiar value at an unfamiliar time (a daily peak that does not come).
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
	ring  []float64 // the last Smooth values
	hold  int
}

// NewNovelty returns a detector with cfg's zero fields defaulted.
func NewNovelty(cfg NoveltyConfig) *Novelty {
	cfg = cfg.withDefaults()
	return &Novelty{
		cfg:   cfg,
		value: gapFeature{w: newSortedWindow(cfg.History)},
		mean:  gapFeature{w: newSortedWindow(cfg.History)},
		ring:  make([]float64, 0, cfg.Smooth),
	}
}

// Score learns v and returns its anomaly score in [0, 1]. Non-finite values
// score 0 and are not learnt. The time is not used: the detector counts
// points, as NAB's data and Phoenix's scrapes are regular.
func (d *Novelty) Score(_ time.Time, v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	d.n++
	s := d.value.score(v)
	if len(d.ring) == d.cfg.Smooth {
		d.ring = append(d.ring[:0], d.ring[1:]...)
	}
	d.ring = append(d.ring, v)
	if len(d.ring) == d.cfg.Smooth {
		// Summing v/k rather than v keeps the mean finite for values near
		// the float64 limit; twenty divisions cost nothing here.
		var mean float64
		k := float64(len(d.ring))
		for _, x := range d.ring {
			mean += x / k
		}
		s = math.Max(s, d.mean.score(mean))
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
