package forecast

import (
	"math"
	"slices"
)

// Conformal wraps a Model with prediction intervals from online conformal
// calibration: for each lead h it keeps the absolute errors of the last
// Window h-step forecasts, scored when their outcome arrived, and the
// interval at level L is the forecast ± their ⌈(n+1)L⌉-th smallest. Under
// exchangeable errors that interval holds at least L of the outcomes
// whatever the model (Vovk et al., Algorithmic Learning in a Random World);
// a sliding window of recent errors follows a series whose noise drifts.
type Conformal struct {
	Model  Model
	maxH   int
	window int
	t      int
	// made[i] holds the forecasts made at step t-i for leads 1..maxH.
	made [][]float64
	ok   [][]bool
	errs []*sortedRing
}

// NewConformal calibrates model for leads 1..maxH on the last window
// errors of each lead (window <= 0 means 1000).
func NewConformal(model Model, maxH, window int) *Conformal {
	if window <= 0 {
		window = 1000
	}
	maxH = max(maxH, 1)
	c := &Conformal{Model: model, maxH: maxH, window: window}
	for range maxH {
		c.made = append(c.made, make([]float64, maxH))
		c.ok = append(c.ok, make([]bool, maxH))
		c.errs = append(c.errs, newSortedRing(window))
	}
	return c
}

// Update scores the forecasts whose target v is, feeds v to the model and
// records the model's new forecasts.
func (c *Conformal) Update(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	// The forecasts made h-1 updates ago target v at lead h.
	for h := 1; h <= c.maxH; h++ {
		slot := c.slot(h - 1)
		if c.t >= h && c.ok[slot][h-1] {
			c.errs[h-1].Add(math.Abs(v - c.made[slot][h-1]))
		}
	}
	c.Model.Update(v)
	c.t++
	slot := c.slot(0)
	for h := 1; h <= c.maxH; h++ {
		v, ok := c.Model.Predict(h)
		c.made[slot][h-1], c.ok[slot][h-1] = v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
	}
}

// slot is the ring index of the forecasts made `ago` updates before the
// newest.
func (c *Conformal) slot(ago int) int { return ((c.t-ago)%c.maxH + c.maxH) % c.maxH }

// Predict returns the point forecast h steps ahead (1 <= h <= maxH) and
// its interval at level (0, 1). ok is false while the model cannot
// forecast or fewer than 1/(1-level) errors of that lead are known.
func (c *Conformal) Predict(h int, level float64) (mean, lo, hi float64, ok bool) {
	if h < 1 || h > c.maxH || !(level > 0 && level < 1) {
		return 0, 0, 0, false
	}
	slot := c.slot(0)
	if c.t == 0 || !c.ok[slot][h-1] {
		return 0, 0, 0, false
	}
	mean = c.made[slot][h-1]
	q, ok := c.errs[h-1].conformalQuantile(level)
	if !ok {
		return mean, 0, 0, false
	}
	return mean, mean - q, mean + q, true
}

// sortedRing keeps the last n values in arrival order and sorted.
type sortedRing struct {
	ring   []float64
	next   int
	full   bool
	sorted []float64
}

func newSortedRing(n int) *sortedRing {
	return &sortedRing{ring: make([]float64, n), sorted: make([]float64, 0, n)}
}

func (w *sortedRing) Add(v float64) {
	if w.full {
		i, _ := slices.BinarySearch(w.sorted, w.ring[w.next])
		w.sorted = slices.Delete(w.sorted, i, i+1)
	}
	w.ring[w.next] = v
	if w.next++; w.next == len(w.ring) {
		w.next, w.full = 0, true
	}
	i, _ := slices.BinarySearch(w.sorted, v)
	w.sorted = slices.Insert(w.sorted, i, v)
}

// conformalQuantile is the ⌈(n+1)level⌉-th smallest value; false when
// that rank exceeds n (too few values for the level).
func (w *sortedRing) conformalQuantile(level float64) (float64, bool) {
	n := len(w.sorted)
	k := int(math.Ceil(float64(n+1) * level))
	if n == 0 || k > n {
		return 0, false
	}
	return w.sorted[max(k, 1)-1], true
}
