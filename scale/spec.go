package scale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MetricSource says where a metric's value comes from, as the HPA's metric
// types do.
type MetricSource string

// Metric sources. Object metrics behave as External ones (one value for the
// whole target), so they share SourceExternal.
const (
	// SourceResource is a resource (cpu, memory) measured per pod. Its
	// Utilization target is a percent of the pod's request; "cpu" is the one
	// metric for which pods that are not ready are set aside.
	SourceResource MetricSource = "Resource"
	// SourcePods is any other metric measured per pod.
	SourcePods MetricSource = "Pods"
	// SourceExternal is one value for the whole target, such as the request
	// rate at its load balancer.
	SourceExternal MetricSource = "External"
)

// TargetType is how a metric's target is expressed.
type TargetType string

// Target types, as in autoscaling/v2.
const (
	// Utilization is a percent of the pods' requests (Resource only).
	Utilization TargetType = "Utilization"
	// AverageValue is the value wanted per pod.
	AverageValue TargetType = "AverageValue"
	// Value is the value wanted in total (External only).
	Value TargetType = "Value"
)

// Metric is one metric the HPA scales on, with its target.
type Metric struct {
	Name   string       `json:"name" yaml:"name"`
	Source MetricSource `json:"source" yaml:"source"`
	Target TargetType   `json:"target" yaml:"target"`
	// Value is the target: a percent for Utilization, the value per pod for
	// AverageValue, the total for Value.
	Value float64 `json:"value" yaml:"value"`
}

// PolicyType is the unit of a scaling policy.
type PolicyType string

// Policy types.
const (
	PodsPolicy    PolicyType = "Pods"    // at most Value pods per period
	PercentPolicy PolicyType = "Percent" // at most Value percent of the pods per period
)

// RatePolicy bounds how fast the replica count may change in one direction:
// by Value (pods or percent) within any Period.
type RatePolicy struct {
	Type   PolicyType    `json:"type" yaml:"type"`
	Value  int           `json:"value" yaml:"value"`
	Period time.Duration `json:"period" yaml:"period"`
}

// SelectPolicy chooses among several policies.
type SelectPolicy string

// Policy selections. The empty value means Max, as in Kubernetes.
const (
	SelectMax      SelectPolicy = "Max"      // the policy allowing the largest change
	SelectMin      SelectPolicy = "Min"      // the policy allowing the smallest change
	SelectDisabled SelectPolicy = "Disabled" // no change in this direction
)

// Rules govern scaling in one direction.
type Rules struct {
	// StabilizationWindow: scaling up follows the lowest recommendation of
	// this window, scaling down the highest.
	StabilizationWindow time.Duration `json:"stabilization_window" yaml:"stabilization_window"`
	SelectPolicy        SelectPolicy  `json:"select_policy" yaml:"select_policy"`
	Policies            []RatePolicy  `json:"policies" yaml:"policies"`
	// Tolerance: no change is proposed while the usage ratio stays within
	// this fraction of 1 on this side (Kubernetes' configurable tolerance;
	// 0.1, the controller's default, in DefaultHPA).
	Tolerance float64 `json:"tolerance" yaml:"tolerance"`
}

// Behavior holds the rules of both directions.
type Behavior struct {
	ScaleUp   Rules `json:"scale_up" yaml:"scale_up"`
	ScaleDown Rules `json:"scale_down" yaml:"scale_down"`
}

// HPASpec is a Horizontal Pod Autoscaler: the same fields and the same
// meaning as autoscaling/v2's spec, with durations for seconds.
type HPASpec struct {
	MinReplicas int      `json:"min_replicas" yaml:"min_replicas"`
	MaxReplicas int      `json:"max_replicas" yaml:"max_replicas"`
	Metrics     []Metric `json:"metrics" yaml:"metrics"`
	Behavior    Behavior `json:"behavior" yaml:"behavior"`
}

// DefaultTolerance is the Kubernetes controller's default tolerance.
const DefaultTolerance = 0.1

// DefaultBehavior is what Kubernetes applies to an HPA that gives no
// behavior: scale up at once by at most max(4 pods, 100%) per 15 s; scale
// down to the highest recommendation of the last 5 minutes, by at most 100%
// per 15 s.
func DefaultBehavior() Behavior {
	return Behavior{
		ScaleUp: Rules{
			SelectPolicy: SelectMax,
			Policies: []RatePolicy{
				{Type: PodsPolicy, Value: 4, Period: 15 * time.Second},
				{Type: PercentPolicy, Value: 100, Period: 15 * time.Second},
			},
			Tolerance: DefaultTolerance,
		},
		ScaleDown: Rules{
			StabilizationWindow: 300 * time.Second,
			SelectPolicy:        SelectMax,
			Policies:            []RatePolicy{{Type: PercentPolicy, Value: 100, Period: 15 * time.Second}},
			Tolerance:           DefaultTolerance,
		},
	}
}

// DefaultHPA returns a spec with Kubernetes' defaults (min 1 replica, the
// default behavior) for the given maximum and metrics.
func DefaultHPA(maxReplicas int, metrics ...Metric) HPASpec {
	return HPASpec{MinReplicas: 1, MaxReplicas: maxReplicas, Metrics: metrics, Behavior: DefaultBehavior()}
}

// Validate reports the first thing wrong with s, naming the field and what
// to write instead. It accepts what the Kubernetes API server accepts, plus
// MinReplicas 0 (scale to zero needs an External metric there too).
func (s HPASpec) Validate() error {
	if s.MinReplicas < 0 {
		return fmt.Errorf("min_replicas %d: write 0 or more", s.MinReplicas)
	}
	if s.MaxReplicas < 1 || s.MaxReplicas < s.MinReplicas {
		return fmt.Errorf("max_replicas %d: write at least 1 and at least min_replicas (%d)", s.MaxReplicas, s.MinReplicas)
	}
	if len(s.Metrics) == 0 {
		return errors.New("metrics: give at least one metric to scale on")
	}
	names := map[string]bool{}
	for i, m := range s.Metrics {
		if err := m.validate(); err != nil {
			return fmt.Errorf("metrics[%d]: %w", i, err)
		}
		if names[m.Name] {
			return fmt.Errorf("metrics[%d]: metric %q is listed twice", i, m.Name)
		}
		names[m.Name] = true
	}
	if s.MinReplicas == 0 && !hasExternal(s.Metrics) {
		return errors.New("min_replicas 0: scaling to zero needs an External metric (pods' own metrics vanish with them)")
	}
	if err := s.Behavior.ScaleUp.validate(); err != nil {
		return fmt.Errorf("behavior.scale_up: %w", err)
	}
	if err := s.Behavior.ScaleDown.validate(); err != nil {
		return fmt.Errorf("behavior.scale_down: %w", err)
	}
	return nil
}

func hasExternal(ms []Metric) bool {
	for _, m := range ms {
		if m.Source == SourceExternal {
			return true
		}
	}
	return false
}

func (m Metric) validate() error {
	if m.Name == "" {
		return errors.New("name: give the metric's name")
	}
	if !(m.Value > 0) || math.IsInf(m.Value, 0) {
		return fmt.Errorf("metric %q: value %v: write a target above 0", m.Name, m.Value)
	}
	ok := false
	switch m.Source {
	case SourceResource:
		ok = m.Target == Utilization || m.Target == AverageValue
	case SourcePods:
		ok = m.Target == AverageValue
	case SourceExternal:
		ok = m.Target == Value || m.Target == AverageValue
	default:
		return fmt.Errorf("metric %q: source %q: write Resource, Pods or External", m.Name, m.Source)
	}
	if !ok {
		return fmt.Errorf("metric %q: a %s metric cannot have a %q target (Resource: Utilization or AverageValue; Pods: AverageValue; External: Value or AverageValue)", m.Name, m.Source, m.Target)
	}
	return nil
}

func (r Rules) validate() error {
	if r.StabilizationWindow < 0 || r.StabilizationWindow > time.Hour {
		return fmt.Errorf("stabilization_window %v: write 0 to 1h", r.StabilizationWindow)
	}
	if !(r.Tolerance >= 0) || r.Tolerance >= 1 {
		return fmt.Errorf("tolerance %v: write a fraction from 0 to below 1, such as 0.1", r.Tolerance)
	}
	switch r.SelectPolicy {
	case "", SelectMax, SelectMin:
	case SelectDisabled:
		return nil
	default:
		return fmt.Errorf("select_policy %q: write Max, Min or Disabled", r.SelectPolicy)
	}
	if len(r.Policies) == 0 {
		return errors.New("policies: give at least one policy, or select_policy Disabled")
	}
	for i, p := range r.Policies {
		if p.Type != PodsPolicy && p.Type != PercentPolicy {
			return fmt.Errorf("policies[%d].type %q: write Pods or Percent", i, p.Type)
		}
		if p.Value <= 0 {
			return fmt.Errorf("policies[%d].value %d: write a number above 0", i, p.Value)
		}
		if p.Period <= 0 || p.Period > 30*time.Minute {
			return fmt.Errorf("policies[%d].period %v: write more than 0, at most 30m", i, p.Period)
		}
	}
	return nil
}

// longestPeriod is how long scale events matter to r's policies.
func (r Rules) longestPeriod() time.Duration {
	var d time.Duration
	for _, p := range r.Policies {
		d = max(d, p.Period)
	}
	return d
}

// within reports whether a usage ratio is close enough to 1 to change
// nothing (Kubernetes' tolerances.isWithin).
func (b Behavior) within(ratio float64) bool {
	return 1-b.ScaleDown.Tolerance <= ratio && ratio <= 1+b.ScaleUp.Tolerance
}
