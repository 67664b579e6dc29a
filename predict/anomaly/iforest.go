package anomaly

import (
	"math"
	"math/rand/v2"
)

// IsolationForest is Liu, Ting and Zhou's isolation forest ("Isolation
// Forest", ICDM 2008): random axis-parallel splits isolate an anomaly in
// fewer steps than a normal point, and the score 2^(-E[h(x)]/c(ψ)) of a
// point is near 1 for anomalies, near 0.5 or below for normal points. Each
// tree is grown on a subsample of ψ rows (default 256) to depth ⌈log2 ψ⌉.
//
// It is written here because no maintained Go module provides one (see
// DEPENDENCIES.md); the algorithm is small and its expected path length has
// a closed form, which the tests check.
type IsolationForest struct {
	trees  []*itree
	sample int
}

type itree struct {
	feature     int
	split       float64
	left, right *itree
	size        int // rows reaching a leaf
}

// FitIsolationForest grows trees on rows (all of one width); nil when
// there are fewer than two rows.
func FitIsolationForest(rows [][]float64, trees, sample int, rng *rand.Rand) *IsolationForest {
	if len(rows) < 2 || len(rows[0]) == 0 {
		return nil
	}
	if trees <= 0 {
		trees = 100
	}
	if sample <= 0 {
		sample = 256
	}
	sample = min(sample, len(rows))
	depth := int(math.Ceil(math.Log2(float64(sample))))
	f := &IsolationForest{sample: sample}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	for range trees {
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		sub := make([][]float64, sample)
		for i := range sub {
			sub[i] = rows[idx[i]]
		}
		f.trees = append(f.trees, grow(sub, 0, depth, rng))
	}
	return f
}

func grow(rows [][]float64, d, maxDepth int, rng *rand.Rand) *itree {
	if d >= maxDepth || len(rows) <= 1 {
		return &itree{size: len(rows)}
	}
	width := len(rows[0])
	// choose a feature that varies; give up after trying them all
	for _, feat := range rng.Perm(width) {
		lo, hi := rows[0][feat], rows[0][feat]
		for _, r := range rows[1:] {
			lo, hi = math.Min(lo, r[feat]), math.Max(hi, r[feat])
		}
		if !(hi > lo) {
			continue
		}
		split := lo + rng.Float64()*(hi-lo)
		var left, right [][]float64
		for _, r := range rows {
			if r[feat] < split {
				left = append(left, r)
			} else {
				right = append(right, r)
			}
		}
		return &itree{feature: feat, split: split, left: grow(left, d+1, maxDepth, rng), right: grow(right, d+1, maxDepth, rng)}
	}
	return &itree{size: len(rows)}
}

// Score is the anomaly score of x in (0, 1]. Rows wider than the training
// rows are cut, narrower ones padded with zeros.
func (f *IsolationForest) Score(x []float64) float64 {
	if f == nil || len(f.trees) == 0 {
		return 0.5
	}
	var sum float64
	for _, t := range f.trees {
		sum += pathLength(t, x, 0)
	}
	return math.Pow(2, -sum/float64(len(f.trees))/avgPath(f.sample))
}

func pathLength(t *itree, x []float64, d int) float64 {
	for t.left != nil {
		v := 0.0
		if t.feature < len(x) {
			v = x[t.feature]
		}
		if v < t.split {
			t = t.left
		} else {
			t = t.right
		}
		d++
	}
	return float64(d) + avgPath(t.size)
}

// avgPath is c(n), the average path length of an unsuccessful search in a
// binary search tree of n keys: 2H(n-1) - 2(n-1)/n.
func avgPath(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	h := math.Log(float64(n-1)) + 0.5772156649015329
	return 2*h - 2*float64(n-1)/float64(n)
}
