package predict

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

// FuzzEngine reads arbitrary bytes as a stream of observations (a signed
// time step in milliseconds and a float64 value, 10 bytes each) against a
// limit, and checks that the Risk is always well formed and encodes as JSON:
// no NaN, no infinity, bounds around the probability, whatever the data
// (equal timestamps, steps back in time, huge or tiny values).
func FuzzEngine(f *testing.F) {
	seed := func(limit float64, pts ...[2]float64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, math.Float64bits(limit))
		for _, p := range pts {
			b = binary.LittleEndian.AppendUint16(b, uint16(int16(p[0])))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p[1]))
		}
		return b
	}
	f.Add(seed(150, [2]float64{1000, 100}, [2]float64{1000, 102}, [2]float64{1000, 104}, [2]float64{1000, 106}, [2]float64{1000, 108}))
	f.Add(seed(150, [2]float64{0, 100}, [2]float64{0, 101}, [2]float64{0, 99}, [2]float64{0, 100}, [2]float64{0, 100}))
	f.Add(seed(1e308, [2]float64{1, 1e308}, [2]float64{1, -1e308}, [2]float64{1, 1e308}, [2]float64{1, 5}, [2]float64{1, 0}))
	f.Add(seed(math.NaN(), [2]float64{-500, math.Inf(1)}, [2]float64{30000, 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		limit := math.Float64frombits(binary.LittleEndian.Uint64(data))
		e := NewEngine(Config{MinPoints: 3})
		e.SetLimits("c", Limits{phoenix.SignalMemory: limit, phoenix.SignalCPU: 1})
		at := t0
		for b := data[8:]; len(b) >= 10; b = b[10:] {
			at = at.Add(time.Duration(int16(binary.LittleEndian.Uint16(b))) * time.Millisecond)
			v := math.Float64frombits(binary.LittleEndian.Uint64(b[2:]))
			e.Observe("c", at, map[phoenix.Signal]float64{phoenix.SignalMemory: v, phoenix.SignalCPU: v / 1e3})
		}
		for _, now := range []time.Time{at, at.Add(-time.Second), at.Add(10 * time.Second)} {
			r := e.Risk("c", now)
			checkRisk(t, r)
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("risk does not encode: %v", err)
			}
		}
	})
}
