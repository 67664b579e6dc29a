package telemetry

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

// shape is a signal's true normal: 100, a daily sine of amplitude 20
// peaking at 06:00, and 10 more on weekends.
func shape(t time.Time) float64 {
	t = t.UTC()
	v := 100 + 20*math.Sin(2*math.Pi*(float64(t.Hour())+0.5)/24)
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		v += 10
	}
	return v
}

func TestBaselineLearnsLevelSpreadAndShape(t *testing.T) {
	bs, err := NewBaselines(BaselineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	orders := Target{Component: "orders", Environment: phoenix.Primary}
	observe := func(at time.Time, v float64) {
		bs.Observe(Sample{Target: orders, Time: at, Values: map[phoenix.Signal]float64{phoenix.SignalCPU: v}})
	}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	const step = 5 * time.Minute
	at := start
	for i := 0; at.Before(start.Add(28 * 24 * time.Hour)); i++ {
		if i == DefaultWarmup-1 {
			if _, ok := bs.Get("orders", phoenix.Primary, phoenix.SignalCPU); ok {
				t.Fatal("a baseline before the warm-up is over")
			}
		}
		v := shape(at) + 2*rng.NormFloat64()
		if rng.Float64() < 0.03 {
			v += 500 // spikes must not move the baseline
		}
		if rng.Float64() < 0.1 {
			at = at.Add(step) // and gaps must not confuse it
			continue
		}
		observe(at, v)
		at = at.Add(step)
	}
	b, ok := bs.Get("orders", phoenix.Primary, phoenix.SignalCPU)
	if !ok {
		t.Fatal("no baseline after four weeks")
	}
	if want := 100 + 10*2.0/7; math.Abs(b.Level-want) > 1.5 {
		t.Errorf("level %.2f, want %.2f ± 1.5", b.Level, want)
	}
	if b.Spread < 1.5 || b.Spread > 3 {
		t.Errorf("spread %.2f, want about 2 (the noise), within [1.5, 3]", b.Spread)
	}
	var sum, worst float64
	n := 0
	for tt := at.Add(-7 * 24 * time.Hour); tt.Before(at); tt = tt.Add(30 * time.Minute) {
		e := math.Abs(b.Expected(tt) - shape(tt))
		sum, worst, n = sum+e, max(worst, e), n+1
	}
	if mae := sum / float64(n); mae > 1.5 || worst > 4 {
		t.Errorf("expected vs true shape over the last week: mean error %.2f, worst %.2f; want under 1.5 and 4", mae, worst)
	}
	peak := time.Date(2026, 2, 4, 6, 0, 0, 0, time.UTC) // a Wednesday, 06:00
	if s := b.Score(peak, shape(peak)+20); s < 5 || s > 14 {
		t.Errorf("score of +20 at a daily peak = %.1f, want about 20/spread", s)
	}
	if s := b.Score(peak, shape(peak)); math.Abs(s) > 1 {
		t.Errorf("score of a normal value at the peak = %.1f, want near 0 (the shape is expected)", s)
	}

	// A lasting shift of the level is not an outlier: the baseline takes
	// it, over a few level memories.
	for day := 1; day <= 10; day++ {
		for end := at.Add(24 * time.Hour); at.Before(end); at = at.Add(step) {
			observe(at, shape(at)+50+2*rng.NormFloat64())
		}
		b, _ = bs.Get("orders", phoenix.Primary, phoenix.SignalCPU)
		e := math.Abs(b.Expected(at) - (shape(at) + 50))
		t.Logf("day %d after a +50 shift: expected is %.1f off", day, e)
		if (day == 3 && e > 30) || (day == 10 && e > 5) {
			t.Errorf("%d days after a +50 shift, expected is %.1f off", day, e)
		}
	}
	// Old points are ignored; Forget drops the baselines.
	before := b.Points
	observe(start, 1e9)
	if b, _ = bs.Get("orders", phoenix.Primary, phoenix.SignalCPU); b.Points != before {
		t.Errorf("an old point was folded in")
	}
	bs.Forget("orders", phoenix.Primary)
	if _, ok := bs.Get("orders", phoenix.Primary, phoenix.SignalCPU); ok {
		t.Error("baseline kept after Forget")
	}
}

func TestBaselineConstantSeries(t *testing.T) {
	bs, err := NewBaselines(BaselineConfig{Warmup: 5})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for i := range 100 {
		bs.Observe(Sample{Target: Target{Component: "db", Environment: phoenix.Primary}, Time: at.Add(time.Duration(i) * time.Second),
			Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 7, phoenix.SignalErrors: math.NaN()}})
	}
	b, ok := bs.Get("db", phoenix.Primary, phoenix.SignalMemory)
	if !ok || b.Level != 7 || b.Spread != 0 || b.Score(at, 8) != 0 {
		t.Errorf("constant series: %+v, want level 7, spread 0 and no score", b)
	}
	if _, ok := bs.Get("db", phoenix.Primary, phoenix.SignalErrors); ok {
		t.Error("a baseline from NaN values")
	}
	if _, err := NewBaselines(BaselineConfig{Warmup: -1}); err == nil {
		t.Error("negative warm-up accepted")
	}
}
