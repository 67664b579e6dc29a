package scale

import (
	"fmt"
	"math"
	"time"
)

// The policies "phoenix eval scale" compares.
const (
	PolicyHPA        = "hpa"
	PolicyPredictive = "predictive"
)

// EvalConfig sets up the policies of a replay.
type EvalConfig struct {
	Model
	// Target is the HPA's target utilisation of a replica's capacity, 0 to
	// 1: the HPA aims for Target × PerReplica demand per replica.
	Target float64
	// Risk is the predictive policy's target probability that the peak
	// demand exceeds its bound.
	Risk float64
}

// Defaults of EvalConfig.
const (
	// DefaultTarget leaves a fifth of each replica's capacity as headroom,
	// a common production setting for a request-rate target.
	DefaultTarget = 0.8
	// evalMaxReplicas is both policies' ceiling in a replay, far above
	// the replicasAtMedian = 10 the derived capacity gives typical demand,
	// so that the comparison is of the policies rather than of a cap. It
	// can bind on a series whose spikes are 10,000 times its first day's
	// median (NAB's ec2_network_in_5abac7 is); the replay counts such
	// samples (Result.CeilingSamples) and "phoenix eval scale" warns of
	// them. It is not higher because the replay simulates each replica.
	evalMaxReplicas = 100_000
	demandMetric    = "demand"
)

// EvalPolicy builds the named policy for a replay under cfg. Both policies
// share the HPA: Kubernetes' default behavior and tolerance, an External
// AverageValue demand target of Target × PerReplica, at least 1 replica.
func EvalPolicy(name string, cfg EvalConfig) (Policy, error) {
	if err := cfg.Model.Validate(); err != nil {
		return nil, err
	}
	if !(cfg.Target > 0 && cfg.Target <= 1) {
		return nil, fmt.Errorf("target %v: write a utilisation above 0, at most 1", cfg.Target)
	}
	spec := DefaultHPA(evalMaxReplicas, Metric{Name: demandMetric, Source: SourceExternal, Target: AverageValue, Value: cfg.Target * cfg.PerReplica})
	switch name {
	case PolicyHPA:
		return NewHPA(spec)
	case PolicyPredictive:
		f, err := NewConformalPeak(DefaultConformal(horizonSteps(cfg.Model)))
		if err != nil {
			return nil, err
		}
		return NewPredictive(PredictiveConfig{HPA: spec, Demand: demandMetric, Capacity: cfg.PerReplica, Forecaster: f, Risk: cfg.Risk, Interval: cfg.Interval})
	}
	return nil, fmt.Errorf("policy %q: write %s or %s", name, PolicyHPA, PolicyPredictive)
}

// horizonSteps is the horizon a scaler must see ahead, in samples: what
// it removes now is gone at the next sample, and what it adds serves after
// Startup, so its decision now must hold for one interval plus Startup.
func horizonSteps(m Model) int {
	return 1 + int(math.Ceil(float64(m.Startup)/float64(m.Interval)-1e-9))
}

// ReplayConfigFor is the replay set-up that matches EvalPolicy.
func ReplayConfigFor(m Model) ReplayConfig {
	return ReplayConfig{Model: m, Sync: 15 * time.Second, Demand: demandMetric, MaxReplicas: evalMaxReplicas}
}
