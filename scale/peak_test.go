package scale

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// series generators for calibration tests: each returns n samples.
var calibrationSeries = []struct {
	name string
	gen  func(r *rand.Rand, n int) []float64
}{
	{"steady noise", func(r *rand.Rand, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = max(0, 100+10*r.NormFloat64())
		}
		return out
	}},
	{"daily wave", func(r *rand.Rand, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = max(0, 100+60*math.Sin(2*math.Pi*float64(i)/288)+8*r.NormFloat64())
		}
		return out
	}},
	{"random walk", func(r *rand.Rand, n int) []float64 {
		out := make([]float64, n)
		v := 500.0
		for i := range out {
			v = max(1, v+5*r.NormFloat64())
			out[i] = v
		}
		return out
	}},
	{"heavy tailed spikes", func(r *rand.Rand, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = 50 * math.Exp(0.5*r.NormFloat64())
		}
		return out
	}},
}

// TestConformalCoverage checks that the quantiles are calibrated: over
// series of different shapes, the peak of the next Steps samples exceeds
// the p-quantile issued before them about 1-p of the time, and the end
// sample exceeds its own likewise.
func TestConformalCoverage(t *testing.T) {
	const n = 3000
	levels := []float64{0.5, 0.9, 0.99}
	for _, steps := range []int{1, 3} {
		for _, sc := range calibrationSeries {
			r := rand.New(rand.NewPCG(1, uint64(steps)))
			xs := sc.gen(r, n)
			c, err := NewConformalPeak(DefaultConformal(steps))
			if err != nil {
				t.Fatal(err)
			}
			// bounds[i][j] is the (end, peak) quantile at levels[j] issued
			// after sample i.
			bounds := make([][][2]float64, n)
			for i, x := range xs {
				c.Observe(t0.Add(time.Duration(i)*5*time.Minute), x)
				for _, p := range levels {
					e, pk, ok := c.Quantiles(p)
					if !ok {
						break
					}
					if pk < e {
						t.Fatalf("peak quantile %v below end quantile %v", pk, e)
					}
					bounds[i] = append(bounds[i], [2]float64{e, pk})
				}
			}
			for j, p := range levels {
				var total, overPeak, overEnd int
				for i := 0; i+steps < n; i++ {
					if len(bounds[i]) != len(levels) {
						continue
					}
					peak := math.Inf(-1)
					for _, x := range xs[i+1 : i+1+steps] {
						peak = max(peak, x)
					}
					total++
					if peak > bounds[i][j][1] {
						overPeak++
					}
					if xs[i+steps] > bounds[i][j][0] {
						overEnd++
					}
				}
				if total < n-100 {
					t.Fatalf("%s steps %d: only %d forecasts of %d", sc.name, steps, total, n)
				}
				// Choosing the tightest candidate costs a little coverage;
				// allow 3 points plus sampling noise.
				tol := 0.03 + 3*math.Sqrt(p*(1-p)/float64(total))
				for what, over := range map[string]int{"peak": overPeak, "end": overEnd} {
					miss := float64(over) / float64(total)
					if math.Abs(miss-(1-p)) > tol {
						t.Errorf("%s, steps %d, p %v: %s exceeded %.3f of the time, want %.3f ± %.3f", sc.name, steps, p, what, miss, 1-p, tol)
					}
				}
			}
		}
	}
}

// TestConformalWarmUp checks that no quantile is vouched for before
// MinScores peaks have been scored, and that bad samples are ignored.
func TestConformalWarmUp(t *testing.T) {
	cfg := DefaultConformal(2)
	c, err := NewConformalPeak(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.MinScores + cfg.Steps {
		if _, _, ok := c.Quantiles(0.9); ok {
			t.Fatalf("quantile after %d samples, want none before %d scores", i, cfg.MinScores)
		}
		c.Observe(t0.Add(time.Duration(i)*time.Minute), 10)
		c.Observe(t0, math.NaN())
		c.Observe(t0, -1)
	}
	e, pk, ok := c.Quantiles(0.9)
	if !ok || e < 10 || pk < 10 || pk > 10.1 {
		t.Fatalf("Quantiles on a flat series = %v, %v, %v; want about 10", e, pk, ok)
	}
	for _, bad := range []float64{0, 1, -0.5, math.NaN()} {
		if _, _, ok := c.Quantiles(bad); ok {
			t.Errorf("Quantiles(%v) vouched, want false", bad)
		}
	}
}

func TestConformalConfig(t *testing.T) {
	for _, cfg := range []ConformalConfig{
		{Steps: 0, Window: 100, MinScores: 10},
		{Steps: 1, Window: 5, MinScores: 1},
		{Steps: 1, Window: 100, MinScores: 200},
		{Steps: 1, Window: 100, MinScores: 10, Centres: []Centre{nil}},
	} {
		if _, err := NewConformalPeak(cfg); err == nil {
			t.Errorf("NewConformalPeak(%+v) = nil error", cfg)
		}
	}
}

// TestHolt checks the damped trend against a hand computation.
func TestHolt(t *testing.T) {
	h := &holt{alpha: 0.5, beta: 0.5, phi: 0.5}
	if _, ok := h.Predict(1); ok {
		t.Fatal("forecast before two points")
	}
	h.Update(10) // level 10
	h.Update(14) // trend 4, level 14
	h.Update(16) // level .5*16+.5*(14+2) = 16; trend .5*2+.5*2 = 2
	got, _ := h.Predict(2)
	if want := 16 + (0.5+0.25)*2; math.Abs(got-want) > 1e-9 {
		t.Fatalf("Predict(2) = %v, want %v", got, want)
	}
}
