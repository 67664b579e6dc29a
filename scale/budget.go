package scale

import (
	"math"
	"time"
)

// The budget's constants.
const (
	// minLevel is the lowest level of the quantiles.
	minLevel = 0.1
	// budgetGain is the integral controller's gain: the level moves by this
	// much for each interval run one shadow's worth of replicas over (down)
	// or under (up) the shadow.
	budgetGain = 0.05
	// budgetMargin is the set-point below the shadow: the controller aims
	// at 1% fewer replicas than the HPA, so that its transients (the level
	// it starts at, the intervals it takes to follow a change) do not
	// carry the total above the HPA's.
	budgetMargin = 0.01
	// meanWeight is the weight of a new interval in the running mean of
	// the shadow's count that normalises the error (about a day of 5-minute
	// samples).
	meanWeight = 1.0 / 288
	// minCharged is how many intervals the budget must have seen before the
	// forecast is used.
	minCharged = 12
)

// budget sets the level of Predictive's quantiles so that it runs no more
// replicas than the HPA would have: a shadow HPA, fed the same measurements
// on its own replica count, counts those. At each measurement an integral
// controller moves the level down in proportion to what Predictive ran over
// the shadow in the interval that ends, and up in proportion to what it ran
// under, between minLevel and 1-Risk.
//
// The level starts at the coverage the HPA achieved while it was the
// fallback. As long as the level stays within its bounds, the sum of what
// Predictive ran above its set-point (1% under the shadow) is
// (start - level)/gain shadows' worth of replica-intervals: over a long run
// Predictive spends about 1% less than the HPA would have, the margin
// absorbing the controller's transients. At the top the controller stops
// counting savings (they cannot buy more), so that a series that turns
// noisy is not met with banked credit.
type budget struct {
	spec     HPASpec // the shadow HPA: the demand metric alone
	capacity float64
	risk     float64
	// intervals seen, and under-provisioned, before the level was set
	seen, missed int
	shadowN      int
	hist         History
	started      bool

	steps      []countStep // what Predictive and the shadow ran, from each decision on
	lastClosed time.Time
	mean       float64 // running mean of the shadow's count
	charged    int
	level      float64 // 0 until the forecast is first used

	quant [2]float64 // the (end, peak) quantiles at level, for the newest forecast
	ready bool
}

// countStep is what Predictive and the shadow ran from a decision on, and
// how many of Predictive's replicas were ready.
type countStep struct {
	at                 time.Time
	ran, shadow, ready int
}

func newBudget(shadow HPASpec, capacity, risk float64) *budget {
	return &budget{spec: shadow, capacity: capacity, risk: risk}
}

// forecast reads the forecaster's quantiles at the level in use. The first
// time the forecaster vouches for them after the budget's warm-up, the level
// starts at the coverage the HPA (the fallback until then) achieved.
func (b *budget) forecast(f PeakForecaster) {
	b.ready = false
	if b.level == 0 {
		if b.charged < minCharged || b.seen == 0 {
			return
		}
		if _, _, ok := f.Quantiles(minLevel); !ok {
			return
		}
		b.level = clamp(1-float64(b.missed)/float64(b.seen), minLevel, 1-b.risk)
	}
	end, peak, ok := f.Quantiles(b.level)
	b.quant, b.ready = [2]float64{end, peak}, ok
}

// current is the level in use and its quantiles; false when unsure.
func (b *budget) current() (level, end, peak float64, ok bool) {
	if !b.ready {
		return 0, 0, 0, false
	}
	return b.level, b.quant[0], b.quant[1], true
}

// tick runs the shadow at a decision.
func (b *budget) tick(s Snapshot) {
	if !b.started {
		b.shadowN, b.started = s.Replicas, true
	}
	ss := Snapshot{Now: s.Now, Replicas: b.shadowN, StatusReplicas: b.shadowN, External: s.External}
	d, h := b.spec.Decide(ss, b.hist)
	b.hist, b.shadowN = h, d.Replicas
}

// ran records the count Predictive decided at now, with the shadow's and
// the replicas ready then.
func (b *budget) ran(now time.Time, n, ready int) {
	b.steps = append(b.steps, countStep{at: now, ran: n, shadow: b.shadowN, ready: ready})
}

// close ends the interval that a measurement at at closes and moves the
// level. The interval is the given one, or the time since the last close.
func (b *budget) close(at time.Time, interval time.Duration, demand float64) {
	if interval <= 0 {
		interval = at.Sub(b.lastClosed)
	}
	b.lastClosed = at
	ran, shadow, ready, ok := b.averages(at.Add(-interval), at)
	if !ok {
		return
	}
	if b.level == 0 {
		b.seen++
		if demand > ready*b.capacity {
			b.missed++
		}
	}
	w := meanWeight
	if b.charged == 0 {
		w = 1
	}
	b.charged++
	b.mean += w * (shadow - b.mean)
	if b.level == 0 {
		return
	}
	top := 1 - b.risk
	if b.level >= top && ran < (1-budgetMargin)*shadow {
		return
	}
	err := (ran - (1-budgetMargin)*shadow) / max(b.mean, 1)
	b.level = clamp(b.level-budgetGain*err, minLevel, top)
}

// averages are the time-averages of what Predictive and the shadow ran, and
// of Predictive's ready replicas, over [from, to); it forgets the steps
// before from but the one in force then.
func (b *budget) averages(from, to time.Time) (ran, shadow, ready float64, ok bool) {
	if len(b.steps) == 0 || !to.After(from) {
		return 0, 0, 0, false
	}
	start := from
	if first := b.steps[0].at; first.After(from) {
		start = first
	}
	for i, st := range b.steps {
		lo, hi := st.at, to
		if lo.Before(start) {
			lo = start
		}
		if i+1 < len(b.steps) && b.steps[i+1].at.Before(to) {
			hi = b.steps[i+1].at
		}
		if d := hi.Sub(lo).Seconds(); d > 0 {
			ran += d * float64(st.ran)
			shadow += d * float64(st.shadow)
			ready += d * float64(st.ready)
		}
	}
	keep := 0
	for keep+1 < len(b.steps) && !b.steps[keep+1].at.After(to) {
		keep++
	}
	b.steps = append(b.steps[:0], b.steps[keep:]...)
	span := to.Sub(start).Seconds()
	if span <= 0 {
		return 0, 0, 0, false
	}
	return ran / span, shadow / span, ready / span, true
}

func clamp(x, lo, hi float64) float64 { return math.Min(math.Max(x, lo), hi) }
