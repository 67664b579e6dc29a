package depmap

import (
	"math"
	"testing"
	"time"
)

func TestLatencyBuckets(t *testing.T) {
	for _, d := range []time.Duration{
		1100 * time.Nanosecond, 1500 * time.Nanosecond, 37 * time.Microsecond, time.Millisecond,
		3*time.Millisecond + 217*time.Microsecond, 99 * time.Millisecond, 1234 * time.Millisecond, 20 * time.Minute,
	} {
		got := bucketValue(latencyBucket(int64(d)))
		if rel := math.Abs(float64(got-d)) / float64(d); rel > 1.0/16 {
			t.Errorf("%v is reported as %v: %.1f%% off, want within 6.25%%", d, got, 100*rel)
		}
	}
	for _, tc := range []struct {
		ns     int64
		bucket int
	}{{1, 0}, {1023, 0}, {1024, 1}, {1 << 41, latencyBuckets - 1}, {math.MaxInt64, latencyBuckets - 1}} {
		if got := latencyBucket(tc.ns); got != tc.bucket {
			t.Errorf("latencyBucket(%d) = %d, want %d", tc.ns, got, tc.bucket)
		}
	}
	// Buckets are in order: a larger latency never lands in a lower bucket.
	prev := 0
	for ns := int64(1000); ns < 1<<42; ns = ns*9/8 + 1 {
		b := latencyBucket(ns)
		if b < prev {
			t.Fatalf("latencyBucket(%d) = %d after %d", ns, b, prev)
		}
		prev = b
	}
}

// TestEdgeMeasures drives one edge through two windows with a manual clock
// and checks rate, error rate and percentiles.
func TestEdgeMeasures(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{Now: clk.Now, RateWindow: time.Minute})
	g.mu.Lock()
	// 100 calls in the first window: latencies 1ms..100ms, 10 of them failed.
	for i := 1; i <= 100; i++ {
		g.callLocked("a", "b", NodeService, NodeService, false, call{failed: i%10 == 0, dur: int64(time.Duration(i) * time.Millisecond)}, clk.Now())
	}
	g.mu.Unlock()
	e := g.Edges()[0]
	if e.Rate != 100.0/60 || e.ErrorRate != 0.1 {
		t.Errorf("rate %v/s, error rate %v; want %v/s, 0.1", e.Rate, e.ErrorRate, 100.0/60)
	}
	for _, q := range []struct {
		name      string
		got, want time.Duration
	}{{"p50", e.P50, 50 * time.Millisecond}, {"p95", e.P95, 95 * time.Millisecond}, {"p99", e.P99, 99 * time.Millisecond}} {
		if rel := math.Abs(float64(q.got-q.want)) / float64(q.want); rel > 1.0/16 {
			t.Errorf("%s = %v, want %v within 6.25%%", q.name, q.got, q.want)
		}
	}

	// 90 s later the first window weighs half: 50 calls' worth; 30 new
	// calls at 500ms, none failed.
	clk.Advance(90 * time.Second)
	g.mu.Lock()
	for range 30 {
		g.callLocked("a", "b", NodeService, NodeService, false, call{dur: int64(500 * time.Millisecond)}, clk.Now())
	}
	g.mu.Unlock()
	e = g.Edges()[0]
	if want := 80.0 / 60; math.Abs(e.Rate-want) > 1e-9 {
		t.Errorf("rate after 90s = %v/s, want %v/s", e.Rate, want)
	}
	if want := 5.0 / 80; math.Abs(e.ErrorRate-want) > 1e-9 {
		t.Errorf("error rate after 90s = %v, want %v", e.ErrorRate, want)
	}
	if e.P99 < 470*time.Millisecond {
		t.Errorf("p99 after 90s = %v, want the new 500ms calls to show", e.P99)
	}
	if e.Calls != 130 || e.Errors != 10 {
		t.Errorf("totals %d calls %d errors, want 130 and 10", e.Calls, e.Errors)
	}

	// Two windows with nothing: no rate, no percentiles, totals kept.
	clk.Advance(2 * time.Minute)
	e = g.Edges()[0]
	if e.Rate != 0 || e.ErrorRate != 0 || e.P50 != 0 || e.P99 != 0 || e.Calls != 130 {
		t.Errorf("after 2 quiet minutes: %+v, want no rate or latency, 130 calls", e)
	}
}
