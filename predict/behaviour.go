package predict

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/predict/anomaly"
)

// Baseline sizes of a component's multivariate anomaly model.
const (
	// behaviourTrainAt is how many observations the first model waits for:
	// a baseline of about a minute at the demo's 500 ms scrapes, ten at a
	// 15 s scrape interval.
	behaviourTrainAt = 120
	// behaviourRetrain is how many observations pass between refits.
	behaviourRetrain = 600
	// behaviourKeep is how many observations are kept to fit on.
	behaviourKeep = 1500
)

// behaviour is a component's multivariate anomaly model: an isolation
// forest over feature vectors (each limited signal's level and change, both
// over its limit, so that signals of different units compare), fitted on
// the older two thirds of its recent history and calibrated on the newest
// third, which the forest has not seen (an out-of-sample baseline, so that
// the likelihood is not inflated by the forest's fit to its own rows).
type behaviour struct {
	signals []phoenix.Signal // the feature order, fixed at the first fit
	rows    [][]float64
	prev    map[phoenix.Signal]float64
	since   int
	forest  *anomaly.IsolationForest
	calib   *anomaly.Calibrator
	last    []float64
	rng     *rand.Rand
}

func newBehaviour(c phoenix.ComponentID) *behaviour {
	h := fnv.New64a()
	h.Write([]byte(c))
	return &behaviour{prev: map[phoenix.Signal]float64{}, rng: rand.New(rand.NewPCG(h.Sum64(), 1))}
}

// observe adds one scrape's values, for the signals that have limits.
func (b *behaviour) observe(limits Limits, values map[phoenix.Signal]float64) {
	if b.signals == nil {
		for s := range limits {
			b.signals = append(b.signals, s)
		}
		slices.Sort(b.signals)
	}
	if len(b.signals) == 0 {
		return
	}
	row := make([]float64, 0, 2*len(b.signals))
	for _, s := range b.signals {
		v, ok := values[s]
		limit := limits[s]
		if !ok || !isFinite(v) || !(limit > 0) {
			return // a partial scrape is not a behaviour
		}
		p, had := b.prev[s]
		if !had {
			p = v
		}
		b.prev[s] = v
		row = append(row, v/limit, (v-p)/limit)
	}
	b.last = row
	b.rows = append(b.rows, row)
	if len(b.rows) > behaviourKeep {
		b.rows = b.rows[len(b.rows)-behaviourKeep:]
	}
	b.since++
	if (b.forest == nil && len(b.rows) >= behaviourTrainAt) || (b.forest != nil && b.since >= behaviourRetrain) {
		b.fit()
	}
}

func (b *behaviour) fit() {
	b.since = 0
	cut := len(b.rows) * 2 / 3
	b.forest = anomaly.FitIsolationForest(b.rows[:cut], 100, 256, b.rng)
	b.calib = anomaly.NewCalibrator(len(b.rows) - cut)
	for _, r := range b.rows[cut:] {
		b.calib.Add(b.forest.Score(r))
	}
}

// likelihood is the calibrated anomaly likelihood of the newest
// observation, 0 before the first fit.
func (b *behaviour) likelihood() float64 {
	if b == nil || b.forest == nil || b.last == nil {
		return 0
	}
	l := b.calib.Likelihood(b.forest.Score(b.last))
	if math.IsNaN(l) {
		return 0
	}
	return l
}
