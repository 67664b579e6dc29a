package predict

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

// BenchmarkEngineObserveRisk is the engine's steady state at the default
// config: one scrape's four limited signals observed into a full 60-point
// window, then the component's Risk, per iteration.
func BenchmarkEngineObserveRisk(b *testing.B) {
	e := NewEngine(Config{})
	e.SetLimits("orders", Limits{phoenix.SignalMemory: 150e6, phoenix.SignalCPU: 2, phoenix.SignalLatency: 0.5, phoenix.SignalErrors: 0.05})
	rng := rand.New(rand.NewPCG(1, 1))
	values := make(map[phoenix.Signal]float64, 4)
	at := t0
	step := func() {
		at = at.Add(time.Second)
		values[phoenix.SignalMemory] = 100e6 + rng.NormFloat64()*1e6
		values[phoenix.SignalCPU] = 0.5 + rng.NormFloat64()*0.05
		values[phoenix.SignalLatency] = 0.1 + rng.NormFloat64()*0.01
		values[phoenix.SignalErrors] = 0.01 + rng.NormFloat64()*0.001
		e.Observe("orders", at, values)
	}
	for range 60 {
		step()
	}
	b.ReportAllocs()
	for b.Loop() {
		step()
		if r := e.Risk("orders", at); len(r.Signals) != 4 {
			b.Fatal("missing signals")
		}
	}
	b.ReportMetric(float64(b.N*len(values))/b.Elapsed().Seconds(), "points/s")
}
