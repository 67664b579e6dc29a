package scale

import (
	"math"
	"time"
)

// The budget's constants.
const (
	// minLevel is the lowest level of the quantiles.
	minLevel = 0.1
	// levelGrid is how many levels, from minLevel to 1-Risk, the budget
	// weighs: their tail probabilities are geometrically spaced, so that
	// the grid is as fine near 1-Risk as near minLevel.
	levelGrid = 48
	// priceGain is the integral controller's gain on the logarithm of the
	// price: it moves by this much for each interval run one shadow's
	// worth of replicas over (up) or under (down) the shadow.
	priceGain = 0.1
	// minPrice and maxPrice bound the price, in probability per replica:
	// at maxPrice no replica is worth its cost beyond the floor, at
	// minPrice every level up to 1-Risk is.
	minPrice, maxPrice = 1e-6, 1.0
	// budgetMargin is the set-point below the shadow: the controller aims
	// at 1% fewer replicas than the HPA, so that its transients (the price
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
	// overdraft is the debt, in replica-intervals, the budget lets
	// Predictive run up before it caps it at the shadow's count: one
	// replica ahead of the shadow for 12 intervals. With none, a policy
	// that has saved nothing yet (a cold start, a steady load) could not
	// lead the shadow by one replica for one interval without being capped
	// back at once; against a series' total (40,000 replica-intervals for
	// 10 replicas over two weeks of 5-minute samples) it is 0.03%.
	overdraft = 12
)

// budget chooses how many replicas Predictive provisions for so that it
// runs no more replicas than the HPA would have: a shadow HPA, fed the same
// measurements on its own replica count, counts those.
//
// What Predictive is judged on is the share of intervals under-provisioned,
// for the replicas it runs. That is a budgeted newsvendor problem: over the
// intervals t, choose counts n_t to minimise the sum of P(D_t > n_t × c)
// with the sum of n_t within the budget. Its Lagrangian optimum is, at each
// t, the n that maximises F_t(n × c) − λ × n, with one price λ (probability
// of being served bought per replica) for all t: replicas go where they
// buy most coverage, to a higher level where the forecast is sharp and a
// lower one where it is wide, rather than to the same level everywhere. F_t
// is read from the forecaster's quantiles on a grid of levels from
// minLevel to 1-Risk.
//
// At each measurement an integral controller moves log λ up in proportion
// to what Predictive ran over the shadow in the interval that ends, and
// down in proportion to what it ran under. The price starts at the slope
// of the forecast's distribution at the coverage the HPA achieved while it
// was the fallback. The set-point is 1% under the shadow, the margin
// absorbing the controller's transients. While the choice is at 1-Risk the
// controller stops counting savings (they cannot buy more), so that a
// series that turns noisy is not met with banked credit.
type budget struct {
	spec     HPASpec // the shadow HPA: the demand metric alone
	capacity float64
	risk     float64
	// intervals seen, and under-provisioned, before the price was set
	seen, missed int
	shadowN      int
	hist         History
	started      bool

	steps      []countStep // what Predictive and the shadow ran, from each decision on
	lastClosed time.Time
	mean       float64 // running mean of the shadow's count
	charged    int
	logPrice   float64
	priced     bool // the price is set: the forecast has been used
	// debt is what Predictive has run over the shadow since the price was
	// set, in replica-intervals; positive while it is over.
	debt float64

	choice choice // for the newest forecast
	ready  bool
}

// choice is what the budget asks of the newest forecast: the count to
// scale up to (for the demand at the end of the horizon) and the count to
// keep (for its peak), with their quantiles' levels and values.
type choice struct {
	up, hold           int
	upLevel, holdLevel float64
	end, peak          float64
	atTop              bool // up is at the level 1-Risk
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

// levels is the grid of levels the budget weighs, lowest first.
func (b *budget) levels() []float64 {
	out := make([]float64, levelGrid)
	hi, lo := math.Log(1-minLevel), math.Log(b.risk)
	for i := range out {
		out[i] = 1 - math.Exp(hi+(lo-hi)*float64(i)/float64(levelGrid-1))
	}
	return out
}

// forecast reads the forecaster's quantiles and chooses the counts at the
// price. The first time the forecaster vouches for them after the budget's
// warm-up, the price starts at the forecast's slope at the coverage the HPA
// (the fallback until then) achieved.
func (b *budget) forecast(f PeakForecaster) {
	b.ready = false
	if b.charged < minCharged || b.seen == 0 && !b.priced {
		return
	}
	if !b.priced {
		p0 := clamp(1-float64(b.missed)/float64(b.seen), minLevel, 1-b.risk)
		lp, ok := b.startPrice(f, p0)
		if !ok {
			return
		}
		b.logPrice, b.priced = lp, true
	}
	c, ok := b.choose(f, math.Exp(b.logPrice))
	b.choice, b.ready = c, ok
}

// startPrice is the log of the slope of the forecast's distribution of the
// demand at the horizon's end at level p, in probability per replica: the
// price at which p is the level chosen, were the tail exponential. It
// reads the slope between the median and p.
func (b *budget) startPrice(f PeakForecaster, p float64) (float64, bool) {
	mid, _, ok1 := f.Quantiles(0.5)
	q, _, ok2 := f.Quantiles(p)
	if !ok1 || !ok2 {
		return 0, false
	}
	p = max(p, 0.6)
	width := max((q-mid)/b.capacity, 1) // replicas between the median and p
	price := (1 - p) * math.Log(0.5/(1-p)) / width
	return math.Log(clamp(price, minPrice, maxPrice)), true
}

// choose picks, for the demand at the horizon's end and for its peak, the
// level on the grid whose count n maximises p − price × n.
func (b *budget) choose(f PeakForecaster, price float64) (choice, bool) {
	var c choice
	bestUp, bestHold := math.Inf(-1), math.Inf(-1)
	levels := b.levels()
	for i, p := range levels {
		end, peak, ok := f.Quantiles(p)
		if !ok {
			return choice{}, false
		}
		nUp, nHold := ceilInt(end/b.capacity), ceilInt(peak/b.capacity)
		if v := p - price*float64(nUp); v > bestUp {
			bestUp = v
			c.up, c.upLevel, c.end, c.atTop = nUp, p, end, i == len(levels)-1
		}
		if v := p - price*float64(nHold); v > bestHold {
			bestHold = v
			c.hold, c.holdLevel, c.peak = nHold, p, peak
		}
	}
	return c, true
}

// current is the choice for the newest forecast; false when unsure.
func (b *budget) current() (choice, bool) {
	return b.choice, b.ready
}

// cap is the most replicas the budget affords the forecast now: any while
// Predictive has run no more than the shadow since the price was set, or
// more by at most overdraft; the shadow's count beyond that, so that it
// pays its debt back to within the overdraft rather than adding to it
// however long the price takes to rise.
func (b *budget) cap() int {
	if b.debt > overdraft {
		return b.shadowN
	}
	return math.MaxInt
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
	if !b.priced {
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
	if !b.priced {
		return
	}
	b.debt += ran - shadow
	err := (ran - (1-budgetMargin)*shadow) / max(b.mean, 1)
	if err < 0 && b.choice.atTop {
		return
	}
	b.logPrice = clamp(b.logPrice+priceGain*err, math.Log(minPrice), math.Log(maxPrice))
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
