package anomaly

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkNovelty is the streaming detector at its defaults on a noisy
// daily cycle, with a full history: the cost "phoenix eval nab" pays per
// point, in points per second on one core.
func BenchmarkNovelty(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([]float64, 1<<14)
	for i := range xs {
		xs[i] = 50 + 20*math.Sin(2*math.Pi*float64(i)/288) + 3*rng.NormFloat64()
	}
	d := NewNovelty(NoveltyConfig{})
	for i := range DefaultHistory {
		d.Score(t0, xs[i%len(xs)])
	}
	i := 0
	for b.Loop() {
		d.Score(t0.Add(time.Duration(i)*time.Minute), xs[i%len(xs)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}

func BenchmarkIsolationForestScore(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows := make([][]float64, 512)
	for i := range rows {
		rows[i] = []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
	}
	f := FitIsolationForest(rows, 100, 256, rng)
	for b.Loop() {
		f.Score(rows[7])
	}
}
