package scale

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Decision is what an autoscaler asks for at one moment, and why.
type Decision struct {
	// Replicas is the replica count to set; equal to the snapshot's when
	// nothing changes.
	Replicas int
	// Proposal is the count the metrics asked for, before stabilisation and
	// rate limits; 0 when no metric could be read.
	Proposal int
	// Metric names the metric (or rule) behind Proposal.
	Metric string
	// Reason is Kubernetes' condition reason for what limited the decision:
	// DesiredWithinRange, ScaleUpLimit, ScaleDownLimit, TooManyReplicas,
	// TooFewReplicas, ScaleUpStabilized, ScaleDownStabilized, ...
	Reason string
	// Message says it for people.
	Message string
	// Err is set when a metric could not be read; the decision is still
	// usable (it keeps the count when no valid metric asks for more).
	Err error
}

// Change reports whether the decision changes the replica count of s.
func (d Decision) Change(s Snapshot) bool { return d.Replicas != s.Replicas }

// History is what the HPA remembers between decisions: its recent
// unstabilised recommendations and the scale events its rate policies
// count. The zero History is a controller that has just started.
type History struct {
	Recommendations []Recommendation
	ScaleUps        []ScaleEvent
	ScaleDowns      []ScaleEvent
}

// Recommendation is one unstabilised recommendation with its time.
type Recommendation struct {
	At       time.Time
	Replicas int
}

// ScaleEvent is a change of the replica count by Change (positive) at At.
type ScaleEvent struct {
	At     time.Time
	Change int
}

func (h History) clone() History {
	return History{
		Recommendations: slices.Clone(h.Recommendations),
		ScaleUps:        slices.Clone(h.ScaleUps),
		ScaleDowns:      slices.Clone(h.ScaleDowns),
	}
}

// Decide is one reconciliation of the Kubernetes HPA controller
// (reconcileAutoscaler): the metrics' proposal, then stabilisation, then the
// rate policies and the bounds. It returns the decision and the history
// after it, assuming the decision is carried out; s and h are not modified.
func (spec HPASpec) Decide(s Snapshot, h History) (Decision, History) {
	h = h.clone()
	d := spec.decide(s, &h)
	if d.Replicas != s.Replicas {
		h.recordScale(spec.Behavior, s.Now, s.Replicas, d.Replicas)
	}
	return d, h
}

func (spec HPASpec) decide(s Snapshot, h *History) Decision {
	h.start(s)
	switch {
	case s.Replicas == 0 && spec.MinReplicas != 0:
		return Decision{Replicas: 0, Reason: "ScalingDisabled", Message: "scaling is disabled since the replica count of the target is zero"}
	case s.Replicas > spec.MaxReplicas:
		return Decision{Replicas: spec.MaxReplicas, Proposal: spec.MaxReplicas, Reason: "TooManyReplicas", Message: "current number of replicas above max_replicas"}
	case s.Replicas < spec.MinReplicas:
		return Decision{Replicas: spec.MinReplicas, Proposal: spec.MinReplicas, Reason: "TooFewReplicas", Message: "current number of replicas below min_replicas"}
	}
	proposed, metric, err := spec.proposeAll(s)
	if proposed < 0 {
		return Decision{Replicas: s.Replicas, Reason: "FailedGetMetrics", Message: err.Error(), Err: err}
	}
	d := spec.normalize(s, h, proposed, math.MaxInt)
	d.Proposal, d.Metric, d.Err = proposed, metric, err
	return d
}

// start is recordInitialRecommendation: a controller that just started
// counts the current size as a recent recommendation, so that it does not
// scale down at once.
func (h *History) start(s Snapshot) {
	if len(h.Recommendations) == 0 {
		h.Recommendations = []Recommendation{{At: s.Now, Replicas: s.Replicas}}
	}
}

// proposeAll is computeReplicasForMetrics: the largest proposal of the
// metrics that can be read. It returns -1 when none can, or when some
// cannot and the others would scale down (a missing metric must not shrink
// the target).
func (spec HPASpec) proposeAll(s Snapshot) (int, string, error) {
	best, metric := 0, ""
	var errs []error
	for _, m := range spec.Metrics {
		p, err := propose(s, m, spec.Behavior)
		if err != nil {
			errs = append(errs, fmt.Errorf("metric %q: %w", m.Name, err))
			continue
		}
		if best == 0 || p.replicas > best {
			best, metric = p.replicas, m.Name
		}
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("invalid metrics (%d invalid out of %d): %w", len(errs), len(spec.Metrics), errors.Join(errs...))
	}
	if len(errs) == len(spec.Metrics) || (len(errs) > 0 && best < s.Replicas) {
		return -1, "", err
	}
	return best, metric, err
}

// normalize is normalizeDesiredReplicasWithBehaviors: stabilise the
// proposal over the windows, then bound it by the rate policies and
// min/max. It records the proposal in h. A stabilised count above ceiling
// and above the proposal is lowered to the higher of the two (the HPA
// passes math.MaxInt; Predictive its budget's cap, so that the scale-down
// window does not hold replicas the budget cannot pay for); it is never
// raised.
func (spec HPASpec) normalize(s Snapshot, h *History, proposed, ceiling int) Decision {
	stable := h.stabilize(spec.Behavior, s.Now, s.Replicas, proposed)
	capped := false
	if c := max(ceiling, proposed); stable > c {
		stable, capped = c, true
	}
	limited, reason, msg := h.limitRate(spec, s.Now, s.Replicas, stable)
	d := Decision{Replicas: limited, Reason: reason, Message: msg}
	switch {
	case limited != stable: // the rate policies' or the bounds' reason stands
	case capped:
		d.Reason = "BudgetLimited"
		d.Message = "recent recommendations were higher, but the budget affords no more than the ceiling"
	case stable == proposed: // nothing held the proposal back
	case proposed >= s.Replicas:
		d.Reason = "ScaleUpStabilized"
		d.Message = "recent recommendations were lower than current one, applying the lowest recent recommendation"
	default:
		d.Reason = "ScaleDownStabilized"
		d.Message = "recent recommendations were higher than current one, applying the highest recent recommendation"
	}
	return d
}

// stabilize is stabilizeRecommendationWithBehaviors: the proposal, raised to
// the lowest recommendation of the scale-up window and lowered to the
// highest of the scale-down window, starting from the current count. The
// proposal is recorded, replacing one older than both windows.
func (h *History) stabilize(b Behavior, now time.Time, current, proposed int) int {
	upCut := now.Add(-b.ScaleUp.StabilizationWindow)
	downCut := now.Add(-b.ScaleDown.StabilizationWindow)
	up, down := proposed, proposed
	old := -1
	for i, r := range h.Recommendations {
		if r.At.After(upCut) {
			up = min(up, r.Replicas)
		}
		if r.At.After(downCut) {
			down = max(down, r.Replicas)
		}
		if r.At.Before(upCut) && r.At.Before(downCut) {
			old = i
		}
	}
	rec := max(current, up)
	rec = min(rec, down)
	if old >= 0 {
		h.Recommendations[old] = Recommendation{At: now, Replicas: proposed}
	} else {
		h.Recommendations = append(h.Recommendations, Recommendation{At: now, Replicas: proposed})
	}
	return rec
}

// limitRate is convertDesiredReplicasWithBehaviorRate: the rate policies'
// limit and min/max.
func (h *History) limitRate(spec HPASpec, now time.Time, current, desired int) (int, string, string) {
	switch {
	case desired > current:
		limit := max(scaleUpLimit(current, h.ScaleUps, h.ScaleDowns, spec.Behavior.ScaleUp, now), current)
		top, reason, msg := spec.MaxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if top > limit {
			top, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > top {
			return top, reason, msg
		}
	case desired < current:
		limit := min(scaleDownLimit(current, h.ScaleUps, h.ScaleDowns, spec.Behavior.ScaleDown, now), current)
		bottom, reason, msg := spec.MinReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if bottom < limit {
			bottom, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < bottom {
			return bottom, reason, msg
		}
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// scaleUpLimit is calculateScaleUpLimitWithScalingRules: the most replicas
// the policies allow now, counted from the start of each policy's period.
func scaleUpLimit(current int, ups, downs []ScaleEvent, r Rules, now time.Time) int {
	if r.SelectPolicy == SelectDisabled {
		return current
	}
	pick, result := maxInt, math.MinInt32
	if r.SelectPolicy == SelectMin {
		pick, result = minInt, math.MaxInt32
	}
	for _, p := range r.Policies {
		start := current - changeWithin(ups, p.Period, now) + changeWithin(downs, p.Period, now)
		var proposed int
		if p.Type == PodsPolicy {
			proposed = start + p.Value
		} else {
			// Rounded up, or a small target could never grow.
			proposed = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is calculateScaleDownLimitWithBehaviors: the fewest
// replicas the policies allow now.
func scaleDownLimit(current int, ups, downs []ScaleEvent, r Rules, now time.Time) int {
	if r.SelectPolicy == SelectDisabled {
		return current
	}
	pick, result := minInt, math.MaxInt32
	if r.SelectPolicy == SelectMin {
		pick, result = maxInt, math.MinInt32
	}
	for _, p := range r.Policies {
		start := current - changeWithin(ups, p.Period, now) + changeWithin(downs, p.Period, now)
		var proposed int
		if p.Type == PodsPolicy {
			proposed = start - p.Value
		} else {
			proposed = int(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

func minInt(a, b int) int { return min(a, b) }
func maxInt(a, b int) int { return max(a, b) }

// changeWithin is getReplicasChangePerPeriod: the replicas changed by the
// events of the last period.
func changeWithin(events []ScaleEvent, period time.Duration, now time.Time) int {
	cut := now.Add(-period)
	n := 0
	for _, e := range events {
		if e.At.After(cut) {
			n += e.Change
		}
	}
	return n
}

// recordScale is storeScaleEvent: remember a change for the rate policies,
// reusing the slot of an event older than the longest period.
func (h *History) recordScale(b Behavior, now time.Time, from, to int) {
	events, rules, change := &h.ScaleUps, b.ScaleUp, to-from
	if to < from {
		events, rules, change = &h.ScaleDowns, b.ScaleDown, from-to
	}
	cut := now.Add(-rules.longestPeriod())
	ev := ScaleEvent{At: now, Change: change}
	for i, e := range *events {
		if !e.At.After(cut) {
			(*events)[i] = ev
			return
		}
	}
	*events = append(*events, ev)
}

// HPA is a Horizontal Pod Autoscaler with its memory: Decide reads a
// snapshot and returns the decision, remembering it as carried out. It is
// not safe for concurrent use.
type HPA struct {
	Spec    HPASpec
	History History
}

// NewHPA validates spec and returns an autoscaler with an empty history.
func NewHPA(spec HPASpec) (*HPA, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("hpa: %w", err)
	}
	return &HPA{Spec: spec}, nil
}

// Decide decides for s and remembers the decision.
func (a *HPA) Decide(s Snapshot) Decision {
	d, h := a.Spec.Decide(s, a.History)
	a.History = h
	return d
}
