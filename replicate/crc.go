package replicate

import "sync"

// CRC-32C arithmetic that lets one pass over a frame's body serve both the
// frame's own check and the whole file's: the CRC of a concatenation
// follows from the CRCs of its parts and the second part's length (zlib's
// crc32_combine, which Go's hash/crc32 does not offer). Each side of an
// agent transfer then reads every byte of a large data frame (a file sent
// whole) once for CRCs instead of twice.
//
// A CRC here is hash/crc32's, with the Castagnoli polynomial: reflected,
// initial value and final XOR all ones. In that representation a value is
// a polynomial over GF(2) with x^0 in the top bit.

// crcCombineMin is the least body a frame's CRCs are combined for rather
// than computed twice: combining costs up to ~40 ns per set bit of the
// length, a pass over 64 KiB 2-4 µs; over a patch's small data pieces
// it would cost more than it saves.
const crcCombineMin = 64 << 10

// castagnoliReversed is the Castagnoli polynomial, reflected.
const castagnoliReversed = 0x82f63b78

// crcMulMod returns a·b modulo the polynomial. No branch depends on the
// operands: a mispredicted one per bit cost more than the arithmetic.
func crcMulMod(a, b uint32) uint32 {
	var p uint32
	for range 32 {
		p ^= b & -(a >> 31)
		a <<= 1
		b = b>>1 ^ castagnoliReversed&-(b&1)
	}
	return p
}

// crcPowers holds x^(2^k) modulo the polynomial for k < 64.
var crcPowers = sync.OnceValue(func() [64]uint32 {
	var t [64]uint32
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = crcMulMod(p, p)
	}
	return t
})

// crcShift returns crc advanced over n bytes: crc·x^(8n) modulo the
// polynomial. n must be in [0, 2^61).
func crcShift(crc uint32, n int64) uint32 {
	t := crcPowers()
	for k := 3; n != 0; k, n = k+1, n>>1 { // x^(8n) = x^(n·2^3)
		if n&1 != 0 {
			crc = crcMulMod(t[k], crc)
		}
	}
	return crc
}

// crcCombine returns the CRC-32C of a‖b from crcA, crcB and b's length
// (in [0, 2^61)).
func crcCombine(crcA, crcB uint32, lenB int64) uint32 {
	return crcShift(crcA, lenB) ^ crcB
}

// crcSplit returns the CRC-32C of b from those of a‖b and of a, and b's
// length: what crcCombine combined.
func crcSplit(crcAB, crcA uint32, lenB int64) uint32 {
	return crcAB ^ crcShift(crcA, lenB)
}
