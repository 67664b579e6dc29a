package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
)

func seasonal(n, period int, noise float64, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = 100 + 0.01*float64(i) + 10*math.Sin(2*math.Pi*float64(i)/float64(period)) + noise*rng.NormFloat64()
	}
	return xs
}

func TestDetectPeriod(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	noise := make([]float64, 600)
	for i := range noise {
		noise[i] = rng.NormFloat64()
	}
	tests := []struct {
		name string
		xs   []float64
		want int
	}{
		{"sine of period 24 with noise and a trend", seasonal(600, 24, 2, 1), 24},
		{"period 50", seasonal(600, 50, 1, 3), 50},
		{"white noise", noise, 0},
		{"constant", make([]float64, 100), 0},
		{"too short for three seasons", seasonal(60, 24, 0, 1), 0},
	}
	for _, tt := range tests {
		if got := DetectPeriod(tt.xs, 0); got != tt.want {
			t.Errorf("%s: period %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestSeasonalNaive(t *testing.T) {
	s := &SeasonalNaive{Period: 3}
	if _, ok := s.Predict(1); ok {
		t.Fatal("forecast before a season was seen")
	}
	for _, v := range []float64{1, 2, 3, 4, 5, 6} {
		s.Update(v)
	}
	for h, want := range map[int]float64{1: 4, 2: 5, 3: 6, 4: 4, 7: 4} {
		if got, _ := s.Predict(h); got != want {
			t.Errorf("lead %d: %v, want %v", h, got, want)
		}
	}
}

// On a noisy seasonal series Holt-Winters finds the season, beats seasonal
// naive, and its conformal intervals hold what they claim.
func TestHoltWintersOnSeasonal(t *testing.T) {
	xs := seasonal(3000, 48, 1.5, 7)
	hw := NewHoltWinters(HoltWintersConfig{History: 1000, Refit: 200})
	ev := Evaluate(xs, hw, 6, 750)
	t.Logf("period %d, MASE %.3f vs naive %.3f, coverage %.3f / %.3f over %d", hw.Period(), ev.MASE, ev.MASENaive, ev.Coverage80, ev.Coverage95, ev.N)
	if hw.Period() != 48 {
		t.Errorf("season %d, want 48", hw.Period())
	}
	if !(ev.MASE < 0.9*ev.MASENaive) {
		t.Errorf("MASE %.3f, want below 90%% of seasonal naive's %.3f", ev.MASE, ev.MASENaive)
	}
	if math.Abs(ev.Coverage80-0.8) > 0.03 || math.Abs(ev.Coverage95-0.95) > 0.02 {
		t.Errorf("coverage %.3f and %.3f, want 0.80 ± 0.03 and 0.95 ± 0.02", ev.Coverage80, ev.Coverage95)
	}
}

// With no season the model falls back to damped Holt and follows a trend.
func TestHoltWintersFallsBackToTrend(t *testing.T) {
	hw := NewHoltWinters(HoltWintersConfig{})
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 500 {
		hw.Update(5*float64(i) + rng.NormFloat64())
	}
	got, ok := hw.Predict(1)
	if !ok || hw.Period() != 0 || math.Abs(got-2500) > 5 {
		t.Errorf("forecast %v (ok %v, season %d), want about 2500 with no season", got, ok, hw.Period())
	}
}

// A single outlier moves the robust level little.
func TestHoltWintersRobustToOutlier(t *testing.T) {
	hw := NewHoltWinters(HoltWintersConfig{})
	rng := rand.New(rand.NewPCG(5, 5))
	for range 300 {
		hw.Update(10 + rng.NormFloat64())
	}
	hw.Update(1000)
	if got, _ := hw.Predict(1); math.Abs(got-10) > 5 {
		t.Errorf("after one outlier of 1000 the forecast is %v, want near the level 10", got)
	}
}

func TestConformal(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	c := NewConformal(&SeasonalNaive{Period: 1}, 3, 500)
	if _, _, _, ok := c.Predict(1, 0.8); ok {
		t.Fatal("an interval with no history")
	}
	inside, n := 0, 0
	var lo, hi float64
	for i := range 5000 {
		v := rng.NormFloat64()
		if i > 600 {
			if v >= lo && v <= hi {
				inside++
			}
			n++
		}
		c.Update(v)
		_, lo, hi, _ = c.Predict(1, 0.9)
	}
	if cov := float64(inside) / float64(n); math.Abs(cov-0.9) > 0.015 {
		t.Errorf("90%% interval covered %.3f", cov)
	}
	if _, _, _, ok := c.Predict(4, 0.8); ok {
		t.Error("an interval beyond the calibrated leads")
	}
}

// The LSTM learns a noisy sine well enough to beat naive at one step.
func TestLSTMLearnsSine(t *testing.T) {
	xs := seasonal(1600, 30, 0.3, 9)
	ev := Evaluate(xs, NewLSTM(LSTMConfig{Seed: 1, Retrain: 400}), 1, 800)
	t.Logf("LSTM MASE %.3f vs naive %.3f (period %d)", ev.MASE, ev.MASENaive, ev.Period)
	naiveOneStep := Evaluate(xs, &SeasonalNaive{Period: 1}, 1, 800)
	if !(ev.MASE < naiveOneStep.MASE) {
		t.Errorf("LSTM MASE %.3f, want below the last-value forecast's %.3f", ev.MASE, naiveOneStep.MASE)
	}
	if l := NewLSTM(LSTMConfig{}); func() bool { _, ok := l.Predict(1); return ok }() {
		t.Error("an untrained LSTM forecast")
	}
}
