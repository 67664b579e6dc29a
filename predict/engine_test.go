package predict

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// series generates n points one step apart from t0: f(i) plus normal noise
// of standard deviation sd, from a seeded generator.
type gen struct {
	n    int
	step time.Duration
	f    func(sec float64) float64
	sd   float64
	seed uint64
}

// feed observes the series as the memory signal of c and returns the time of
// its last point.
func (g gen) feed(e *Engine, c phoenix.ComponentID, sig phoenix.Signal) time.Time {
	step := g.step
	if step == 0 {
		step = time.Second
	}
	rng := rand.New(rand.NewPCG(g.seed, 42))
	var at time.Time
	for i := range g.n {
		at = t0.Add(time.Duration(i) * step)
		v := g.f(at.Sub(t0).Seconds()) + g.sd*rng.NormFloat64()
		e.Observe(c, at, map[phoenix.Signal]float64{sig: v})
	}
	return at
}

func line(a, b float64) func(float64) float64 { return func(x float64) float64 { return a + b*x } }

// checkRisk asserts what every Risk must hold.
func checkRisk(t *testing.T, r phoenix.Risk) {
	t.Helper()
	for name, v := range map[string]float64{"probability": r.Probability, "lower": r.Lower, "upper": r.Upper} {
		if math.IsNaN(v) || v < 0 || v > 1 {
			t.Fatalf("%s = %v, want within [0, 1]", name, v)
		}
	}
	if !(r.Lower <= r.Probability && r.Probability <= r.Upper) {
		t.Fatalf("interval [%v, %v] does not contain the probability %v", r.Lower, r.Upper, r.Probability)
	}
	if r.LeadTime < 0 || r.LeadTime > r.Horizon {
		t.Fatalf("lead time %v outside [0, %v]", r.LeadTime, r.Horizon)
	}
	for i, s := range r.Signals {
		for _, v := range []float64{s.Probability, s.Value, s.Limit, s.Forecast, s.ForecastLow, s.ForecastHigh} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("signal %s has a non-finite field: %+v", s.Signal, s)
			}
		}
		if s.Reason == "" {
			t.Fatalf("signal %s has no reason", s.Signal)
		}
		if s.ForecastLow > s.Forecast || s.Forecast > s.ForecastHigh {
			t.Fatalf("signal %s forecast %v outside its interval [%v, %v]", s.Signal, s.Forecast, s.ForecastLow, s.ForecastHigh)
		}
		if i > 0 && s.Probability > r.Signals[i-1].Probability {
			t.Fatalf("signals not sorted by probability: %+v", r.Signals)
		}
	}
}

func TestRiskOverSyntheticSeries(t *testing.T) {
	const MB = 1e6
	cases := []struct {
		name       string
		g          gen
		limit      float64
		pMin, pMax float64
		upperMax   float64 // 0: not checked
		minWidth   float64 // Upper-Lower at least this
		reason     string
	}{
		{"flat far from limit", gen{n: 60, f: line(100*MB, 0), sd: 1 * MB, seed: 1}, 150 * MB, 0, 0.001, 0.001, 0, "150 MB not reached within 30s (p=<0.1%)"},
		{"falling far from limit", gen{n: 60, f: line(100*MB, -0.5*MB), sd: 1 * MB, seed: 2}, 150 * MB, 0, 0.001, 0.001, 0, "falling 493 kB/s"},
		{"slow rise far from limit", gen{n: 60, f: line(100*MB, 0.1*MB), sd: 1 * MB, seed: 3}, 150 * MB, 0, 0.001, 0.01, 0, "rising 97.8 kB/s"},
		{"steady climb, 5 points", gen{n: 5, f: line(100*MB, 2*MB), sd: 0.2 * MB, seed: 4}, 150 * MB, 0.95, 1, 0, 0, "reaches 150 MB in 2"},
		{"steady climb, 8 points", gen{n: 8, f: line(100*MB, 2*MB), sd: 0.2 * MB, seed: 5}, 150 * MB, 0.99, 1, 0, 0, "reaches 150 MB in 1"},
		{"noisy flat near limit, full window", gen{n: 60, f: line(100, 0), sd: 10, seed: 6}, 125, 0, 0.3, 0.9, 0.0001, "not reached"},
		{"noisy flat near limit, 5 points", gen{n: 5, f: line(100, 0), sd: 10, seed: 7}, 125, 0, 1, 0, 0.3, ""},
		{"exact line, zero residual", gen{n: 10, f: line(100, 2)}, 150, 1, 1, 0, 0, "rising 2.0 B/s, reaches 150 B in 16.0 s"},
		{"exact constant, zero variance", gen{n: 10, f: line(100, 0)}, 150, 0, 0, 0, 0, "100 B steady, 150 B not reached within 30s (p=0%)"},
		{"too few points", gen{n: 4, f: line(100, 2)}, 150, 0, 0, 0, 0, "4 points in the last 1m0s, a forecast needs 5"},
		{"already over the limit", gen{n: 3, f: line(160, 0)}, 150, 1, 1, 0, 0, "memory 160 B is at or over its limit 150 B"},
		{"equal timestamps", gen{n: 10, step: -1, f: line(100, 0), sd: 5, seed: 9}, 150, 0, 0, 0, 0, "no forecast"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(Config{})
			e.SetLimits("orders", Limits{phoenix.SignalMemory: tc.limit})
			g := tc.g
			if g.step < 0 { // all points at one time
				g.step = time.Nanosecond
				g.n = 1
				for range tc.g.n {
					g.feed(e, "orders", phoenix.SignalMemory)
				}
			}
			last := g.feed(e, "orders", phoenix.SignalMemory)
			r := e.Risk("orders", last)
			checkRisk(t, r)
			if r.Probability < tc.pMin || r.Probability > tc.pMax {
				t.Errorf("probability = %.4f, want within [%v, %v]; %v", r.Probability, tc.pMin, tc.pMax, r.Signals)
			}
			if tc.upperMax > 0 && r.Upper > tc.upperMax {
				t.Errorf("upper = %.4f, want at most %v (no false certainty)", r.Upper, tc.upperMax)
			}
			if r.Upper-r.Lower < tc.minWidth {
				t.Errorf("interval [%.4f, %.4f] narrower than %v", r.Lower, r.Upper, tc.minWidth)
			}
			if len(r.Signals) != 1 || !strings.Contains(r.Signals[0].Reason, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", r.Signals[0].Reason, tc.reason)
			}
		})
	}
}

// A crossing at H/4 is at least as probable as one at H/2, than one at H,
// than one at 2H and 4H, with the same noise; H/2 is near certain, 2H near
// impossible.
func TestHorizonMatters(t *testing.T) {
	const h = 30.0
	prev := 1.0
	for _, crossAt := range []float64{h / 4, h / 2, h, 2 * h, 4 * h} {
		e := NewEngine(Config{Horizon: h * time.Second})
		e.SetLimits("orders", Limits{phoenix.SignalLatency: 1})
		// 30 points from 0.4 s, rising to reach 1 s crossAt after the last.
		slope := 0.6 / (29 + crossAt)
		last := gen{n: 30, f: line(0.4, slope), sd: 0.03, seed: 11}.feed(e, "orders", phoenix.SignalLatency)
		r := e.Risk("orders", last)
		checkRisk(t, r)
		t.Logf("crossing in %5.1fs: p=%.4f [%.4f, %.4f] lead %v", crossAt, r.Probability, r.Lower, r.Upper, r.LeadTime)
		if r.Probability > prev {
			t.Errorf("crossing in %vs: probability %.4f above the earlier crossing's %.4f", crossAt, r.Probability, prev)
		}
		switch {
		case crossAt <= h/2 && r.Probability < 0.99:
			t.Errorf("crossing in %vs (within H/2): probability %.4f, want near 1", crossAt, r.Probability)
		case crossAt >= 2*h && r.Probability > 0.05:
			t.Errorf("crossing in %vs (beyond 2H): probability %.4f, want near 0", crossAt, r.Probability)
		}
		if crossAt < h && math.Abs(r.LeadTime.Seconds()-crossAt) > 0.15*crossAt {
			t.Errorf("lead time %v, want about %vs", r.LeadTime, crossAt)
		}
		if crossAt > h && r.LeadTime != 0 {
			t.Errorf("lead time %v for a crossing beyond the horizon, want 0", r.LeadTime)
		}
		prev = r.Probability
	}
}

// The interval contains the probability on random series of every shape,
// and is not degenerate when the data are noisy.
func TestIntervalContainsProbability(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	nondegenerate := 0
	for i := range 300 {
		g := gen{
			n:    3 + rng.IntN(80),
			step: time.Duration(200+rng.IntN(2000)) * time.Millisecond,
			f:    line(100, rng.NormFloat64()*2),
			sd:   rng.ExpFloat64() * 5,
			seed: uint64(i),
		}
		e := NewEngine(Config{MinPoints: 3})
		e.SetLimits("c", Limits{phoenix.SignalCPU: 100 + rng.ExpFloat64()*50})
		last := g.feed(e, "c", phoenix.SignalCPU)
		r := e.Risk("c", last.Add(time.Duration(rng.IntN(3000))*time.Millisecond))
		checkRisk(t, r)
		if r.Upper-r.Lower > 0.01 {
			nondegenerate++
		}
	}
	if nondegenerate < 30 {
		t.Errorf("only %d of 300 noisy series have an interval wider than 0.01", nondegenerate)
	}
}

// Pure noise must not look certain. With few points the slope is poorly
// known and the forecast wide, so some noise series get a middling
// probability; they must rarely get a confident one, and the full window
// must give a small one. Rates measured over 400 seeded series per row.
func TestNoisyFlatIsNotCertain(t *testing.T) {
	cases := []struct {
		n          int
		limitSigma float64 // limit this many noise deviations above the level
		maxMeanP   float64
		maxOver90  float64 // share of series with P > 0.9
	}{
		{5, 3, 0.45, 0.10},
		{15, 3, 0.25, 0.03},
		{60, 3, 0.02, 0.01},
		{60, 5, 0.001, 0},
	}
	for _, tc := range cases {
		var sum float64
		over := 0
		const runs = 400
		for seed := range runs {
			e := NewEngine(Config{})
			e.SetLimits("c", Limits{phoenix.SignalLatency: 0.2 + tc.limitSigma*0.02})
			last := gen{n: tc.n, f: line(0.2, 0), sd: 0.02, seed: uint64(1000 + seed)}.feed(e, "c", phoenix.SignalLatency)
			r := e.Risk("c", last)
			checkRisk(t, r)
			sum += r.Probability
			if r.Probability > 0.9 {
				over++
			}
		}
		mean, share := sum/runs, float64(over)/runs
		t.Logf("n=%d, limit at %vσ: mean P %.3f, P>0.9 in %.1f%%", tc.n, tc.limitSigma, mean, 100*share)
		if mean > tc.maxMeanP || share > tc.maxOver90 {
			t.Errorf("n=%d, limit at %vσ: mean P %.3f (max %v), P>0.9 in %.3f (max %v)", tc.n, tc.limitSigma, mean, tc.maxMeanP, share, tc.maxOver90)
		}
	}
}

func TestCombinedSignals(t *testing.T) {
	e := NewEngine(Config{})
	e.SetLimits("orders", Limits{phoenix.SignalMemory: 150, phoenix.SignalLatency: 0.5, phoenix.SignalErrors: 0.05})
	rng := rand.New(rand.NewPCG(3, 3))
	var last time.Time
	for i := range 20 {
		last = t0.Add(time.Duration(i) * time.Second)
		e.Observe("orders", last, map[phoenix.Signal]float64{
			phoenix.SignalMemory:  100 + 2*float64(i) + rng.NormFloat64(), // crosses in about 6 s
			phoenix.SignalLatency: 0.2 + 0.01*float64(i) + 0.02*rng.NormFloat64(),
			phoenix.SignalErrors:  0.01 + 0.002*rng.NormFloat64(),
			phoenix.SignalRate:    100, // no limit: observed, not in the risk
		})
	}
	r := e.Risk("orders", last)
	checkRisk(t, r)
	if len(r.Signals) != 3 || r.Signals[0].Signal != phoenix.SignalMemory {
		t.Fatalf("signals = %+v, want memory first of three", r.Signals)
	}
	pNone := 1.0
	for _, s := range r.Signals {
		pNone *= 1 - s.Probability
	}
	if want := 1 - pNone; math.Abs(r.Probability-want) > 1e-12 {
		t.Errorf("probability = %v, want 1 - Π(1-p_i) = %v", r.Probability, want)
	}
	if r.LeadTime != r.Signals[0].CrossIn || r.LeadTime < 4*time.Second || r.LeadTime > 8*time.Second {
		t.Errorf("lead time = %v (memory crosses in %v), want about 6s", r.LeadTime, r.Signals[0].CrossIn)
	}
}

func TestReason(t *testing.T) {
	// An exact line: 96.2 MB at the last point, rising 5.1 MB/s.
	e := NewEngine(Config{})
	e.SetLimits("orders", Limits{phoenix.SignalMemory: 150e6})
	last := gen{n: 10, f: line(96.2e6-9*5.1e6, 5.1e6)}.feed(e, "orders", phoenix.SignalMemory)
	r := e.Risk("orders", last)
	const want = "memory 96.2 MB rising 5.1 MB/s, reaches 150 MB in 10.5 s"
	if got := r.Signals[0].Reason; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if d := r.LeadTime.Seconds() - 53.8/5.1; math.Abs(d) > 1e-3 {
		t.Errorf("lead time = %v, want 10.549s", r.LeadTime)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		sig  phoenix.Signal
		v    float64
		want string
	}{
		{phoenix.SignalMemory, 96.2e6, "96.2 MB"},
		{phoenix.SignalDisk, 1.5e9, "1.5 GB"},
		{phoenix.SignalDisk, 512, "512 B"},
		{phoenix.SignalCPU, 1.25, "1.2 cores"},
		{phoenix.SignalLatency, 0.42, "420 ms"},
		{phoenix.SignalLatency, 2.5, "2.5 s"},
		{phoenix.SignalErrors, 0.05, "5.0%"},
		{phoenix.SignalRate, 120, "120 req/s"},
		{"custom", 0.005, "0.005"},
	} {
		if got := formatValue(tc.sig, tc.v); got != tc.want {
			t.Errorf("formatValue(%s, %v) = %q, want %q", tc.sig, tc.v, got, tc.want)
		}
	}
}

func TestResetForgetsSeriesKeepsLimits(t *testing.T) {
	e := NewEngine(Config{})
	e.SetLimits("orders", Limits{phoenix.SignalMemory: 150})
	last := gen{n: 10, f: line(100, 5), sd: 0.5, seed: 1}.feed(e, "orders", phoenix.SignalMemory)
	if r := e.Risk("orders", last); r.Probability < 0.99 {
		t.Fatalf("before Reset: probability %v, want near 1", r.Probability)
	}
	e.Reset("orders")
	r := e.Risk("orders", last)
	checkRisk(t, r)
	if r.Probability != 0 || len(r.Signals) != 1 || !strings.Contains(r.Signals[0].Reason, "no data yet") {
		t.Errorf("after Reset: %+v, want probability 0 with 'no data yet'", r)
	}
	// The replacement instance is flat: its own history, the same limit.
	for i := range 10 {
		e.Observe("orders", last.Add(time.Duration(i+1)*time.Second), map[phoenix.Signal]float64{phoenix.SignalMemory: 60})
	}
	if r := e.Risk("orders", last.Add(10*time.Second)); r.Probability != 0 || len(r.Signals) != 1 {
		t.Errorf("new instance: %+v, want probability 0 under the kept limit", r)
	}
}

func TestRiskEdgeCases(t *testing.T) {
	e := NewEngine(Config{})
	if r := e.Risk("unknown", t0); r.Probability != 0 || r.Signals != nil || r.Component != "unknown" || r.Horizon != DefaultHorizon {
		t.Errorf("unknown component: %+v", r)
	}
	// Limits but observations only of other signals; non-finite limits ignored.
	e.SetLimits("orders", Limits{phoenix.SignalMemory: 150, phoenix.SignalCPU: math.NaN()})
	e.Observe("orders", t0, map[phoenix.Signal]float64{phoenix.SignalRate: 1})
	r := e.Risk("orders", t0)
	checkRisk(t, r)
	if len(r.Signals) != 1 || r.Signals[0].Signal != phoenix.SignalMemory || r.Probability != 0 {
		t.Errorf("limit without data: %+v", r)
	}
	// Stale data: the last point is older than the window.
	last := gen{n: 10, f: line(100, 5), sd: 0.5, seed: 1}.feed(e, "orders", phoenix.SignalMemory)
	r = e.Risk("orders", last.Add(DefaultWindow+time.Second))
	checkRisk(t, r)
	if r.Probability != 0 || !strings.Contains(r.Signals[0].Reason, "no data for 1m1s") {
		t.Errorf("stale series: %+v", r)
	}
	// Non-finite and out-of-order values are ignored.
	e.Observe("orders", last.Add(time.Second), map[phoenix.Signal]float64{phoenix.SignalMemory: math.Inf(1)})
	e.Observe("orders", last.Add(-time.Hour), map[phoenix.Signal]float64{phoenix.SignalMemory: 1e9})
	r = e.Risk("orders", last)
	checkRisk(t, r)
	if r.Signals[0].Value >= 150 || r.Probability > 0.999 && r.Signals[0].Reason == "" {
		t.Errorf("bad points were used: %+v", r.Signals[0])
	}
	// Extreme magnitudes stay finite.
	e.SetLimits("huge", Limits{phoenix.SignalDisk: math.MaxFloat64})
	gen{n: 10, f: line(1e307, 1e306), sd: 1e306, seed: 2}.feed(e, "huge", phoenix.SignalDisk)
	checkRisk(t, e.Risk("huge", t0.Add(9*time.Second)))
}

// Observe and Risk from several goroutines; run with -race.
func TestEngineConcurrent(t *testing.T) {
	e := NewEngine(Config{})
	var wg sync.WaitGroup
	for w := range 4 {
		c := phoenix.ComponentID([]string{"a", "b", "c", "d"}[w])
		e.SetLimits(c, Limits{phoenix.SignalMemory: 150})
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 200 {
				e.Observe(c, t0.Add(time.Duration(i)*time.Second), map[phoenix.Signal]float64{phoenix.SignalMemory: float64(i)})
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 200 {
				r := e.Risk(c, t0.Add(time.Duration(i)*time.Second))
				if r.Probability < 0 || r.Probability > 1 {
					t.Errorf("probability %v", r.Probability)
				}
				if i%50 == 0 {
					e.Reset(c)
				}
			}
		}()
	}
	wg.Wait()
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Horizon: time.Minute, Window: 2 * time.Minute, MinPoints: 10, Confidence: 0.95}, ""},
		{Config{Horizon: -1}, "predict horizon -1ns: must be positive"},
		{Config{Window: -time.Second}, "predict window -1s: must be positive"},
		{Config{MinPoints: 2}, "predict min points 2: the linear trend needs at least 3"},
		{Config{Confidence: 1}, "predict confidence 1: must be between 0 and 1"},
		{Config{Confidence: math.NaN()}, "predict confidence NaN"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestOneSampleOverTheLimit: a latency that spikes past its limit for one
// sample (a busy host for a moment) is forecast like any other value, not
// taken for a certain failure, which would switch traffic pre-emptively;
// a second sample over the limit is.
func TestOneSampleOverTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tail    []float64 // the newest samples, after 30 s at 0.2 s
		certain bool
	}{
		{"one spike", []float64{2.5}, false},
		{"a spike, then back", []float64{2.5, 0.2}, false},
		{"two in a row", []float64{2.5, 2.6}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(Config{})
			e.SetLimits("orders", Limits{phoenix.SignalLatency: 2})
			at := t0
			rng := rand.New(rand.NewPCG(11, 42))
			for i := range 30 {
				at = t0.Add(time.Duration(i) * time.Second)
				e.Observe("orders", at, map[phoenix.Signal]float64{phoenix.SignalLatency: 0.2 + 0.01*rng.NormFloat64()})
			}
			for _, v := range tc.tail {
				at = at.Add(time.Second)
				e.Observe("orders", at, map[phoenix.Signal]float64{phoenix.SignalLatency: v})
			}
			r := e.Risk("orders", at)
			checkRisk(t, r)
			certain := r.Lower == 1 && strings.Contains(r.Signals[0].Reason, "at or over its limit")
			if certain != tc.certain {
				t.Errorf("P = %.3f [%.3f, %.3f] (%s); certain %v, want %v", r.Probability, r.Lower, r.Upper, r.Signals[0].Reason, certain, tc.certain)
			}
		})
	}
}
