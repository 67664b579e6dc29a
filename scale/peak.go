package scale

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// PeakForecaster forecasts demand over a fixed horizon of samples from a
// stream of demand samples.
type PeakForecaster interface {
	// Observe adds a demand sample; samples come in time order.
	Observe(at time.Time, v float64)
	// Quantiles returns p-quantiles (0 < p < 1) of the demand at the end of
	// the horizon and of the peak demand over the whole horizon after the
	// newest sample; false while the forecaster cannot vouch for them.
	Quantiles(p float64) (end, peak float64, ok bool)
}

// Centre is a streaming point forecaster of a regularly sampled series, one
// value per step: the shape of predict/forecast's models, so that any of
// them can be a ConformalPeak candidate.
type Centre interface {
	Update(v float64)
	Predict(h int) (float64, bool)
}

// candidate is a centre as ConformalPeak drives it: fed each sample with
// its time, which a seasonal centre needs to place it in its season.
type candidate interface {
	observe(at time.Time, v float64)
	Predict(h int) (float64, bool)
}

// untimed feeds a Centre, which forecasts by sample count alone.
type untimed struct{ Centre }

func (u untimed) observe(_ time.Time, v float64) { u.Update(v) }

var (
	_ PeakForecaster = (*ConformalPeak)(nil)
	_ Centre         = (*ewLevel)(nil)
	_ candidate      = (*seasonal)(nil)
)

// ConformalConfig configures a ConformalPeak.
type ConformalConfig struct {
	// Steps is the horizon in samples: the peak is over the next Steps.
	Steps int
	// Window is how many past peaks calibrate the quantiles (the most
	// recent ones).
	Window int
	// MinScores is how many calibration scores the forecaster needs before
	// it vouches for a quantile.
	MinScores int
	// Centres adds candidate centres to the built-in exponentially weighted
	// levels, such as predict/forecast's Holt-Winters.
	Centres []Centre
}

// DefaultConformal returns the defaults for a horizon of steps samples: a
// calibration window of 576 peaks (two days of 5-minute samples), 48 scores
// before the first quantile.
func DefaultConformal(steps int) ConformalConfig {
	return ConformalConfig{Steps: steps, Window: 576, MinScores: 48}
}

func (c ConformalConfig) validate() error {
	switch {
	case c.Steps < 1 || c.Steps > 10_000:
		return fmt.Errorf("steps %d: write 1 to 10000", c.Steps)
	case c.Window < 10 || c.Window > 1_000_000:
		return fmt.Errorf("window %d: write 10 to 1000000", c.Window)
	case c.MinScores < 1 || c.MinScores > c.Window:
		return fmt.Errorf("min scores %d: write 1 to the window (%d)", c.MinScores, c.Window)
	}
	for i, ce := range c.Centres {
		if ce == nil {
			return fmt.Errorf("centres[%d] is nil", i)
		}
	}
	return nil
}

// builtinCentres are the candidate centres every ConformalPeak has:
// exponentially weighted levels with half-lives from 0 (the last sample) to
// 32 samples (a few hours of 5-minute samples), and two damped trends, one
// slow and one quick, for demand that ramps.
func builtinCentres() []candidate {
	var out []candidate
	for _, hl := range []float64{0, 0.5, 2, 8, 32} {
		out = append(out, untimed{&ewLevel{w: halfLifeWeight(hl)}})
	}
	return append(out, untimed{&holt{alpha: 0.5, beta: 0.2, phi: 0.9}}, untimed{&holt{alpha: 0.8, beta: 0.4, phi: 0.8}})
}

// seasonalCentres are the daily centres every ConformalPeak has, the
// challengers of the others: each averages up to five past days, so that
// one day's noise or anomaly weighs a fifth, and corrects by a level of
// half-life 0 (the last sample), 4 or 16 samples, for a level that is known
// sharply, moves with some noise, or is noisy.
func seasonalCentres() []*seasonal {
	var out []*seasonal
	for _, hl := range []float64{0, 4, 16} {
		out = append(out, &seasonal{period: day, seasons: 5, w: halfLifeWeight(hl)})
	}
	return out
}

// halfLifeWeight is the weight of a new sample in an exponentially weighted
// mean of half-life hl samples (1 for 0: the last sample).
func halfLifeWeight(hl float64) float64 {
	if hl <= 0 {
		return 1
	}
	return 1 - math.Exp2(-1/hl)
}

// scaleWindow is how many recent steps the steady score unit is the median
// of; recentWeight weighs the recent unit's new steps (half-life 4).
const scaleWindow = 64

const recentWeight = 0.15910358474628547 // 1 - 2^(-1/4)

// refLevel is the quantile level at which candidates are compared, and
// lossWeight the weight of a new outcome in their running loss (about 200
// samples).
const (
	refLevel   = 0.9
	lossWeight = 1.0 / 200
)

// The seasonal candidates are challengers (see ConformalPeak): the best of
// them is used only once its selection's running loss, over the outcomes of
// the last few hundred samples (strategyWeight) and resting on at least
// minStrategyWeight of such a memory (about 280 outcomes), is below
// 1-challengeMargin times that of the best of the others. The losses are
// the mean pinball losses of the quantiles at strategyLevels, which span
// the levels the budget chooses, so that a seasonal forecast whose median
// is sharper but whose tail is heavier (one day's spike read as the season)
// is judged on the tail too.
const (
	strategyWeight    = 1.0 / 400
	minStrategyWeight = 0.5
	challengeMargin   = 0.3
)

var strategyLevels = [...]float64{0.5, 0.75, 0.9, 0.95, 0.99}

const nStrategyLevels = len(strategyLevels)

// The selections whose losses are compared: the best of the plain
// candidates (the built-in levels and trends, and any configured), and the
// best of the seasonal ones.
const (
	plainStrategy = iota
	seasonalStrategy
	nStrategies
)

// The two quantities a ConformalPeak calibrates.
const (
	atPeak = iota // the highest sample of the horizon
	atEnd         // the last sample of the horizon
	nTargets
)

// ConformalPeak forecasts the demand of the next Steps samples by split
// conformal prediction, calibrated online on the samples that actually
// came: the peak over the Steps, and the value at the last of them.
//
// Each candidate centre (the built-in levels and damped trends, and any
// Centres given) forecasts the series: its centre
// for the peak is its highest forecast over the horizon, for the end its
// forecast at the end. The score of a past sample is how far the outcome
// came above that centre, in a unit: either the series' median absolute
// step over the last 64 samples (noise of a steady size, robust to a few
// spikes), its mean absolute step over the last few samples (noise that
// comes in bursts), or the centre itself (noise that grows with the
// level). Each centre with each unit is a candidate. The p-quantile is the centre plus the ceil((n+1)p)-th smallest
// of the last Window scores times the unit: by exchangeability of recent
// scores it is exceeded with probability about 1-p, with no model of the
// series' distribution. For each quantity, the candidate used is the one
// whose 0.9-quantiles scored best (the pinball loss, a proper scoring rule)
// on the outcomes of the last couple of hundred samples: the sharpest of
// bounds calibrated alike, chosen on outcomes rather than on the bounds'
// width, which would favour a candidate whose recent scores ran low.
//
// Daily centres (seasonal: what the series did at this time of day on the
// last few days, moved by how far its level has moved since) are
// candidates too, but challengers: demand is often daily, but on a series
// that is not, or not lately, a seasonal candidate can still win the
// running comparison by chance, and a wrong seasonal forecast costs more
// than a wrong level (it moves where the series does not). So the best
// seasonal candidate replaces the best of the others only once it has seen
// two days (one to forecast from, one to be scored on), and only while its
// running loss (its selection's, scored alike out of sample, at levels from
// 0.5 to 0.99) is well below theirs: by challengeMargin, over a memory of
// some hundreds of outcomes of which it has half at least.
//
// It is written here, rather than taken from predict's forecasters, because
// a scaler needs the quantiles of the peak over a window, which are not the
// highest of pointwise quantiles, and at any level its budget allows; and
// because it must run on any demand series with no tuning. ConformalPeak is
// not safe for concurrent use.
type ConformalPeak struct {
	cfg     ConformalConfig
	centres []candidate // the built-in and configured ones, then the seasonal ones
	// seasonal are the seasonal centres, centres[len(centres)-len(seasonal):]:
	// challengers, used only once seasoned and clearly better.
	seasonal []*seasonal

	n     int
	last  float64   // the newest sample
	steps []float64 // the last scaleWindow absolute steps
	scale float64   // their median
	// recent is the exponentially weighted mean absolute step, half-life
	// 4 samples
	recent float64
	// per quantity and centre, the centre for the horizon after the newest
	// sample (NaN when the centre has no forecast)
	now [nTargets][]float64

	pending []pendingPeak // forecasts not yet resolved, oldest first
	// per quantity and candidate (centre×2 + unit), the ring of the last
	// Window scores, and the ring sorted without NaNs
	scores [nTargets][][]float64
	sorted [nTargets][][]float64
	next   int // ring position
	filled int
	loss   [nTargets][]float64 // per candidate, running mean pinball loss of its 0.9-quantiles
	// per quantity and selection, its running loss as an exponentially
	// weighted sum and the sum of its weights: their ratio is the mean, not
	// biased low while the seasonal selection, which starts a day late,
	// has few outcomes
	sLoss, sLossW [nTargets][nStrategies]float64
	best          [nTargets]int // the candidate in use; -1 for none

	scratch []float64
}

// pendingPeak is what was forecast at one sample, scored once the next
// Steps samples are in.
type pendingPeak struct {
	centres [nTargets][]float64
	units   [nUnits]float64
	ref     [nTargets][]float64 // per candidate, its refLevel quantile; NaN if none
	// per quantity and selection (plain, seasonal), the quantiles at
	// strategyLevels of the candidate it chose; NaN if none
	stratRef [nTargets][nStrategies][nStrategyLevels]float64
	peak     float64 // the highest sample since, so far
	seen     int
}

// ewLevel is an exponentially weighted level: a flat forecast.
type ewLevel struct {
	w     float64
	level float64
	ok    bool
}

func (e *ewLevel) Update(v float64) {
	if !e.ok {
		e.level, e.ok = v, true
		return
	}
	e.level += e.w * (v - e.level)
}

func (e *ewLevel) Predict(int) (float64, bool) { return e.level, e.ok }

// holt is Holt's linear method with a damped trend (Gardner and McKenzie):
// a level and a trend, each smoothed; forecasts follow the trend, damped by
// phi per step.
type holt struct {
	alpha, beta, phi float64
	level, trend     float64
	n                int
}

func (h *holt) Update(v float64) {
	switch h.n {
	case 0:
		h.level = v
	case 1:
		h.trend = v - h.level
		h.level = v
	default:
		prev := h.level
		h.level = h.alpha*v + (1-h.alpha)*(prev+h.phi*h.trend)
		h.trend = h.beta*(h.level-prev) + (1-h.beta)*h.phi*h.trend
	}
	h.n++
}

func (h *holt) Predict(k int) (float64, bool) {
	if h.n < 2 {
		return 0, false
	}
	damp, f := 0.0, h.phi
	for range k {
		damp += f
		f *= h.phi
	}
	return h.level + damp*h.trend, true
}

// NewConformalPeak returns a forecaster with cfg, or an error naming the
// bad field.
func NewConformalPeak(cfg ConformalConfig) (*ConformalPeak, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("conformal peak: %w", err)
	}
	c := &ConformalPeak{cfg: cfg}
	c.centres = builtinCentres()
	for _, ce := range cfg.Centres {
		c.centres = append(c.centres, untimed{ce})
	}
	c.seasonal = seasonalCentres()
	for _, s := range c.seasonal {
		c.centres = append(c.centres, s)
	}
	k := len(c.centres)
	for t := range nTargets {
		c.now[t] = make([]float64, k)
		c.loss[t] = make([]float64, nUnits*k)
		c.scores[t] = make([][]float64, nUnits*k)
		c.sorted[t] = make([][]float64, nUnits*k)
		for i := range c.scores[t] {
			c.scores[t][i] = make([]float64, cfg.Window)
		}
		c.best[t] = -1
	}
	return c, nil
}

// Observe adds a sample. Non-finite or negative values are ignored.
func (c *ConformalPeak) Observe(at time.Time, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return
	}
	c.resolve(v)
	c.update(at, v)
	c.issue()
}

// resolve scores the pending forecasts whose horizon the new sample ends.
func (c *ConformalPeak) resolve(v float64) {
	done := 0
	for i := range c.pending {
		p := &c.pending[i]
		p.peak = max(p.peak, v)
		p.seen++
		if p.seen < c.cfg.Steps {
			continue
		}
		done++
		outcome := [nTargets]float64{atPeak: p.peak, atEnd: v}
		full := c.filled == c.cfg.Window
		for t := range nTargets {
			for k := range c.scores[t] {
				centre := p.centres[t][k/nUnits]
				score := (outcome[t] - centre) / unitOf(k, centre, p.units) // NaN if none
				if full {
					c.sorted[t][k] = removeSorted(c.sorted[t][k], c.scores[t][k][c.next])
				}
				c.scores[t][k][c.next] = score
				c.sorted[t][k] = insertSorted(c.sorted[t][k], score)
				if q := p.ref[t][k]; !math.IsNaN(q) {
					c.loss[t][k] += lossWeight * (pinball(outcome[t], q, refLevel)/p.units[unitSteady] - c.loss[t][k])
				}
			}
		}
		for t := range nTargets {
			for st, qs := range p.stratRef[t] {
				if math.IsNaN(qs[0]) {
					continue
				}
				var l float64
				for i, q := range qs {
					l += pinball(outcome[t], q, strategyLevels[i])
				}
				l /= float64(nStrategyLevels) * p.units[unitSteady]
				c.sLoss[t][st] += strategyWeight * (l - c.sLoss[t][st])
				c.sLossW[t][st] += strategyWeight * (1 - c.sLossW[t][st])
			}
		}
		c.next = (c.next + 1) % c.cfg.Window
		c.filled = min(c.filled+1, c.cfg.Window)
	}
	c.pending = c.pending[done:]
}

// insertSorted adds x to the sorted s, unless it is NaN.
func insertSorted(s []float64, x float64) []float64 {
	if math.IsNaN(x) {
		return s
	}
	i, _ := slices.BinarySearch(s, x)
	return slices.Insert(s, i, x)
}

// removeSorted removes one x from the sorted s, if there (NaN never is).
func removeSorted(s []float64, x float64) []float64 {
	if math.IsNaN(x) {
		return s
	}
	if i, found := slices.BinarySearch(s, x); found {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// update moves the centres and the scale to include v.
func (c *ConformalPeak) update(at time.Time, v float64) {
	if c.n > 0 {
		c.steps = append(c.steps, math.Abs(v-c.last))
		if len(c.steps) > scaleWindow {
			c.steps = c.steps[1:]
		}
		c.scratch = append(c.scratch[:0], c.steps...)
		slices.Sort(c.scratch)
		// The median, kept above a quarter of the mean: a series that
		// mostly repeats its last value must not get a unit near zero
		// that its rare moves would then blow up.
		c.scale = max(c.scratch[len(c.scratch)/2], mean(c.steps)/4)
		step := c.steps[len(c.steps)-1]
		if c.n == 1 {
			c.recent = step
		}
		c.recent += recentWeight * (step - c.recent)
	}
	c.n++
	c.last = v
	for _, ce := range c.centres {
		ce.observe(at, v)
	}
}

// issue computes each centre for the coming horizon, records them to be
// scored, and picks for each quantity the candidate whose quantiles have
// scored best lately.
func (c *ConformalPeak) issue() {
	units := c.units()
	p := pendingPeak{units: units, peak: math.Inf(-1)}
	for t := range nTargets {
		p.centres[t] = make([]float64, len(c.centres))
	}
	for k, ce := range c.centres {
		peak, end := math.Inf(-1), math.NaN()
		for h := 1; h <= c.cfg.Steps; h++ {
			f, ok := ce.Predict(h)
			if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
				peak = math.NaN()
				break
			}
			peak, end = max(peak, f), f
		}
		if math.IsNaN(peak) {
			end = math.NaN()
		}
		c.now[atPeak][k], c.now[atEnd][k] = peak, end
		p.centres[atPeak][k], p.centres[atEnd][k] = peak, end
	}
	firstSeasonal := len(c.centres) - len(c.seasonal) // the index of the first seasonal centre
	for t := range nTargets {
		best, challenger := -1, -1 // the best plain and the best seasonal candidate
		p.ref[t] = make([]float64, len(c.scores[t]))
		for k := range c.scores[t] {
			q, ok := c.quantileOf(t, k, refLevel)
			p.ref[t][k] = math.NaN()
			if !ok {
				continue
			}
			p.ref[t][k] = q
			if k/nUnits < firstSeasonal {
				if best < 0 || c.loss[t][k] < c.loss[t][best] {
					best = k
				}
			} else if challenger < 0 || c.loss[t][k] < c.loss[t][challenger] {
				challenger = k
			}
		}
		for st, k := range [nStrategies]int{plainStrategy: best, seasonalStrategy: challenger} {
			for i, lv := range strategyLevels {
				p.stratRef[t][st][i] = math.NaN()
				if k >= 0 {
					p.stratRef[t][st][i], _ = c.quantileOf(t, k, lv)
				}
			}
		}
		if best >= 0 && challenger >= 0 && c.seasonal[challenger/nUnits-firstSeasonal].seasoned() &&
			c.sLossW[t][seasonalStrategy] >= minStrategyWeight &&
			c.stratLoss(t, seasonalStrategy) < (1-challengeMargin)*c.stratLoss(t, plainStrategy) {
			best = challenger
		}
		c.best[t] = best
	}
	c.pending = append(c.pending, p)
}

// stratLoss is selection st's running mean loss for quantity t; +Inf
// before any outcome.
func (c *ConformalPeak) stratLoss(t, st int) float64 {
	if c.sLossW[t][st] == 0 {
		return math.Inf(1)
	}
	return c.sLoss[t][st] / c.sLossW[t][st]
}

// pinball is the quantile (pinball) loss of the level-p quantile q when y
// came: a proper scoring rule, lowest in expectation for the true quantile.
func pinball(y, q, p float64) float64 {
	if y > q {
		return p * (y - q)
	}
	return (1 - p) * (q - y)
}

// The score units a candidate may use.
const (
	unitSteady   = iota // the median absolute step of the last 64 samples (at least a quarter of their mean)
	unitRecent          // the mean absolute step of the last few samples
	unitRelative        // the centre itself: noise that grows with the level
	nUnits
)

// units returns the additive units now, each kept above zero on a flat
// series, and the recent one above a quarter of the steady one.
func (c *ConformalPeak) units() [nUnits]float64 {
	steady := max(c.scale, 1e-3*c.last, 1e-9)
	return [nUnits]float64{unitSteady: steady, unitRecent: max(c.recent, steady/4)}
}

// unitOf is candidate k's score unit.
func unitOf(k int, centre float64, units [nUnits]float64) float64 {
	if u := k % nUnits; u != unitRelative {
		return units[u]
	}
	return max(centre, units[unitSteady])
}

// Quantiles returns the p-quantiles of the demand at the end of the
// horizon and of its peak, each from the candidate with the tightest recent
// quantiles; never below 0, and the peak's never below the end's.
func (c *ConformalPeak) Quantiles(p float64) (end, peak float64, ok bool) {
	if c.best[atPeak] < 0 || c.best[atEnd] < 0 || !(p > 0 && p < 1) {
		return 0, 0, false
	}
	end, ok1 := c.quantileOf(atEnd, c.best[atEnd], p)
	peak, ok2 := c.quantileOf(atPeak, c.best[atPeak], p)
	end = max(end, 0)
	return end, max(peak, end), ok1 && ok2
}

// quantileOf is candidate k's p-quantile of quantity t: its centre plus the
// ceil((n+1)p)-th smallest of its n scores, in its unit.
func (c *ConformalPeak) quantileOf(t, k int, p float64) (float64, bool) {
	s := c.sorted[t][k]
	n := len(s)
	centre := c.now[t][k/nUnits]
	if n < c.cfg.MinScores || math.IsNaN(centre) {
		return 0, false
	}
	i := min(max(int(math.Ceil(float64(n+1)*p))-1, 0), n-1)
	return centre + s[i]*unitOf(k, centre, c.units()), true
}
