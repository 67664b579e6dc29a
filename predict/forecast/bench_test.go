package forecast

import "testing"

// The forecasters' cost per point on a seasonal series, refits and
// trainings included, with the forecasts of 12 leads read after each point
// as "phoenix eval forecast --horizon 12" does.
func BenchmarkHoltWinters(b *testing.B) { benchModel(b, NewHoltWinters(HoltWintersConfig{})) }

func BenchmarkLSTM(b *testing.B) { benchModel(b, NewLSTM(LSTMConfig{})) }

// BenchmarkSeasonalNaive is the baseline the others' cost is compared with.
func BenchmarkSeasonalNaive(b *testing.B) { benchModel(b, &SeasonalNaive{Period: 288}) }

func benchModel(b *testing.B, m Model) {
	xs := seasonal(1<<14, 288, 2, 1)
	for _, v := range xs[:2048] {
		m.Update(v)
	}
	i := 0
	for b.Loop() {
		m.Update(xs[i%len(xs)])
		for h := 1; h <= 12; h++ {
			m.Predict(h)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
