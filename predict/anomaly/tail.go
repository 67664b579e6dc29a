package anomaly

import "math"

// upperTail estimates P(X >= x) for a nonconformity statistic X from a
// window of its past values: by rank where the window has data, and past
// its top quantile by a generalised Pareto distribution fitted to the
// excesses (peaks over threshold, Pickands-Balkema-de Haan), so that a value
// beyond everything seen still gets a finite, graded probability instead of
// the floor 1/(n+1) of a pure rank. That is what lets a fixed threshold mean
// a false-alarm rate (Siffer et al., "Anomaly detection in streams with
// extreme value theory", KDD 2017). The fit is by the method of moments:
// closed form, and stable on the few dozen excesses a window has.
type upperTail struct {
	w       *sortedWindow
	q       float64 // share of the window above the POT threshold
	refit   int     // points between fits
	since   int
	u       float64 // POT threshold
	xi, sig float64
	ok      bool
}

func newUpperTail(n int, q float64, refit int) *upperTail {
	return &upperTail{w: newSortedWindow(n), q: q, refit: refit}
}

// P is the estimated probability of a value at least x; 1 when there is no
// history.
func (t *upperTail) P(x float64) float64 {
	n := t.w.Len()
	if n == 0 {
		return 1
	}
	rank := float64(t.w.Above(x)+1) / float64(n+1)
	if !t.ok || x <= t.w.sorted[n-1] {
		return rank
	}
	z := (x - t.u) / t.sig
	var s float64
	if math.Abs(t.xi) < 1e-6 {
		s = math.Exp(-z)
	} else {
		b := 1 + t.xi*z
		if b <= 0 {
			return math.SmallestNonzeroFloat64 // beyond the finite end point
		}
		s = math.Pow(b, -1/t.xi)
	}
	return min(max(t.q*s, math.SmallestNonzeroFloat64), rank)
}

// Add records x in the history and refits the tail every refit points.
func (t *upperTail) Add(x float64) {
	t.w.Add(x)
	t.since++
	if t.since >= t.refit || !t.ok {
		t.since = 0
		t.fit()
	}
}

func (t *upperTail) fit() {
	n := t.w.Len()
	k := int(t.q * float64(n))
	t.ok = false
	if k < 8 {
		return
	}
	t.u = t.w.Quantile(1 - t.q)
	var m1, m2 float64
	cnt := 0
	for _, v := range t.w.Top(k) {
		e := v - t.u
		if e <= 0 {
			continue
		}
		m1 += e
		m2 += e * e
		cnt++
	}
	if cnt < 4 {
		return
	}
	m1 /= float64(cnt)
	v := m2/float64(cnt) - m1*m1
	if !(v > 0) || !(m1 > 0) {
		return
	}
	r := m1 * m1 / v
	t.xi = 0.5 * (1 - r)
	t.sig = 0.5 * m1 * (r + 1)
	t.ok = t.sig > 0 && !math.IsNaN(t.xi)
}
