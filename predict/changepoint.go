package predict

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Change-point settings of the linear trend.
const (
	// minSegment is the fewest points a new trend may be fitted on: a line
	// needs three, and a fourth gives its noise a degree of freedom.
	minSegment = 4
	// changeLevel is the significance of each test for a break in the
	// window, Bonferroni-corrected for the number of places tried, since
	// the break is put where it fits best.
	changeLevel = 0.01
)

// fitWindow fits the points of the window with the simplest of three
// models that explains them, each tested against one line by an F test at
// changeLevel:
//
//   - one line through the window (the foundation's model);
//   - a line with a step: one slope, and the level of the points after
//     the step (a dependency failed and latency jumped; memory was freed).
//     The slope comes from within the two segments, so a jump is never
//     read as a trend, and a step seen in its first point is already
//     modelled;
//   - a new line from a break on (a leak started), kept only if it also
//     beats the best step, and fitted on the points after the break (at
//     least minSegment).
//
// Before that, isolated points that no line explains (a burst of held
// requests in a p99) are dropped by dropOutliers.
//
// This is what lets a leak that has just started be forecast from its own
// points instead of being averaged with the flat history before it for a
// whole window, and what keeps a step from being extrapolated as a steep
// trend over the horizon.
func fitWindow(crit critical, pts []point) fit {
	pts = dropOutliers(crit, pts)
	n := len(pts)
	if n < 5 {
		return fitLine(pts)
	}
	s := newSums(pts)
	full := s.lineSSE(0, n)
	stepC, stepSSE := 0, math.Inf(1)
	for c := 2; c < n; c++ {
		if v := s.stepSSE(c, n); v < stepSSE {
			stepC, stepSSE = c, v
		}
	}
	twoC, twoSSE := 0, math.Inf(1)
	for c := 2; c <= n-minSegment; c++ {
		if v := s.lineSSE(0, c) + s.lineSSE(c, n); v < twoSSE {
			twoC, twoSSE = c, v
		}
	}
	stepOK := stepC > 0 && crit.significant(full, stepSSE, 1, n-3, n-2)
	twoOK := twoC > 0 && crit.significant(full, twoSSE, 2, n-4, n-minSegment-1)
	if twoOK && (!stepOK || crit.significant(stepSSE, twoSSE, 1, n-4, 1)) {
		return fitLine(pts[twoC:])
	}
	if stepOK {
		return fitStep(pts, stepC)
	}
	return fitLine(pts)
}

// critical caches the F quantiles of the tests: the window's size, and so
// each test's degrees of freedom, stay put once it is full, and an inverse
// incomplete beta per test per scrape would cost more than the fit.
type critical map[[3]int]float64

// significant reports whether the reduction of the residual sum of squares
// from restricted to general (q more parameters, df residual degrees of
// freedom) is significant at changeLevel/tried.
func (c critical) significant(restricted, general float64, q, df, tried int) bool {
	if df < 1 || !(restricted > general) {
		return false
	}
	if !(general > 0) {
		return true // the general model is exact and the restricted not
	}
	f := ((restricted - general) / float64(q)) / (general / float64(df))
	key := [3]int{q, df, tried}
	crit, ok := c[key]
	if !ok {
		crit = distuv.F{D1: float64(q), D2: float64(df)}.Quantile(1 - changeLevel/float64(max(tried, 1)))
		if len(c) > 256 { // windows whose size keeps changing
			clear(c)
		}
		c[key] = crit
	}
	return f > crit
}

// sums are prefix sums of x, y, x², xy and y², x in seconds relative to the
// newest point, so that any segment's least-squares sums cost O(1).
type sums struct{ x, y, xx, xy, yy []float64 }

func newSums(pts []point) sums {
	n := len(pts)
	s := sums{make([]float64, n+1), make([]float64, n+1), make([]float64, n+1), make([]float64, n+1), make([]float64, n+1)}
	ref := pts[n-1].t
	for i, p := range pts {
		x, y := p.t.Sub(ref).Seconds(), p.v
		s.x[i+1], s.y[i+1] = s.x[i]+x, s.y[i]+y
		s.xx[i+1], s.xy[i+1], s.yy[i+1] = s.xx[i]+x*x, s.xy[i]+x*y, s.yy[i]+y*y
	}
	return s
}

// centred returns Sxx, Sxy and Syy of the points [a, b).
func (s sums) centred(a, b int) (sxx, sxy, syy float64) {
	m := float64(b - a)
	sx, sy := s.x[b]-s.x[a], s.y[b]-s.y[a]
	return s.xx[b] - s.xx[a] - sx*sx/m, s.xy[b] - s.xy[a] - sx*sy/m, s.yy[b] - s.yy[a] - sy*sy/m
}

func (s sums) lineSSE(a, b int) float64 {
	sxx, sxy, syy := s.centred(a, b)
	if !(sxx > 0) {
		return math.Max(syy, 0)
	}
	return math.Max(syy-sxy*sxy/sxx, 0)
}

// stepSSE is the residual sum of squares of one slope with a step at c.
func (s sums) stepSSE(c, n int) float64 {
	x1, y1, z1 := s.centred(0, c)
	x2, y2, z2 := s.centred(c, n)
	sxx, sxy, syy := x1+x2, y1+y2, z1+z2
	if !(sxx > 0) {
		return math.Max(syy, 0)
	}
	return math.Max(syy-sxy*sxy/sxx, 0)
}

// fitStep is the least-squares line with a step at c: the slope pooled
// within the two segments, the level the mean of the points from c on,
// n-3 degrees of freedom.
func fitStep(pts []point, c int) fit {
	n := len(pts)
	s := newSums(pts)
	x1, y1, z1 := s.centred(0, c)
	x2, y2, z2 := s.centred(c, n)
	sxx, sxy, syy := x1+x2, y1+y2, z1+z2
	if !(sxx > 0) {
		return fitLine(pts)
	}
	m := float64(n - c)
	f := fit{n: n, df: n - 3, nLevel: n - c, sxx: sxx}
	f.xbar = (s.x[n] - s.x[c]) / m
	f.level = (s.y[n] - s.y[c]) / m
	f.slope = sxy / sxx
	f.s2 = math.Max(syy-sxy*sxy/sxx, 0) / float64(n-3)
	f.ok = isFinite(f.level) && isFinite(f.slope) && isFinite(f.s2)
	return f
}

// maxOutliers bounds the points dropOutliers removes from one window.
const maxOutliers = 2

// dropOutliers removes, one at a time and at most maxOutliers, the point
// whose removal most reduces the line's residual sum of squares, while that
// reduction is significant (the Bonferroni outlier test on the externally
// studentised residual, Cook and Weisberg 1982: an F(1, n-3) test at
// changeLevel/n). The newest point is never dropped: at the end of the
// window a point unlike the others is the first of a step or a trend, and
// the step model judges it. pts is not modified.
func dropOutliers(crit critical, pts []point) []point {
	for range maxOutliers {
		n := len(pts)
		if n < 6 {
			return pts
		}
		s := newSums(pts)
		full := s.lineSSE(0, n)
		worst, worstSSE := -1, full
		for j := 0; j < n-1; j++ {
			if v := s.lineSSEWithout(j, n); v < worstSSE {
				worst, worstSSE = j, v
			}
		}
		if worst < 0 || !crit.significant(full, worstSSE, 1, n-3, n-1) {
			return pts
		}
		pts = append(pts[:worst:worst], pts[worst+1:]...)
	}
	return pts
}

// lineSSEWithout is the residual sum of squares of the line through all
// n points but j.
func (s sums) lineSSEWithout(j, n int) float64 {
	m := float64(n - 1)
	x, y := s.x[j+1]-s.x[j], s.y[j+1]-s.y[j]
	sx, sy := s.x[n]-x, s.y[n]-y
	sxx := s.xx[n] - x*x - sx*sx/m
	sxy := s.xy[n] - x*y - sx*sy/m
	syy := s.yy[n] - y*y - sy*sy/m
	if !(sxx > 0) {
		return math.Max(syy, 0)
	}
	return math.Max(syy-sxy*sxy/sxx, 0)
}
