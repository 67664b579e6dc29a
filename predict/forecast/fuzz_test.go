package forecast

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzForecasters feeds arbitrary float64 streams to Holt-Winters and the
// LSTM behind conformal intervals: no panic, and whenever a forecast is
// given its interval is ordered around it and nothing is NaN.
func FuzzForecasters(f *testing.F) {
	seed := func(vs ...float64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(seed(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12))
	f.Add(seed(0, math.NaN(), math.Inf(1), -math.MaxFloat64, math.MaxFloat64, 1e-300, 5, 5, 5, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		models := []*Conformal{
			NewConformal(NewHoltWinters(HoltWintersConfig{History: 64, Refit: 16, MinFit: 8}), 3, 32),
			NewConformal(NewLSTM(LSTMConfig{Hidden: 2, Steps: 3, History: 32, Retrain: 16, Epochs: 1}), 3, 32),
		}
		for len(data) >= 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			for _, c := range models {
				c.Update(v)
				for h := 1; h <= 3; h++ {
					mean, lo, hi, ok := c.Predict(h, 0.8)
					if ok && (math.IsNaN(mean) || math.IsNaN(lo) || math.IsNaN(hi) || lo > mean || hi < mean) {
						t.Fatalf("after %v: lead %d forecast %v in [%v, %v]", v, h, mean, lo, hi)
					}
				}
			}
		}
	})
}
