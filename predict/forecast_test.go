package predict

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// The fit matches gonum's least squares on the same points, and the
// forecast's spread is the textbook prediction interval.
func TestLinearTrendMatchesLeastSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lt := NewLinearTrend(time.Minute, 0.9)
	var xs, ys []float64
	at := t0
	for range 40 {
		at = at.Add(time.Duration(100+rng.IntN(1900)) * time.Millisecond) // irregular
		v := 3 + 0.7*at.Sub(t0).Seconds() + rng.NormFloat64()
		lt.Observe(at, v)
		if at.Sub(t0) >= 0 {
			xs, ys = append(xs, at.Sub(t0).Seconds()), append(ys, v)
		}
	}
	// Only the points of the last minute are in the window.
	last := xs[len(xs)-1]
	for len(xs) > 0 && xs[0] < last-60 {
		xs, ys = xs[1:], ys[1:]
	}
	if lt.Len() != len(xs) {
		t.Fatalf("Len = %d, want %d points in the window", lt.Len(), len(xs))
	}
	alpha, beta := stat.LinearRegression(xs, ys, nil, false)
	n := float64(len(xs))
	var sse, sxx float64
	xbar := stat.Mean(xs, nil)
	for i := range xs {
		r := ys[i] - alpha - beta*xs[i]
		sse += r * r
		sxx += (xs[i] - xbar) * (xs[i] - xbar)
	}
	s2 := sse / (n - 2)
	for _, ahead := range []time.Duration{0, 5 * time.Second, 30 * time.Second} {
		x := last + ahead.Seconds()
		f, ok := lt.Forecast(ahead)
		if !ok {
			t.Fatal("no forecast")
		}
		wantMean := alpha + beta*x
		wantSigma := math.Sqrt(s2 * (1 + 1/n + (x-xbar)*(x-xbar)/sxx))
		q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 2}.Quantile(0.95)
		if math.Abs(f.Mean-wantMean) > 1e-9 || math.Abs(f.Sigma-wantSigma) > 1e-9 ||
			math.Abs(f.Hi-(wantMean+q*wantSigma)) > 1e-9 || math.Abs(f.Lo-(wantMean-q*wantSigma)) > 1e-9 || f.DF != n-2 {
			t.Errorf("ahead %v: forecast %+v, want mean %v sigma %v interval ±%v df %v", ahead, f, wantMean, wantSigma, q*wantSigma, n-2)
		}
		lo, hi, ok := lt.TrendBounds(ahead)
		half := q * math.Sqrt(s2/sxx) * (x - xbar)
		if !ok || math.Abs(lo.Mean-(wantMean-half)) > 1e-9 || math.Abs(hi.Mean-(wantMean+half)) > 1e-9 {
			t.Errorf("ahead %v: trend bounds %v..%v, want %v..%v", ahead, lo.Mean, hi.Mean, wantMean-half, wantMean+half)
		}
		if want := math.Sqrt(s2 * (1 + 1/n)); math.Abs(lo.Sigma-want) > 1e-9 {
			t.Errorf("trend bound sigma %v, want %v (no slope uncertainty)", lo.Sigma, want)
		}
	}
}

func TestLinearTrendEdges(t *testing.T) {
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	cases := []struct {
		name   string
		obs    [][2]float64 // seconds, value
		ok     bool
		mean30 float64 // forecast 30s ahead, when ok
	}{
		{"empty", nil, false, 0},
		{"two points", [][2]float64{{0, 1}, {1, 2}}, false, 0},
		{"three points on a line", [][2]float64{{0, 1}, {1, 2}, {2, 3}}, true, 33},
		{"one timestamp", [][2]float64{{5, 1}, {5, 2}, {5, 3}}, false, 0},
		{"out of order dropped", [][2]float64{{0, 1}, {1, 2}, {2, 3}, {1.5, 100}}, true, 33},
		{"non-finite dropped", [][2]float64{{0, 1}, {1, math.NaN()}, {1, 2}, {2, math.Inf(1)}, {2, 3}}, true, 33},
		{"old points leave the window", [][2]float64{{0, 1000}, {1, -1000}, {100, 1}, {101, 2}, {102, 3}}, true, 33},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lt := NewLinearTrend(time.Minute, 0)
			for _, o := range tc.obs {
				lt.Observe(sec(o[0]), o[1])
			}
			f, ok := lt.Forecast(30 * time.Second)
			if ok != tc.ok || (ok && (math.Abs(f.Mean-tc.mean30) > 1e-9 || f.Sigma != 0)) {
				t.Errorf("Forecast(30s) = %+v, %v; want mean %v with zero spread, ok %v", f, ok, tc.mean30, tc.ok)
			}
			if _, _, bok := lt.TrendBounds(time.Second); bok != tc.ok {
				t.Errorf("TrendBounds ok = %v, want %v", bok, tc.ok)
			}
		})
	}
}

func TestLinearTrendBoundsItsPoints(t *testing.T) {
	lt := NewLinearTrend(time.Hour, 0.9)
	for i := range 3 * maxTrendPoints {
		lt.Observe(t0.Add(time.Duration(i)*time.Millisecond), float64(i))
	}
	if lt.Len() != maxTrendPoints {
		t.Errorf("Len = %d, want the cap %d", lt.Len(), maxTrendPoints)
	}
}

// The forecast widens with the lead time: the trend's uncertainty grows.
func TestLinearTrendSpreadGrows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	lt := NewLinearTrend(time.Minute, 0.9)
	for i := range 20 {
		lt.Observe(t0.Add(time.Duration(i)*time.Second), rng.NormFloat64())
	}
	prev := 0.0
	for _, ahead := range []time.Duration{0, time.Second, 10 * time.Second, time.Minute} {
		f, _ := lt.Forecast(ahead)
		if f.Sigma <= prev {
			t.Errorf("sigma at %v = %v, not above %v", ahead, f.Sigma, prev)
		}
		prev = f.Sigma
	}
}
