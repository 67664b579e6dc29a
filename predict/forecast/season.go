package forecast

import (
	"math"

	"gonum.org/v1/gonum/dsp/fourier"
)

// MinSeasonACF is the autocorrelation a lag needs to count as a season.
const MinSeasonACF = 0.3

// DetectPeriod finds the season of xs: the lag in [2, maxLag] (maxLag <= 0
// means len(xs)/3, so that at least three seasons are seen) whose
// autocorrelation, after removing a least-squares line, is a local maximum,
// at least MinSeasonACF, and the largest such. It returns 0 for none. The
// autocorrelation is computed by FFT (Wiener-Khinchin), O(n log n).
func DetectPeriod(xs []float64, maxLag int) int {
	n := len(xs)
	if maxLag <= 0 || maxLag > n/3 {
		maxLag = n / 3
	}
	if maxLag < 2 {
		return 0
	}
	acf := autocorrelation(detrend(xs))
	if acf == nil {
		return 0
	}
	best, bestR := 0, MinSeasonACF
	for lag := 2; lag <= maxLag && lag+1 < len(acf); lag++ {
		r := acf[lag]
		if r > bestR && r >= acf[lag-1] && r >= acf[lag+1] {
			best, bestR = lag, r
		}
	}
	return best
}

func detrend(xs []float64) []float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i, y := range xs {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	den := n*sxx - sx*sx
	slope := 0.0
	if den != 0 {
		slope = (n*sxy - sx*sy) / den
	}
	icpt := (sy - slope*sx) / n
	out := make([]float64, len(xs))
	for i, y := range xs {
		out[i] = y - icpt - slope*float64(i)
	}
	return out
}

// autocorrelation returns r[0..n-1] of xs (mean already near 0), nil for a
// constant series.
func autocorrelation(xs []float64) []float64 {
	n := len(xs)
	size := 1
	for size < 2*n {
		size <<= 1
	}
	var mean float64
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	buf := make([]float64, size)
	for i, x := range xs {
		buf[i] = x - mean
	}
	fft := fourier.NewFFT(size)
	coeff := fft.Coefficients(nil, buf)
	for i, c := range coeff {
		coeff[i] = complex(real(c)*real(c)+imag(c)*imag(c), 0)
	}
	pow := fft.Sequence(nil, coeff)
	if !(pow[0] > 0) || math.IsNaN(pow[0]) {
		return nil
	}
	r := make([]float64, n)
	for i := range r {
		r[i] = pow[i] / pow[0]
	}
	return r
}
