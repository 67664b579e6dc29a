package replicate

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

func TestCRCCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, tc := range []struct {
		name string
		a, b int
	}{
		{"both empty", 0, 0},
		{"empty first", 0, 17},
		{"empty second", 17, 0},
		{"one byte each", 1, 1},
		{"frame header and body", frameHeader, copyChunk},
		{"odd lengths", 4099, 65_537},
		{"large", 300_000, 700_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := data[:tc.a], data[tc.a:tc.a+tc.b]
			crcA, crcB := crc32.Checksum(a, crcTable), crc32.Checksum(b, crcTable)
			whole := crc32.Checksum(data[:tc.a+tc.b], crcTable)
			if got := crcCombine(crcA, crcB, int64(len(b))); got != whole {
				t.Errorf("crcCombine = %08x, CRC of the whole %08x", got, whole)
			}
			if got := crcSplit(whole, crcA, int64(len(b))); got != crcB {
				t.Errorf("crcSplit = %08x, CRC of the second part %08x", got, crcB)
			}
		})
	}
}

// TestCRCShiftAdds checks shifts far past any buffer: by a then by b is by
// a+b.
func TestCRCShiftAdds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		a, b := r.Int64N(1<<59), r.Int64N(1<<59)
		crc := r.Uint32()
		if x, y := crcShift(crcShift(crc, a), b), crcShift(crc, a+b); x != y {
			t.Fatalf("shift of %08x by %d then %d = %08x, by their sum %08x", crc, a, b, x, y)
		}
	}
}

func BenchmarkCRCShift(b *testing.B) {
	for b.Loop() {
		crcShift(0x12345678, copyChunk)
	}
}

func BenchmarkCRCShiftSmall(b *testing.B) {
	n := int64(0)
	for b.Loop() {
		n = (n + 4099) % 65536
		crcShift(0x12345678, n)
	}
}
