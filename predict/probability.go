package predict

import (
	"math"
	"time"

	"github.com/phoenixsre/phoenix"
	"gonum.org/v1/gonum/stat/distuv"
)

// gridSteps is the number of lead times in (0, Horizon] at which the
// probability of being at or over a limit is evaluated; the signal's
// probability is the largest. Thirty steps is one per second at the default
// horizon, fine enough for a smooth forecast distribution.
const gridSteps = 30

// signalEval is one signal's verdict with what Risk needs besides the
// exported SignalRisk: the probability's bounds and whether the point
// forecast crosses (CrossIn alone cannot say "now").
type signalEval struct {
	risk         phoenix.SignalRisk
	lower, upper float64
	crosses      bool
}

// evaluate computes P(the signal reaches limit within the horizon from now),
// or explains why it is 0 (no data, stale data, too few points) or 1 (the
// two newest values are at or over the limit). One value over the limit is
// not yet a certainty: a latency series spikes past its limit for a scrape
// when the host is busy for a moment, and a certain failure switches
// traffic pre-emptively; it is forecast like any other, and the next
// sample over the limit confirms it.
func (e *Engine) evaluate(sig phoenix.Signal, limit float64, s *series, now time.Time) signalEval {
	ev := signalEval{risk: phoenix.SignalRisk{Signal: sig, Limit: limit}}
	if s == nil {
		ev.risk.Reason = noData(sig)
		return ev
	}
	ev.risk.Value = s.value
	ev.risk.Forecast, ev.risk.ForecastLow, ev.risk.ForecastHigh = s.value, s.value, s.value
	base := max(now.Sub(s.last), 0) // the forecaster counts lead times from its newest point
	switch {
	case base > e.cfg.Window:
		ev.risk.Reason = stale(sig, base)
		return ev
	case s.value >= limit && s.hasPrev && s.prev >= limit:
		ev.risk.Probability, ev.lower, ev.upper, ev.crosses = 1, 1, 1, true
		ev.risk.Reason = overLimit(sig, s.value, limit)
		return ev
	}
	if sz, ok := s.f.(Sizer); ok && sz.Len() < e.cfg.MinPoints {
		ev.risk.Reason = tooFewPoints(sig, s.value, sz.Len(), e.cfg.MinPoints, e.cfg.Window)
		return ev
	}
	f0, ok := s.f.Forecast(base)
	if !ok {
		ev.risk.Reason = noForecast(sig, s.value)
		return ev
	}
	fH := e.scan(&ev, s.f, limit, base, f0)
	ev.risk.Forecast, ev.risk.ForecastLow, ev.risk.ForecastHigh = finite(fH.Mean), finite(fH.Lo), finite(fH.Hi)
	ev.risk.Reason = trendReason(sig, s.value, limit, (fH.Mean-f0.Mean)/e.cfg.Horizon.Seconds(), ev, e.cfg.Horizon)
	return ev
}

// scan walks the lead times h of the grid and sets ev's probability to the
// largest P(X_h >= limit), its bounds to the same with the trend at the
// bounds of its confidence interval (widened to contain the probability: the
// point probability integrates over the trend's uncertainty, the bounds fix
// the trend, and the two need not nest), and CrossIn to when the point
// forecast reaches the limit, interpolated between grid steps. f0 is the
// forecast at now; scan returns the one at the horizon.
func (e *Engine) scan(ev *signalEval, f Forecaster, limit float64, base time.Duration, f0 Forecast) Forecast {
	tb, hasBounds := f.(TrendBounder)
	prevH, prevMean, fH := time.Duration(0), f0.Mean, f0
	crossAt := time.Duration(-1)
	if f0.Mean >= limit {
		crossAt = 0
	}
	for k := int64(1); k <= gridSteps; k++ {
		h := time.Duration(int64(e.cfg.Horizon) * k / gridSteps)
		fh, ok := f.Forecast(base + h)
		if !ok {
			break
		}
		p := tail(limit, fh)
		lo, hi := p, p
		if hasBounds {
			if fl, fu, ok := tb.TrendBounds(base + h); ok {
				lo, hi = tail(limit, fl), tail(limit, fu)
			}
		}
		ev.risk.Probability = max(ev.risk.Probability, p)
		ev.lower, ev.upper = max(ev.lower, lo), max(ev.upper, hi)
		if crossAt < 0 && fh.Mean >= limit {
			frac := (limit - prevMean) / (fh.Mean - prevMean)
			crossAt = prevH + time.Duration(frac*float64(h-prevH))
		}
		prevH, prevMean, fH = h, fh.Mean, fh
	}
	ev.lower = min(ev.lower, ev.risk.Probability)
	ev.upper = max(ev.upper, ev.risk.Probability)
	ev.crosses = crossAt >= 0
	ev.risk.CrossIn = max(crossAt, 0)
	return fH
}

// tail is P(X >= limit) under the forecast distribution: Student t with
// f.DF degrees of freedom, normal when DF is 0. A zero (or unusable) Sigma
// makes it a step at the limit, so it is never NaN.
func tail(limit float64, f Forecast) float64 {
	if math.IsNaN(f.Mean) {
		return 0
	}
	if !(f.Sigma > 0) || math.IsInf(f.Sigma, 0) {
		if f.Mean >= limit {
			return 1
		}
		return 0
	}
	z := (limit - f.Mean) / f.Sigma
	if f.DF > 0 {
		return clamp01(distuv.StudentsT{Mu: 0, Sigma: 1, Nu: f.DF}.Survival(z))
	}
	return clamp01(0.5 * math.Erfc(z/math.Sqrt2))
}

// finite maps NaN to 0 and infinities to the largest float, since a Risk is
// encoded as JSON and JSON has neither.
func finite(v float64) float64 {
	switch {
	case math.IsNaN(v):
		return 0
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}
