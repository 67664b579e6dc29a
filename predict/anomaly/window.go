package anomaly

import (
	"math"
	"slices"
)

// sortedWindow keeps the last n values of a stream both in arrival order (a
// ring) and sorted, so that a new value's rank among them costs a binary
// search. Insertion and eviction move at most n floats, which for the few
// thousand values a detector keeps is cheaper than a balanced tree.
type sortedWindow struct {
	ring   []float64
	next   int
	full   bool
	sorted []float64
}

func newSortedWindow(n int) *sortedWindow {
	return &sortedWindow{ring: make([]float64, n), sorted: make([]float64, 0, n)}
}

func (w *sortedWindow) Len() int { return len(w.sorted) }

// Add inserts v, evicting the oldest value when the window is full.
func (w *sortedWindow) Add(v float64) {
	if w.full {
		old := w.ring[w.next]
		i, _ := slices.BinarySearch(w.sorted, old)
		w.sorted = slices.Delete(w.sorted, i, i+1)
	}
	w.ring[w.next] = v
	w.next++
	if w.next == len(w.ring) {
		w.next, w.full = 0, true
	}
	i, _ := slices.BinarySearch(w.sorted, v)
	w.sorted = slices.Insert(w.sorted, i, v)
}

// Above is the number of values >= v.
func (w *sortedWindow) Above(v float64) int {
	i, _ := slices.BinarySearch(w.sorted, v)
	return len(w.sorted) - i
}

// Below is the number of values <= v.
func (w *sortedWindow) Below(v float64) int {
	i := sortSearchAbove(w.sorted, v)
	return i
}

// sortSearchAbove is the index of the first value > v.
func sortSearchAbove(s []float64, v float64) int {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m] <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Quantile is the q-quantile by linear interpolation; NaN when empty.
func (w *sortedWindow) Quantile(q float64) float64 {
	n := len(w.sorted)
	if n == 0 {
		return math.NaN()
	}
	x := q * float64(n-1)
	i := int(x)
	if i >= n-1 {
		return w.sorted[n-1]
	}
	f := x - float64(i)
	return w.sorted[i]*(1-f) + w.sorted[i+1]*f
}

// Top returns the k largest values, largest last; it aliases the window.
func (w *sortedWindow) Top(k int) []float64 {
	k = min(k, len(w.sorted))
	return w.sorted[len(w.sorted)-k:]
}
