package predict

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Engine keeps per-component forecasters and limits and computes Risks. It
// is safe for concurrent use: the scraper observes while the control loop
// asks for risks.
type Engine struct {
	cfg Config

	mu    sync.Mutex
	comps map[phoenix.ComponentID]*component
}

type component struct {
	limits Limits
	series map[phoenix.Signal]*series
	behave *behaviour
}

// series is one signal of one component: its forecaster and its newest
// point, which is the "value" of a SignalRisk and the base of lead times.
type series struct {
	f     Forecaster
	last  time.Time
	value float64
	// prev is the value before the newest, if hasPrev: a limit reached by
	// two samples in a row is a failure under way, by one a spike.
	prev    float64
	hasPrev bool
}

// NewEngine returns an Engine; cfg's zero (and invalid) fields take their
// defaults, so call cfg.Validate first to report mistakes.
func NewEngine(cfg Config) *Engine {
	return &Engine{cfg: cfg.withDefaults(), comps: make(map[phoenix.ComponentID]*component)}
}

func (e *Engine) component(c phoenix.ComponentID) *component {
	comp, ok := e.comps[c]
	if !ok {
		comp = &component{series: make(map[phoenix.Signal]*series)}
		e.comps[c] = comp
	}
	return comp
}

// SetLimits replaces the limits of a component; non-finite limits are
// ignored, and an empty set means the component cannot fail (probability 0).
func (e *Engine) SetLimits(c phoenix.ComponentID, l Limits) {
	kept := make(Limits, len(l))
	for s, v := range l {
		if isFinite(v) {
			kept[s] = v
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.component(c).limits = kept
}

// Observe feeds the values a component reported at time at. Signals
// without a limit are kept too, so a limit set later has history. Non-finite
// values and points older than a series' newest are dropped.
func (e *Engine) Observe(c phoenix.ComponentID, at time.Time, values map[phoenix.Signal]float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	comp := e.component(c)
	for sig, v := range values {
		if !isFinite(v) {
			continue
		}
		s, ok := comp.series[sig]
		if !ok {
			s = &series{f: e.cfg.NewForecaster()}
			comp.series[sig] = s
		}
		if at.Before(s.last) {
			continue
		}
		s.f.Observe(at, v)
		if !s.last.IsZero() {
			s.prev, s.hasPrev = s.value, true
		}
		s.last, s.value = at, v
	}
	if len(comp.limits) > 0 {
		if comp.behave == nil {
			comp.behave = newBehaviour(c)
		}
		comp.behave.observe(comp.limits, values)
	}
}

// Reset forgets a component's series (its instance was replaced, and the old
// instance's trend says nothing about the new one). Its limits stay.
func (e *Engine) Reset(c phoenix.ComponentID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if comp, ok := e.comps[c]; ok {
		clear(comp.series)
		comp.behave = nil
	}
}

// Risk is the component's risk at now. Signals are taken as independent:
// P = 1 - Π(1 - p_i), and the same for the bounds. That overstates the risk
// when signals move together (memory and latency often do), which errs on
// the side of preparing a replica. LeadTime is the earliest time a point
// forecast reaches its limit, zero if none does within the horizon (or one
// is over it already, when the probability is 1).
func (e *Engine) Risk(c phoenix.ComponentID, now time.Time) phoenix.Risk {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := phoenix.Risk{Component: c, At: now, Horizon: e.cfg.Horizon}
	comp, ok := e.comps[c]
	if !ok {
		return r
	}
	var evals []signalEval
	for sig, limit := range comp.limits {
		evals = append(evals, e.evaluate(sig, limit, comp.series[sig], now))
	}
	slices.SortFunc(evals, func(a, b signalEval) int {
		if c := cmp.Compare(b.risk.Probability, a.risk.Probability); c != 0 {
			return c
		}
		return cmp.Compare(a.risk.Signal, b.risk.Signal)
	})
	pNone, loNone, hiNone := 1.0, 1.0, 1.0
	lead := time.Duration(-1)
	for _, ev := range evals {
		pNone *= 1 - ev.risk.Probability
		loNone *= 1 - ev.lower
		hiNone *= 1 - ev.upper
		if ev.crosses && (lead < 0 || ev.risk.CrossIn < lead) {
			lead = ev.risk.CrossIn
		}
		r.Signals = append(r.Signals, ev.risk)
	}
	r.Probability = clamp01(1 - pNone)
	r.Lower = min(clamp01(1-loNone), r.Probability)
	r.Upper = max(clamp01(1-hiNone), r.Probability)
	// The anomaly likelihood L of the component's behaviour moves the
	// probability from the trend's central estimate towards its pessimistic
	// bound: when a component behaves as it never has, the worse end of
	// what its trends allow is the likelier. It never raises the lower
	// bound, so a pre-emptive switch still needs the trends' own certainty.
	if l := comp.behave.likelihood(); l > 0 {
		r.Probability += l * (r.Upper - r.Probability)
		if len(r.Signals) > 0 && l >= 0.99 {
			r.Signals[0].Reason += fmt.Sprintf("; behaviour anomalous (likelihood %s)", formatPercent(l))
		}
	}
	r.LeadTime = max(lead, 0)
	return r
}

func clamp01(p float64) float64 {
	if !(p > 0) { // also NaN
		return 0
	}
	return math.Min(p, 1)
}
