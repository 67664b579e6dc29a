package scale

import (
	"math"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// fixedForecast is a forecaster whose quantiles a test sets.
type fixedForecast struct {
	end, peak float64
	ok        bool
	seen      int
}

func (f *fixedForecast) Observe(time.Time, float64) { f.seen++ }
func (f *fixedForecast) Quantiles(float64) (float64, float64, bool) {
	return f.end, f.peak, f.ok
}

var demandMetric100 = Metric{Name: "requests", Source: SourceExternal, Target: AverageValue, Value: 80}

func newTestPredictive(t *testing.T, f PeakForecaster) *Predictive {
	t.Helper()
	p, err := NewPredictive(PredictiveConfig{HPA: DefaultHPA(100, demandMetric100), Demand: "requests", Capacity: 100, Forecaster: f, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// drive feeds p and an HPA the same measurements (one a minute, decisions
// every 15 s), each carrying its own decisions out, and returns both counts
// after each measurement's decisions.
func drive(p *Predictive, from time.Time, demand []float64, start int) (pred, hpa []int) {
	h := &HPA{Spec: p.cfg.HPA}
	np, nh := start, start
	for i, d := range demand {
		at := from.Add(time.Duration(i) * time.Minute)
		p.Observe(at, d)
		for tick := range 4 {
			now := at.Add(time.Duration(tick) * 15 * time.Second)
			ext := map[string]float64{"requests": d}
			np = p.Decide(Snapshot{Now: now, Replicas: np, StatusReplicas: np, External: ext}).Replicas
			nh = h.Decide(Snapshot{Now: now, Replicas: nh, StatusReplicas: nh, External: ext}).Replicas
		}
		pred, hpa = append(pred, np), append(hpa, nh)
	}
	return pred, hpa
}

// TestPredictiveUnsure checks that Predictive is the HPA while its
// forecaster cannot vouch for its quantiles.
func TestPredictiveUnsure(t *testing.T) {
	f := &fixedForecast{end: 5000, peak: 5000, ok: false}
	p := newTestPredictive(t, f)
	demand := []float64{400, 400, 900, 1500, 1500, 300, 300, 300, 300, 300, 300, 2000, 50, 50, 50, 50, 50, 50, 50, 50}
	pred, hpa := drive(p, t0, demand, 5)
	for i := range pred {
		if pred[i] != hpa[i] {
			t.Fatalf("after measurement %d: predictive %d, HPA %d; want the same while unsure (%v vs %v)", i, pred[i], hpa[i], pred, hpa)
		}
	}
	if f.seen != len(demand) || p.Price() != 0 {
		t.Fatalf("forecaster saw %d measurements, level %v; want %d and 0", f.seen, p.Price(), len(demand))
	}
}

// TestPredictiveAhead checks that once sure, Predictive provisions for the
// forecast ahead of a rise the HPA has not seen yet, and never below what
// the measured demand needs at full capacity.
func TestPredictiveAhead(t *testing.T) {
	f := &fixedForecast{end: 300, peak: 300, ok: true}
	p := newTestPredictive(t, f)
	flat := make([]float64, 30)
	for i := range flat {
		flat[i] = 300
	}
	pred, hpa := drive(p, t0, flat, 4)
	if p.Price() == 0 {
		t.Fatal("still unsure after 30 measurements with a sure forecaster")
	}
	// The HPA holds 300/80 -> 4 replicas; the forecast asks 3.
	if got, want := pred[len(pred)-1], 3; got != want || hpa[len(hpa)-1] != 4 {
		t.Fatalf("steady: predictive %d, HPA %d; want %d and 4", got, hpa[len(hpa)-1], want)
	}
	// A rise is forecast before it is measured.
	f.end, f.peak = 900, 900
	pred, hpa = drive(p, t0.Add(time.Hour), []float64{300}, 3)
	if pred[0] != 9 || hpa[0] != 4 {
		t.Fatalf("forecast rise: predictive %d, HPA %d; want 9 ahead of the HPA's 4", pred[0], hpa[0])
	}
	// The forecast says little, the demand measured now says more: the
	// floor is ceil(1250/100).
	f.end, f.peak = 100, 100
	pred, _ = drive(p, t0.Add(2*time.Hour), []float64{1250}, 9)
	if pred[0] != 13 {
		t.Fatalf("floor: predictive %d, want 13", pred[0])
	}
}

func TestForecastReplicas(t *testing.T) {
	p := newTestPredictive(t, &fixedForecast{})
	tests := []struct {
		name     string
		up, hold int
		peak     float64
		current  int
		want     int
	}{
		{"up to the end's count", 8, 9, 900, 3, 8},
		{"hold for the peak", 5, 9, 900, 6, 6},
		{"down to the peak", 3, 5, 450, 10, 5},
		// 19 replicas would cover 1850, but it is within the 10% scale-down
		// tolerance of the 20 running.
		{"hysteresis keeps", 3, 19, 1850, 20, 20},
		{"past the tolerance", 3, 18, 1790, 20, 18},
		{"no change", 3, 4, 350, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.forecastReplicas(tt.up, tt.hold, tt.peak, tt.current); got != tt.want {
				t.Fatalf("forecastReplicas(%d, %d, %v, %d) = %d, want %d", tt.up, tt.hold, tt.peak, tt.current, got, tt.want)
			}
		})
	}
}

func TestNewPredictiveRejects(t *testing.T) {
	f := &fixedForecast{}
	base := func() PredictiveConfig {
		return PredictiveConfig{HPA: DefaultHPA(10, demandMetric100), Demand: "requests", Capacity: 100, Forecaster: f}
	}
	tests := []struct {
		name string
		edit func(*PredictiveConfig)
		want string
	}{
		{"no demand metric", func(c *PredictiveConfig) { c.Demand = "cpu" }, "not among"},
		{"demand per pod", func(c *PredictiveConfig) {
			c.HPA.Metrics = []Metric{{Name: "requests", Source: SourcePods, Target: AverageValue, Value: 80}}
		}, "External"},
		{"target above capacity", func(c *PredictiveConfig) { c.Capacity = 50 }, "above the capacity"},
		{"no forecaster", func(c *PredictiveConfig) { c.Forecaster = nil }, "forecaster"},
		{"bad risk", func(c *PredictiveConfig) { c.Risk = 0.7 }, "risk"},
		{"bad capacity", func(c *PredictiveConfig) { c.Capacity = -1 }, "capacity"},
		{"bad hpa", func(c *PredictiveConfig) { c.HPA.MaxReplicas = 0 }, "max_replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(&c)
			if _, err := NewPredictive(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewPredictive = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// TestBudgetAverages checks the time-weighted averages the budget compares.
func TestBudgetAverages(t *testing.T) {
	b := newBudget(DefaultHPA(10, demandMetric100), 100, 0.01)
	b.steps = []countStep{
		{at: t0.Add(-time.Minute), ran: 9, shadow: 9, ready: 9}, // in force at the window's start
		{at: t0.Add(15 * time.Second), ran: 2, shadow: 3, ready: 1},
		{at: t0.Add(45 * time.Second), ran: 4, shadow: 3, ready: 4},
	}
	ran, shadow, ready, ok := b.averages(t0, t0.Add(time.Minute))
	// 15 s of 9, 30 s of 2, 15 s of 4 over 60 s.
	if !ok || !near(ran, (15*9+30*2+15*4)/60.0) || !near(shadow, (15*9+30*3+15*3)/60.0) || !near(ready, (15*9+30*1+15*4)/60.0) {
		t.Fatalf("averages = %v %v %v %v", ran, shadow, ready, ok)
	}
	if len(b.steps) != 1 || b.steps[0].ran != 4 {
		t.Fatalf("kept %+v, want only the step in force at the window's end", b.steps)
	}
	if _, _, _, ok := b.averages(t0.Add(time.Minute), t0.Add(time.Minute)); ok {
		t.Fatal("empty window averaged")
	}
}

// normalForecast has normal quantiles: mean + sigma × z(p), at the end and
// at the peak alike.
type normalForecast struct{ mean, sigma float64 }

func (f normalForecast) Observe(time.Time, float64) {}
func (f normalForecast) Quantiles(p float64) (float64, float64, bool) {
	q := f.mean + f.sigma*distuv.UnitNormal.Quantile(p)
	return q, q, true
}

// TestBudgetChoose checks the budget's allocation at a price: a sharp
// forecast is covered to a higher level than a wide one, since each replica
// buys more probability there; no price is worth a replica at the highest,
// every level is worth it at the lowest.
func TestBudgetChoose(t *testing.T) {
	b := newBudget(DefaultHPA(1000, demandMetric100), 1, 0.01)
	tests := []struct {
		name           string
		f              normalForecast
		price          float64
		minLevel, maxL float64
	}{
		{"sharp at a mid price", normalForecast{100, 2}, 0.01, 0.95, 0.99},
		{"wide at the same price", normalForecast{100, 40}, 0.01, 0.1, 0.7},
		{"the highest price", normalForecast{100, 40}, maxPrice, 0.1, 0.1},
		{"the lowest price", normalForecast{100, 40}, minPrice, 0.99, 0.99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := b.choose(tt.f, tt.price)
			if !ok {
				t.Fatal("choose: not ok")
			}
			if c.upLevel < tt.minLevel-1e-9 || c.upLevel > tt.maxL+1e-9 {
				t.Fatalf("level %v (%d replicas), want %v to %v", c.upLevel, c.up, tt.minLevel, tt.maxL)
			}
			if want, _, _ := tt.f.Quantiles(c.upLevel); c.up != ceilInt(want) || c.hold != c.up {
				t.Fatalf("counts up %d, hold %d; want both ceil(%v)", c.up, c.hold, want)
			}
			if top := c.upLevel > 0.99-1e-9; c.atTop != top {
				t.Fatalf("atTop %v at level %v", c.atTop, c.upLevel)
			}
		})
	}
}

// TestBudgetDebt checks that once Predictive has run more replicas in total
// than the shadow, by more than the overdraft, the budget affords the
// forecast no more than the shadow's count, that within it (and once back
// within it) the forecast is not capped, and that the price rises while it
// runs over.
func TestBudgetDebt(t *testing.T) {
	b := newBudget(DefaultHPA(10, demandMetric100), 100, 0.01)
	b.priced, b.charged, b.mean, b.shadowN, b.logPrice = true, minCharged, 5, 5, math.Log(0.01)
	if got := b.cap(); got != math.MaxInt {
		t.Fatalf("cap with no debt = %d, want none", got)
	}
	price := b.logPrice
	// One over the shadow for a minute at a time: a debt of 1
	// replica-interval a minute, up to the overdraft and one beyond it.
	b.steps = []countStep{{at: t0, ran: 6, shadow: 5, ready: 6}}
	for i := 1; i <= overdraft; i++ {
		b.close(t0.Add(time.Duration(i)*time.Minute), time.Minute, 300)
	}
	if got := b.cap(); got != math.MaxInt || !(b.logPrice > price) {
		t.Fatalf("at a debt of %v (the overdraft): cap %d, log price %v (was %v); want none and a rise", b.debt, got, b.logPrice, price)
	}
	b.close(t0.Add(time.Duration(overdraft+1)*time.Minute), time.Minute, 300)
	if got := b.cap(); got != 5 {
		t.Fatalf("at a debt of %v (the overdraft and 1): cap %d, want the shadow's 5", b.debt, got)
	}
	b.steps = []countStep{{at: t0.Add(time.Duration(overdraft+1) * time.Minute), ran: 4, shadow: 5, ready: 4}}
	b.close(t0.Add(time.Duration(overdraft+2)*time.Minute), time.Minute, 100)
	if got := b.cap(); got != math.MaxInt {
		t.Fatalf("cap at a debt of %v, back within the overdraft = %d, want none", b.debt, got)
	}
}
