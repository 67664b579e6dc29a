package depmap

import (
	"math"
	"math/bits"
	"time"
)

// edgeWindow measures an edge over the last RateWindow, by arrival time:
// two fixed windows, the current one and the one before, weighted so that
// the sum covers exactly one window (the sliding-window estimate rate
// limiters use). Arrival time, not span time, because spans come late,
// out of order and with skewed clocks. Its memory is fixed once the first
// latency arrives: two histograms.
type edgeWindow struct {
	start     int64 // start of cur, Unix ns; 0 before the first call
	cur, prev windowCounts
}

type windowCounts struct {
	calls, errors uint64
	lat           *latencyHist // nil until a latency is observed
}

func (c *windowCounts) reset() {
	c.calls, c.errors = 0, 0
	if c.lat != nil {
		clear(c.lat[:])
	}
}

// observe counts one call at now (Unix ns) in windows of w ns.
func (win *edgeWindow) observe(now, w int64, failed bool, dur int64) {
	win.rotate(now, w)
	win.cur.calls++
	if failed {
		win.cur.errors++
	}
	if dur > 0 {
		if win.cur.lat == nil {
			win.cur.lat = new(latencyHist)
		}
		win.cur.lat[latencyBucket(dur)]++
	}
}

func (win *edgeWindow) rotate(now, w int64) {
	switch {
	case win.start == 0:
		win.start = now
	case now >= win.start+2*w:
		win.prev.reset()
		win.cur.reset()
		win.start = now
	case now >= win.start+w:
		win.prev, win.cur = win.cur, win.prev
		win.cur.reset()
		win.start += w
	}
}

// measure fills e's rate, error rate and percentiles as of now without
// changing the window.
func (win *edgeWindow) measure(e *Edge, now, w int64) {
	if win.start == 0 || now >= win.start+2*w {
		return
	}
	// older is weighted by the share of it still inside [now-w, now].
	older, newer := &win.prev, &win.cur
	elapsed := now - win.start
	if elapsed >= w { // cur has become the older window
		older, newer = &win.cur, nil
		elapsed -= w
	}
	weight := 1 - float64(max(elapsed, 0))/float64(w)
	calls := float64(older.calls) * weight
	errs := float64(older.errors) * weight
	var hist [latencyBuckets]uint64
	add := func(c *windowCounts) {
		if c.lat != nil {
			for i, n := range c.lat {
				hist[i] += uint64(n)
			}
		}
	}
	add(older)
	if newer != nil {
		calls += float64(newer.calls)
		errs += float64(newer.errors)
		add(newer)
	}
	e.Rate = calls / (float64(w) / float64(time.Second))
	if calls > 0 {
		e.ErrorRate = errs / calls
	}
	e.P50, e.P95, e.P99 = quantile(&hist, 0.50), quantile(&hist, 0.95), quantile(&hist, 0.99)
}

// latencyHist counts latencies in log-linear buckets: 8 per power of two
// from 1µs (1024 ns) up to about 36 minutes, so any value is reported
// within 1/16 (about 6%) of itself. Hand-written rather than a sketch
// library (DDSketch, HdrHistogram) because a fixed array is what makes the
// per-edge memory bound exact and the hot path free of allocation; merging
// two windows is a loop over 258 counters.
type latencyHist [latencyBuckets]uint32

const (
	subBuckets     = 8
	minLatencyExp  = 10 // 2^10 ns
	maxLatencyExp  = 41 // 2^41 ns, about 36 min
	latencyBuckets = 2 + (maxLatencyExp-minLatencyExp)*subBuckets
)

// latencyBucket maps ns > 0 to its bucket: 0 below 1024 ns, the last one
// at or above 2^41 ns.
func latencyBucket(ns int64) int {
	if ns < 1<<minLatencyExp {
		return 0
	}
	if ns >= 1<<maxLatencyExp {
		return latencyBuckets - 1
	}
	e := bits.Len64(uint64(ns)) - 1 // 2^e <= ns < 2^(e+1)
	m := int(uint64(ns)>>(e-3)) & (subBuckets - 1)
	return 1 + (e-minLatencyExp)*subBuckets + m
}

// bucketValue is the middle of bucket i, the value reported for it.
func bucketValue(i int) time.Duration {
	switch {
	case i <= 0:
		return time.Duration(1<<minLatencyExp) / 2
	case i >= latencyBuckets-1:
		return time.Duration(int64(1) << maxLatencyExp)
	}
	e := (i-1)/subBuckets + minLatencyExp
	m := int64((i - 1) % subBuckets)
	lo := (subBuckets + m) << (e - 3)
	return time.Duration(lo + int64(1)<<(e-4))
}

// quantile returns the q-quantile of the counts in h, 0 when h is empty.
func quantile(h *[latencyBuckets]uint64, q float64) time.Duration {
	var total uint64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	// The rank of the q-quantile, 1-based: the smallest value with at
	// least q of the observations at or below it.
	rank := min(max(uint64(math.Ceil(q*float64(total))), 1), total)
	var seen uint64
	for i, n := range h {
		seen += n
		if seen >= rank {
			return bucketValue(i)
		}
	}
	return bucketValue(latencyBuckets - 1)
}
