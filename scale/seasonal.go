package scale

import (
	"slices"
	"sort"
	"time"
)

// day is the season of the built-in seasonal centres: demand made by people
// (requests, traffic, the jobs scheduled for them) repeats daily far more
// often than at any other period, and a day is known from the samples'
// timestamps, not estimated from the series, so that the centre needs no
// warm-up to find it and cannot lock onto a spurious period.
const day = 24 * time.Hour

// gapWindow is how many recent gaps between samples the seasonal centre's
// sample interval is the median of.
const gapWindow = 64

// maxSeasonalSamples bounds a seasonal centre's history (1.6 MB): five days
// of samples every 15 s (the scaler's default measure) fit; with finer
// sampling the oldest days go first and fewer are averaged, and below
// about 1.7 s no day fits and the seasonal centres forecast nothing.
const maxSeasonalSamples = 50_000

// seasonal is a seasonal naive forecast with a level correction: the value
// h samples ahead is the value the series had at that time of day on each
// of the last few days, shifted by how far the level has moved since then:
//
//	ŷ(t+h) = level(t) + mean over k of [y(t+h−kP) − level(t−kP)]
//
// where P is the period and level an exponentially weighted mean. A level
// that lags a daily ramp lags it alike today and on day k, so the difference
// is the ramp to come, not the lag; and the average over days, each read at
// its own timestamp (linearly interpolated between samples), damps one
// day's noise without a model of the season's shape. Sample times, not
// counts, locate a day, so that irregular sampling and gaps (traffic
// sensors, missed scrapes) do not shift the season.
//
// It forecasts nothing until a period of samples is in, and the steps of
// the horizon are taken to be the median of recent gaps between samples.
type seasonal struct {
	period  time.Duration
	seasons int     // how many past periods are averaged, at most
	w       float64 // the weight of a new sample in the level

	level float64
	first time.Time        // the first sample's time
	hist  []seasonalSample // the samples of the last seasons periods, oldest first
	gaps  []float64        // the last gapWindow gaps between samples, in seconds
	step  time.Duration    // their median
	sbuf  []float64        // scratch for the median
}

// seasonalSample is one sample and the level just after it.
type seasonalSample struct {
	at       time.Time
	v, level float64
}

func (s *seasonal) observe(at time.Time, v float64) {
	n := len(s.hist)
	if n > 0 && !at.After(s.hist[n-1].at) {
		// A sample out of order or at a time already seen cannot be placed
		// in the season; it still moves the level.
		s.level += s.w * (v - s.level)
		return
	}
	if n == 0 {
		s.level, s.first = v, at
	} else {
		s.level += s.w * (v - s.level)
		s.gaps = append(s.gaps, at.Sub(s.hist[n-1].at).Seconds())
		if len(s.gaps) > gapWindow {
			s.gaps = s.gaps[1:]
		}
		s.sbuf = append(s.sbuf[:0], s.gaps...)
		slices.Sort(s.sbuf)
		s.step = time.Duration(s.sbuf[len(s.sbuf)/2] * float64(time.Second))
	}
	s.hist = append(s.hist, seasonalSample{at: at, v: v, level: s.level})
	// Keep the last sample older than the oldest time Predict reads, for
	// interpolation.
	oldest := at.Add(-time.Duration(s.seasons) * s.period)
	i := sort.Search(len(s.hist), func(i int) bool { return !s.hist[i].at.Before(oldest) })
	if i > 1 {
		s.hist = s.hist[i-1:]
	}
	if len(s.hist) > maxSeasonalSamples {
		s.hist = s.hist[len(s.hist)-maxSeasonalSamples:]
	}
}

// seasoned reports whether the centre has seen two periods: one to forecast
// from and one in which its forecasts could be scored.
func (s *seasonal) seasoned() bool {
	n := len(s.hist)
	return n > 0 && s.hist[n-1].at.Sub(s.first) >= 2*s.period
}

// Predict averages over the days from yesterday back to the first that the
// samples do not cover (before the first sample, or in a gap); false if
// that is yesterday.
func (s *seasonal) Predict(h int) (float64, bool) {
	n := len(s.hist)
	if n < 2 || s.step <= 0 {
		return 0, false
	}
	now := s.hist[n-1].at
	ahead := time.Duration(h) * s.step
	if ahead >= s.period {
		return 0, false
	}
	var sum float64
	var k int
	for k = 1; k <= s.seasons; k++ {
		back := time.Duration(k) * s.period
		then, ok1 := s.at(now.Add(-back), func(x seasonalSample) float64 { return x.level })
		v, ok2 := s.at(now.Add(ahead-back), func(x seasonalSample) float64 { return x.v })
		if !ok1 || !ok2 {
			break
		}
		sum += v - then
	}
	if k == 1 {
		return 0, false
	}
	return s.level + sum/float64(k-1), true
}

// at interpolates f of the samples linearly at t; false if t is outside
// them or between two samples further apart than a few steps (a gap in the
// data, across which nothing is known).
func (s *seasonal) at(t time.Time, f func(seasonalSample) float64) (float64, bool) {
	i := sort.Search(len(s.hist), func(i int) bool { return !s.hist[i].at.Before(t) })
	switch {
	case i == len(s.hist):
		return 0, false
	case s.hist[i].at.Equal(t):
		return f(s.hist[i]), true
	case i == 0:
		return 0, false
	}
	a, b := s.hist[i-1], s.hist[i]
	span := b.at.Sub(a.at)
	if span > maxGapSteps*s.step {
		return 0, false
	}
	frac := float64(t.Sub(a.at)) / float64(span)
	return f(a) + frac*(f(b)-f(a)), true
}

// maxGapSteps is the longest gap, in steps, the seasonal centre
// interpolates across.
const maxGapSteps = 4
