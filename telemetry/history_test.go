package telemetry

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phoenixsre/phoenix"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func values(h *History, s phoenix.Signal, since time.Time) []float64 {
	var out []float64
	for _, p := range h.Range("orders", phoenix.Primary, s, since) {
		out = append(out, p.V)
	}
	return out
}

var orders = Target{Component: "orders", Environment: phoenix.Primary}

func TestHistory(t *testing.T) {
	type op struct {
		sec int
		v   float64
	}
	cases := []struct {
		name      string
		retention time.Duration
		maxPoints int
		ops       []op
		since     int
		want      []float64
	}{
		{"in order", time.Hour, 100, []op{{0, 1}, {1, 2}, {2, 3}}, 0, []float64{1, 2, 3}},
		{"since filters", time.Hour, 100, []op{{0, 1}, {1, 2}, {2, 3}}, 1, []float64{2, 3}},
		{"since after all", time.Hour, 100, []op{{0, 1}}, 5, nil},
		{"retention drops old points", 10 * time.Second, 100, []op{{0, 1}, {5, 2}, {11, 3}, {15, 4}}, -100, []float64{2, 3, 4}},
		{"max points keeps the newest", time.Hour, 2, []op{{0, 1}, {1, 2}, {2, 3}}, -100, []float64{2, 3}},
		{"out of order inserted in place", time.Hour, 100, []op{{0, 1}, {2, 3}, {1, 2}}, -100, []float64{1, 2, 3}},
		{"out of order beyond retention dropped", 10 * time.Second, 100, []op{{20, 1}, {5, 2}}, -100, []float64{1}},
		{"equal timestamps kept", time.Hour, 100, []op{{1, 1}, {1, 2}}, -100, []float64{1, 2}},
		{"non-finite values dropped", time.Hour, 100, []op{{0, math.NaN()}, {1, math.Inf(1)}, {2, 7}}, -100, []float64{7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistory(tc.retention, tc.maxPoints)
			for _, o := range tc.ops {
				h.Append(orders, at(o.sec), map[phoenix.Signal]float64{phoenix.SignalMemory: o.v})
			}
			if diff := cmp.Diff(tc.want, values(h, phoenix.SignalMemory, at(tc.since))); diff != "" {
				t.Errorf("Range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHistorySeriesAreSeparate(t *testing.T) {
	h := NewHistory(0, 0)
	h.Append(orders, at(0), map[phoenix.Signal]float64{phoenix.SignalMemory: 1, phoenix.SignalCPU: 2})
	h.Append(Target{Component: "orders", Environment: phoenix.Secondary}, at(0), map[phoenix.Signal]float64{phoenix.SignalMemory: 3})
	h.Append(Target{Component: "cart", Environment: phoenix.Primary}, at(0), map[phoenix.Signal]float64{phoenix.SignalMemory: 4})

	if got := values(h, phoenix.SignalCPU, t0); !cmp.Equal(got, []float64{2}) {
		t.Errorf("orders cpu = %v, want [2]", got)
	}
	h.Forget("orders", phoenix.Primary)
	if got := values(h, phoenix.SignalMemory, t0); got != nil {
		t.Errorf("after Forget, orders memory = %v, want none", got)
	}
	if got := h.Range("orders", phoenix.Secondary, phoenix.SignalMemory, t0); len(got) != 1 || got[0].V != 3 {
		t.Errorf("Forget(primary) touched the secondary series: %v", got)
	}
	if got := h.Range("cart", phoenix.Primary, phoenix.SignalMemory, t0); len(got) != 1 || got[0].V != 4 {
		t.Errorf("Forget(orders) touched cart: %v", got)
	}
}

// Range returns a copy: appending after it does not change what the caller
// holds.
func TestHistoryRangeIsACopy(t *testing.T) {
	h := NewHistory(time.Hour, 3)
	for i := range 3 {
		h.Append(orders, at(i), map[phoenix.Signal]float64{phoenix.SignalMemory: float64(i)})
	}
	got := h.Range("orders", phoenix.Primary, phoenix.SignalMemory, t0)
	h.Append(orders, at(3), map[phoenix.Signal]float64{phoenix.SignalMemory: 3})
	if got[0].V != 0 || got[2].V != 2 {
		t.Errorf("held range changed to %v", got)
	}
}

// Concurrent writers and readers; run with -race.
func TestHistoryConcurrent(t *testing.T) {
	h := NewHistory(time.Hour, 50)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		target := Target{Component: phoenix.ComponentID(fmt.Sprintf("c%d", w)), Environment: phoenix.Primary}
		go func() {
			defer wg.Done()
			for i := range 500 {
				h.Append(target, at(i), map[phoenix.Signal]float64{phoenix.SignalMemory: float64(i)})
			}
		}()
		go func() {
			defer wg.Done()
			for range 500 {
				pts := h.Range(target.Component, phoenix.Primary, phoenix.SignalMemory, t0)
				for i := 1; i < len(pts); i++ {
					if pts[i].T.Before(pts[i-1].T) {
						t.Errorf("points out of order: %v", pts)
						return
					}
				}
				if len(pts) > 50 {
					t.Errorf("%d points, want at most 50", len(pts))
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := h.Range("c0", phoenix.Primary, phoenix.SignalMemory, t0); len(got) != 50 || got[49].V != 499 {
		t.Errorf("final series has %d points ending %v, want 50 ending 499", len(got), got[len(got)-1])
	}
}
