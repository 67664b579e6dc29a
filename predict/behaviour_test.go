package predict

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

// A component that behaves as never before gets a calibrated likelihood
// near 1, which raises its probability towards the upper bound but leaves
// the lower bound alone; its usual behaviour does not.
func TestBehaviourLikelihood(t *testing.T) {
	e := NewEngine(Config{Window: 10 * time.Second})
	lim := Limits{phoenix.SignalMemory: 200e6, phoenix.SignalLatency: 1}
	e.SetLimits("c", lim)
	rng := rand.New(rand.NewPCG(1, 2))
	at := t0
	for range 300 {
		at = at.Add(500 * time.Millisecond)
		e.Observe("c", at, map[phoenix.Signal]float64{phoenix.SignalMemory: 100e6 + 1e6*rng.NormFloat64(), phoenix.SignalLatency: 0.05 + 0.005*rng.NormFloat64()})
	}
	e.mu.Lock()
	usual := e.comps["c"].behave.likelihood()
	e.mu.Unlock()
	before := e.Risk("c", at)
	at = at.Add(500 * time.Millisecond)
	e.Observe("c", at, map[phoenix.Signal]float64{phoenix.SignalMemory: 100e6, phoenix.SignalLatency: 0.6})
	e.mu.Lock()
	odd := e.comps["c"].behave.likelihood()
	e.mu.Unlock()
	after := e.Risk("c", at)
	checkRisk(t, after)
	t.Logf("likelihood usual %.3f, odd %.4f; risk before %+.3f after %.3f [%.3f, %.3f]", usual, odd, before.Probability, after.Probability, after.Lower, after.Upper)
	if usual > 0.9 || odd < 0.95 {
		t.Errorf("likelihood %.3f for usual behaviour, %.4f for a latency jump; want < 0.9 and >= 0.95", usual, odd)
	}
	if after.Probability < before.Probability || after.Lower > after.Probability {
		t.Errorf("risk %v after the anomaly, %v before", after, before)
	}
	e.Reset("c")
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.comps["c"].behave.likelihood() != 0 {
		t.Error("Reset kept the behaviour model")
	}
}

// The window's model: a leak that starts after a flat, noisy history is
// fitted on its own points within a few of them; a step is a level shift
// with the flat slope from before; noise alone is one line.
func TestFitWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(n int, f func(i int) float64) []point {
		var pts []point
		for i := range n {
			pts = append(pts, point{t: t0.Add(time.Duration(i) * 500 * time.Millisecond), v: f(i) + 0.3e6*rng.NormFloat64()})
		}
		return pts
	}
	leak := fitWindow(critical{}, mk(20, func(i int) float64 {
		if i < 14 {
			return 40e6
		}
		return 40e6 + 4e6*float64(i-13) // 8 MB/s from point 14 on
	}))
	if leak.n < minSegment || leak.n > 8 || math.Abs(leak.slope-8e6) > 1e6 {
		t.Errorf("leak from point 14: fitted on %d points, slope %.3g/s; want 4..8 points, 8e6/s", leak.n, leak.slope)
	}
	for _, after := range []int{1, 3, 6} {
		step := fitWindow(critical{}, mk(20, func(i int) float64 {
			if i < 20-after {
				return 40e6
			}
			return 60e6
		}))
		if step.df != 17 || math.Abs(step.slope) > 0.5e6 || math.Abs(step.level-60e6) > 1e6 {
			t.Errorf("step %d points before the end: df %d, slope %.3g/s, level %.3g; want a step model (17), flat, at 60e6", after, step.df, step.slope, step.level)
		}
	}
	spurious := 0
	for range 500 {
		if f := fitWindow(critical{}, mk(20, func(int) float64 { return 40e6 })); f.df != 18 {
			spurious++
		}
	}
	if spurious > 10 {
		t.Errorf("noise alone: %d of 500 windows not fitted as one line, want at most 10", spurious)
	}
}

// One spike inside the window is dropped; at its end it is kept (as a
// step), and a point within the noise is never dropped.
func TestDropOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	mk := func(spikeAt int) []point {
		var pts []point
		for i := range 20 {
			v := 0.02 + 0.002*rng.NormFloat64()
			if i == spikeAt {
				v = 1
			}
			pts = append(pts, point{t: t0.Add(time.Duration(i) * 500 * time.Millisecond), v: v})
		}
		return pts
	}
	if got := dropOutliers(critical{}, mk(15)); len(got) != 19 || slicesContainsValue(got, 1) {
		t.Errorf("spike at 15: %d points kept, want 19 without it", len(got))
	}
	if got := dropOutliers(critical{}, mk(19)); len(got) != 20 {
		t.Errorf("spike at the end: %d points kept, want all 20", len(got))
	}
	if f := fitWindow(critical{}, mk(15)); math.Abs(f.slope) > 0.002 || f.level > 0.03 {
		t.Errorf("spike at 15: slope %v level %v, want the flat 0.02", f.slope, f.level)
	}
	dropped := 0
	for range 300 {
		dropped += 20 - len(dropOutliers(critical{}, mk(-1)))
	}
	if dropped > 6 {
		t.Errorf("noise alone: %d points dropped from 300 windows, want at most 6", dropped)
	}
}

func slicesContainsValue(pts []point, v float64) bool {
	for _, p := range pts {
		if p.v == v {
			return true
		}
	}
	return false
}
