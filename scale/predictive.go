package scale

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Policy decides a replica count from a snapshot. HPA and Predictive are
// policies; a Policy may remember its past decisions.
type Policy interface {
	Decide(s Snapshot) Decision
}

// Observer is the optional ability of a policy to learn from each new
// measurement of demand (a forecaster's input). Callers feed it once per
// measurement, before the decisions that follow it.
type Observer interface {
	Observe(at time.Time, demand float64)
}

var (
	_ Policy   = (*HPA)(nil)
	_ Policy   = (*Predictive)(nil)
	_ Observer = (*Predictive)(nil)
)

// PredictiveConfig configures a Predictive policy.
type PredictiveConfig struct {
	// HPA is the reactive rule. One of its metrics, named by Demand, is an
	// External AverageValue metric of demand; its target is the demand per
	// replica the HPA aims for (below Capacity, for headroom).
	HPA    HPASpec
	Demand string
	// Capacity is the demand one replica serves at its limit, in the
	// Demand metric's unit.
	Capacity float64
	// Forecaster gives quantiles of the demand over the replicas' start-up
	// time and one sample interval after it.
	Forecaster PeakForecaster
	// Risk is the probability of demand above the provisioned capacity the
	// policy aims for when its budget allows (default DefaultRisk): the
	// quantiles' level never goes above 1-Risk.
	Risk float64
	// Interval is the time one demand measurement covers, over which the
	// budget is compared (default: the time since the previous one).
	Interval time.Duration
}

// DefaultRisk is PredictiveConfig.Risk's default: one interval in 500. The
// HPA's fixed headroom often buys fewer misses than one in a hundred (on
// calm series a tenth of that), and a policy that stopped at 1% would leave
// budget unspent there and miss more than the HPA; 0.998 is also about the
// highest level DefaultConformal's window of 576 scores resolves (its
// largest score).
const DefaultRisk = 0.002

// Predictive scales ahead of demand. It provisions for a quantile of the
// demand expected over the time a new replica needs to start (and one
// sample after), and never below the replicas the demand measured now needs
// (the HPA rule at full capacity).
//
// The quantile's level is set by a budget: the replicas the HPA itself
// would run, counted online by a shadow HPA fed the same measurements. At
// each forecast, the level (between 0.1 and 1-Risk) is the one whose count
// n maximises the probability of covering the demand minus a price × n:
// high where the forecast is sharp and a replica buys much coverage, lower
// where it is wide. An integral controller raises the price while
// Predictive runs more replicas than the shadow and lowers it while it runs
// fewer, and once Predictive has run more in total than the shadow, by
// more than a small overdraft, it asks for at most the shadow's count until
// it is back within it (see budget): the scale-down stabilisation window
// does not hold it above that, though the reactive floor, the scale-down
// rate policies and min_replicas may. The
// HPA buys safety with fixed headroom over the last measurement; Predictive
// spends the same, or less when 1-Risk is cheaper, where the forecast says
// the demand will be and where it buys the most. Until the forecaster
// vouches for its quantiles and the budget has been seen for a while, the
// forecast is unsure and Predictive is the HPA.
//
// Scaling down has hysteresis: the peak's quantile must fall below the
// current capacity by the scale-down tolerance, and the HPA's scale-down
// stabilisation window and rate policies apply to Predictive's proposals as
// to the HPA's. Not safe for concurrent use.
type Predictive struct {
	cfg    PredictiveConfig
	floor  HPASpec // the HPA with the demand target at full capacity
	hist   History
	budget *budget
}

// NewPredictive validates cfg and returns the policy.
func NewPredictive(cfg PredictiveConfig) (*Predictive, error) {
	if err := cfg.HPA.Validate(); err != nil {
		return nil, fmt.Errorf("predictive: hpa: %w", err)
	}
	if !(cfg.Capacity > 0) || math.IsInf(cfg.Capacity, 0) {
		return nil, fmt.Errorf("predictive: capacity %v: write the demand one replica serves, above 0", cfg.Capacity)
	}
	if cfg.Forecaster == nil {
		return nil, errors.New("predictive: a forecaster is required")
	}
	if cfg.Risk == 0 {
		cfg.Risk = DefaultRisk
	}
	if !(cfg.Risk > 0 && cfg.Risk <= 0.5) {
		return nil, fmt.Errorf("predictive: risk %v: write a probability above 0, at most 0.5, such as 0.002", cfg.Risk)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("predictive: interval %v: write 0 (the time between measurements) or more", cfg.Interval)
	}
	floor, shadow, err := derivedSpecs(cfg)
	if err != nil {
		return nil, err
	}
	p := &Predictive{cfg: cfg, floor: floor}
	p.budget = newBudget(shadow, cfg.Capacity, cfg.Risk)
	return p, nil
}

// derivedSpecs returns the floor (the HPA with its demand target at full
// capacity) and the shadow (the HPA on its demand metric alone).
func derivedSpecs(cfg PredictiveConfig) (floor, shadow HPASpec, err error) {
	floor, shadow = cfg.HPA, cfg.HPA
	floor.Metrics = slices.Clone(cfg.HPA.Metrics)
	shadow.Metrics = nil
	for i, m := range floor.Metrics {
		if m.Name != cfg.Demand {
			continue
		}
		if m.Source != SourceExternal || m.Target != AverageValue {
			return floor, shadow, fmt.Errorf("predictive: demand metric %q must be External with an AverageValue target", m.Name)
		}
		if m.Value > cfg.Capacity {
			return floor, shadow, fmt.Errorf("predictive: demand metric %q: target %v is above the capacity %v of a replica", m.Name, m.Value, cfg.Capacity)
		}
		floor.Metrics[i].Value = cfg.Capacity
		shadow.Metrics = []Metric{m}
	}
	if shadow.Metrics == nil {
		return floor, shadow, fmt.Errorf("predictive: demand metric %q is not among the HPA's metrics", cfg.Demand)
	}
	return floor, shadow, nil
}

// Observe feeds a demand measurement to the forecaster, and closes the
// budget's interval that ends with it.
func (p *Predictive) Observe(at time.Time, demand float64) {
	if math.IsNaN(demand) || math.IsInf(demand, 0) || demand < 0 {
		return
	}
	p.budget.close(at, p.cfg.Interval, demand)
	p.cfg.Forecaster.Observe(at, demand)
	p.budget.forecast(p.cfg.Forecaster)
}

// Price is the budget's price of a replica, in probability of being
// served bought per replica; 0 while the forecast is unsure and Predictive
// is the HPA.
func (p *Predictive) Price() float64 {
	if _, ok := p.budget.current(); !ok {
		return 0
	}
	return math.Exp(p.budget.logPrice)
}

// Decide proposes the larger of the forecast's count and the reactive
// floor, or the HPA's proposal when the forecast is unsure, then applies
// the HPA's stabilisation (lowered to the budget's cap, not below the
// proposal), rate policies and bounds.
func (p *Predictive) Decide(s Snapshot) Decision {
	p.budget.tick(s)
	h := p.hist.clone()
	d := p.decide(s, &h)
	if d.Replicas != s.Replicas {
		h.recordScale(p.cfg.HPA.Behavior, s.Now, s.Replicas, d.Replicas)
	}
	p.hist = h
	ready := 0
	for _, pod := range s.Pods {
		if pod.Phase == PodRunning && pod.Ready && !pod.Deleting {
			ready++
		}
	}
	p.budget.ran(s.Now, d.Replicas, min(ready, d.Replicas))
	return d
}

func (p *Predictive) decide(s Snapshot, h *History) Decision {
	c, sure := p.budget.current()
	if !sure {
		d := p.cfg.HPA.decide(s, h)
		d.Message = "forecast unsure, reactive: " + d.Message
		return d
	}
	spec := p.cfg.HPA
	h.start(s)
	switch {
	case s.Replicas == 0 && spec.MinReplicas != 0:
		return Decision{Replicas: 0, Reason: "ScalingDisabled", Message: "scaling is disabled since the replica count of the target is zero"}
	case s.Replicas > spec.MaxReplicas:
		return Decision{Replicas: spec.MaxReplicas, Proposal: spec.MaxReplicas, Reason: "TooManyReplicas", Message: "current number of replicas above max_replicas"}
	case s.Replicas < spec.MinReplicas:
		return Decision{Replicas: spec.MinReplicas, Proposal: spec.MinReplicas, Reason: "TooFewReplicas", Message: "current number of replicas below min_replicas"}
	}
	floor, metric, err := p.floor.proposeAll(s)
	if floor < 0 {
		return Decision{Replicas: s.Replicas, Reason: "FailedGetMetrics", Message: err.Error(), Err: err}
	}
	ceiling := p.budget.cap()
	want := min(p.forecastReplicas(c.up, c.hold, c.peak, s.Replicas), ceiling)
	proposed := max(floor, want)
	if want > floor {
		metric = "forecast"
	}
	d := spec.normalize(s, h, proposed, ceiling)
	d.Proposal, d.Metric, d.Err = proposed, metric, err
	d.Message = fmt.Sprintf("demand %.3g-quantile %.4g at the horizon, %.3g-quantile %.4g at its peak: %s", c.upLevel, c.end, c.holdLevel, c.peak, d.Message)
	return d
}

// forecastReplicas is the count the forecast asks of current replicas.
// Replicas added now serve only from the end of the horizon, so scaling up
// follows the count chosen for the demand there (up); replicas removed now
// cannot be replaced before the end, so scaling down keeps the count chosen
// for the peak (hold), and only once it is below the current count by the
// scale-down tolerance.
func (p *Predictive) forecastReplicas(up, hold int, peak float64, current int) int {
	switch {
	case up > current:
		return up
	case hold < current && peak < (1-p.cfg.HPA.Behavior.ScaleDown.Tolerance)*float64(current)*p.cfg.Capacity:
		return hold
	}
	return current
}
