package anomaly

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// FuzzNovelty feeds arbitrary float64 streams (NaN, infinities, huge and
// tiny values, ties) and checks every score is a number in [0, 1].
func FuzzNovelty(f *testing.F) {
	seed := func(vs ...float64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(seed(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), uint8(1), uint8(2))
	f.Add(seed(0, 0, 0, math.NaN(), math.Inf(1), -math.MaxFloat64, math.MaxFloat64, 1e-300), uint8(0), uint8(0))
	f.Add(seed(5, 5, 5, 5, 5, 5, 6), uint8(3), uint8(1))
	// Long enough for the day-over-day feature to score (a season of 2 to 5
	// points, then Smooth changes and Warmup moving means), with the
	// extremes in it.
	long := make([]float64, 48)
	for i := range long {
		long[i] = float64(i % 7)
	}
	long[40], long[44] = math.MaxFloat64, -math.MaxFloat64
	f.Add(seed(long...), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, smooth, hold uint8) {
		// A season of 2 to 5 one-second points, so the day-over-day feature
		// is scored too.
		season := time.Duration(int(smooth/8)%4+2) * time.Second
		d := NewNovelty(NoveltyConfig{Smooth: int(smooth%8) + 1, Hold: int(hold%5) - 1, Warmup: 2, History: 16, Season: season, Ramp: int(hold/8)%3*4 - 1})
		for i := 0; len(data) >= 8; i++ {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			s := d.Score(t0.Add(time.Duration(i)*time.Second), v)
			if math.IsNaN(s) || s < 0 || s > 1 {
				t.Fatalf("value %v scored %v", v, s)
			}
		}
	})
}
