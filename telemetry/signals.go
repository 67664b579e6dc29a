package telemetry

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/phoenixsre/phoenix"
)

// latencyQuantile is the quantile SignalLatency reports.
const latencyQuantile = 0.99

// signalValues turns the current reading, and the previous successful one
// taken dt earlier, into signal values. Gauges need only cur; rates, the
// error ratio and the latency quantile need prev and a positive dt. A
// quantity whose counter went down between the two (a restart) is left out
// for this interval. Every returned value is finite.
func signalValues(prev, cur *reading, dt time.Duration) map[phoenix.Signal]float64 {
	out := make(map[phoenix.Signal]float64, 6)
	for s, v := range cur.gauges {
		out[s] = v
	}
	if prev == nil || dt <= 0 {
		return out
	}
	sec := dt.Seconds()
	for s, c := range cur.counters {
		if s == phoenix.SignalRate || s == phoenix.SignalErrors {
			continue // below: the request rate and the error ratio
		}
		if d, ok := counterDelta(prev.counters[s], c); ok {
			out[s] = d / sec // CPU, I/O and extra counters
		}
	}
	reqs, okReqs := counterDelta(prev.counters[phoenix.SignalRate], cur.counters[phoenix.SignalRate])
	if okReqs {
		out[phoenix.SignalRate] = reqs / sec
	}
	if errs, ok := counterDelta(prev.counters[phoenix.SignalErrors], cur.counters[phoenix.SignalErrors]); ok && okReqs && reqs > 0 {
		// Errors are counted apart from requests, so clamp to the signal's
		// 0..1 unit rather than report an impossible ratio.
		out[phoenix.SignalErrors] = min(1, errs/reqs)
	}
	if p, ok := latencyDelta(prev.latency, cur.latency); ok {
		out[phoenix.SignalLatency] = p
	}
	for s, v := range out {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(out, s)
		}
	}
	return out
}

// counterDelta sums, over the label sets of cur, the increase since prev. A
// label set absent from prev counts from zero (labelled children appear at
// their first increment); a label set that went down means the target
// restarted, and the interval is skipped. cur == nil means the family was not
// exposed: no value.
func counterDelta(prev, cur map[string]float64) (float64, bool) {
	if cur == nil {
		return 0, false
	}
	var sum float64
	for k, v := range cur {
		p := prev[k]
		if v < p {
			return 0, false
		}
		sum += v - p
	}
	return sum, true
}

// latencyDelta is the latencyQuantile of the observations made between the
// two readings: bucket increases per label set, summed by upper bound, then
// interpolated like PromQL's histogram_quantile. No observations in the
// interval, a reset or a changed bucket layout give no value.
func latencyDelta(prev, cur map[string]histogram) (float64, bool) {
	if cur == nil {
		return 0, false
	}
	byBound := make(map[float64]float64)
	for k, h := range cur {
		p, seen := prev[k]
		if seen && !slices.Equal(p.bounds, h.bounds) {
			return 0, false
		}
		for i, le := range h.bounds {
			d := h.counts[i]
			if seen {
				d -= p.counts[i]
			}
			if d < 0 {
				return 0, false
			}
			byBound[le] += d
		}
	}
	buckets := make([]Bucket, 0, len(byBound))
	for le, n := range byBound {
		buckets = append(buckets, Bucket{UpperBound: le, Count: n})
	}
	return HistogramQuantile(latencyQuantile, buckets)
}

// Bucket is one cumulative bucket of a classic histogram: Count observations
// were at most UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// HistogramQuantile estimates the q-quantile (0 <= q <= 1) of the
// observations in cumulative buckets the way PromQL's histogram_quantile
// does: linear interpolation inside the bucket that holds the rank, the lower
// edge of the first bucket taken as 0 when its upper bound is positive, and
// the highest finite bound returned when the rank falls in the +Inf bucket.
// Buckets are sorted here; equal bounds are added together, counts are made
// monotonic. It reports false (never NaN or Inf) when there is no answer: q
// out of range, no +Inf bucket, fewer than two buckets, no observations.
func HistogramQuantile(q float64, buckets []Bucket) (float64, bool) {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return 0, false
	}
	bs := coalesce(buckets)
	n := len(bs)
	if n < 2 || !math.IsInf(bs[n-1].UpperBound, 1) {
		return 0, false
	}
	observations := bs[n-1].Count
	if !(observations > 0) || math.IsInf(observations, 0) {
		return 0, false
	}
	rank := q * observations
	b := sort.Search(n-1, func(i int) bool { return bs[i].Count >= rank })
	switch {
	case b == n-1:
		return finite(bs[n-2].UpperBound)
	case b == 0 && bs[0].UpperBound <= 0:
		return finite(bs[0].UpperBound)
	}
	start, end, count := 0.0, bs[b].UpperBound, bs[b].Count
	if b > 0 {
		start = bs[b-1].UpperBound
		count -= bs[b-1].Count
		rank -= bs[b-1].Count
	}
	if count <= 0 {
		return finite(end)
	}
	return finite(start + (end-start)*(rank/count))
}

// coalesce sorts a copy of buckets by bound, drops NaN ones, adds up equal
// bounds and forces counts to be non-decreasing (PromQL's fix for scrapes
// that raced with observations).
func coalesce(buckets []Bucket) []Bucket {
	bs := make([]Bucket, 0, len(buckets))
	for _, b := range buckets {
		if !math.IsNaN(b.UpperBound) && !math.IsNaN(b.Count) {
			bs = append(bs, b)
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].UpperBound < bs[j].UpperBound })
	out := bs[:0]
	for _, b := range bs {
		if k := len(out); k > 0 && out[k-1].UpperBound == b.UpperBound {
			out[k-1].Count += b.Count
			continue
		}
		out = append(out, b)
	}
	for i := 1; i < len(out); i++ {
		out[i].Count = max(out[i].Count, out[i-1].Count)
	}
	return out
}

func finite(v float64) (float64, bool) {
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}
