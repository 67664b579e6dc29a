package scale

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pods returns n running, ready pods reporting v for metric name (no value
// where v is NaN-free negative: use missing instead).
func pods(name string, vals ...float64) []Pod {
	out := make([]Pod, len(vals))
	for i, v := range vals {
		out[i] = Pod{Name: fmt.Sprintf("p%d", i), Phase: PodRunning, Ready: true, Values: map[string]float64{name: v}, Requests: map[string]float64{name: 100}}
	}
	return out
}

func missing(n int) []Pod {
	out := make([]Pod, n)
	for i := range out {
		out[i] = Pod{Name: fmt.Sprintf("m%d", i), Phase: PodRunning, Ready: true, Requests: map[string]float64{"cpu": 100, "packets": 100}}
	}
	return out
}

func unready(name string, n int, v float64) []Pod {
	out := make([]Pod, n)
	for i := range out {
		out[i] = Pod{Name: fmt.Sprintf("u%d", i), Phase: PodRunning, Ready: false, Values: map[string]float64{name: v}, Requests: map[string]float64{name: 100}}
	}
	return out
}

func join(ps ...[]Pod) []Pod {
	var out []Pod
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

func snap(replicas int, ps []Pod) Snapshot {
	return Snapshot{Now: t0, Replicas: replicas, StatusReplicas: replicas, Pods: ps}
}

var (
	packets = Metric{Name: "packets", Source: SourcePods, Target: AverageValue, Value: 100}
	cpuUtil = Metric{Name: "cpu", Source: SourceResource, Target: Utilization, Value: 50}
	reqs    = Metric{Name: "requests", Source: SourceExternal, Target: AverageValue, Value: 100}
	queue   = Metric{Name: "queue", Source: SourceExternal, Target: Value, Value: 100}
)

// noWindow is the default behavior without the scale-down window, so that
// one decision shows the metric's proposal.
func noWindow() Behavior {
	b := DefaultBehavior()
	b.ScaleDown.StabilizationWindow = 0
	return b
}

// TestProposal checks the replica calculation against the algorithm of the
// Kubernetes documentation ("Algorithm details"), one decision each.
func TestProposal(t *testing.T) {
	tests := []struct {
		name   string
		metric Metric
		s      Snapshot
		want   int
		reason string
	}{
		// "if the current metric value is 200m, and the desired value is
		// 100m, the number of replicas will be doubled"
		{"doubled", packets, snap(2, pods("packets", 200, 200)), 4, "DesiredWithinRange"},
		// "If the current value is instead 50m, you'll halve the number of
		// replicas"
		{"halved", packets, snap(4, pods("packets", 50, 50, 50, 50)), 2, "DesiredWithinRange"},
		// "the control plane skips any scaling action if the ratio is
		// sufficiently close to 1.0 (within a configurable tolerance, 0.1
		// by default)"
		{"within tolerance up", packets, snap(3, pods("packets", 109, 109, 109)), 3, "DesiredWithinRange"},
		{"tolerance edge", packets, snap(3, pods("packets", 110, 110, 110)), 3, "DesiredWithinRange"},
		{"beyond tolerance", packets, snap(3, pods("packets", 111, 111, 111)), 4, "DesiredWithinRange"},
		{"within tolerance down", packets, snap(3, pods("packets", 91, 91, 91)), 3, "DesiredWithinRange"},
		// Utilisation is a percent of the request (100 here): 80% used
		// against a 50% target is a ratio of 1.6.
		{"utilization", cpuUtil, snap(5, pods("cpu", 80, 80, 80, 80, 80)), 8, "DesiredWithinRange"},
		// "assuming those pods were consuming 100% of the desired value in
		// case of a scale down": (50+50+100)/3 = 66.7 -> ceil(0.667*3) = 2.
		{"missing on scale down", packets, snap(3, join(pods("packets", 50, 50), missing(1))), 2, "DesiredWithinRange"},
		// "and 0% in case of a scale up": (200+200+0)/3 -> ceil(1.33*3) = 4.
		{"missing on scale up", packets, snap(3, join(pods("packets", 200, 200), missing(1))), 4, "DesiredWithinRange"},
		// Utilisation: a missing pod counts at max(100%, target) of its
		// request on a scale down: (20+20+100)/3 = 46.7% against 50%.
		{"missing utilization", cpuUtil, snap(3, join(pods("cpu", 20, 20), missing(1))), 3, "DesiredWithinRange"},
		// "the controller conservatively assumes that the not-yet-ready
		// pods are consuming 0% of the desired metric": cpu only.
		{"unready cpu on scale up", cpuUtil, snap(3, join(pods("cpu", 100, 100), unready("cpu", 1, 100))), 4, "DesiredWithinRange"},
		{"unready other metric counts", packets, snap(3, join(pods("packets", 200, 200), unready("packets", 1, 200))), 6, "DesiredWithinRange"},
		// "If the new ratio reverses the scaling direction ... the
		// controller doesn't take any scaling action": 120 against 100
		// asks up, but with three missing pods at 0 the average is 30.
		{"reversal keeps", packets, snap(4, join(pods("packets", 120), missing(3))), 4, "DesiredWithinRange"},
		{"pending pod unready", cpuUtil, snap(2, join(pods("cpu", 100), []Pod{{Name: "x", Phase: PodPending, Requests: map[string]float64{"cpu": 100}}})), 2, "DesiredWithinRange"},
		{"deleting pod ignored", packets, snap(2, join(pods("packets", 200), []Pod{{Name: "x", Phase: PodRunning, Ready: true, Deleting: true, Values: map[string]float64{"packets": 0}}})), 2, "DesiredWithinRange"},
		// External, AverageValue: total over the target per pod.
		{"external average", reqs, Snapshot{Now: t0, Replicas: 5, StatusReplicas: 5, External: map[string]float64{"requests": 1000}}, 10, "DesiredWithinRange"},
		{"external average tolerance", reqs, Snapshot{Now: t0, Replicas: 5, StatusReplicas: 5, External: map[string]float64{"requests": 540}}, 5, "DesiredWithinRange"},
		// External, Value: ratio times the ready pods.
		{"external value", queue, Snapshot{Now: t0, Replicas: 3, StatusReplicas: 3, Pods: join(pods("x", 0, 0), []Pod{{Name: "p", Phase: PodPending}}), External: map[string]float64{"queue": 300}}, 6, "DesiredWithinRange"},
		{"no metric", packets, snap(3, missing(3)), 3, "FailedGetMetrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := HPASpec{MinReplicas: 1, MaxReplicas: 100, Metrics: []Metric{tt.metric}, Behavior: noWindow()}
			if err := spec.Validate(); err != nil {
				t.Fatal(err)
			}
			d, _ := spec.Decide(tt.s, History{})
			if d.Replicas != tt.want || d.Reason != tt.reason {
				t.Errorf("Decide = %d (%s: %s), want %d (%s)", d.Replicas, d.Reason, d.Message, tt.want, tt.reason)
			}
		})
	}
}

// TestMetrics checks that several metrics give the largest proposal, and
// that a metric that cannot be read never lets the others scale down.
func TestMetrics(t *testing.T) {
	ext := func(v float64) map[string]float64 { return map[string]float64{"requests": v} }
	tests := []struct {
		name string
		s    Snapshot
		want int
		err  bool
	}{
		{"largest wins", Snapshot{Now: t0, Replicas: 4, StatusReplicas: 4, Pods: pods("packets", 100, 100, 100, 100), External: ext(1000)}, 10, false},
		{"other metric wins", Snapshot{Now: t0, Replicas: 4, StatusReplicas: 4, Pods: pods("packets", 300, 300, 300, 300), External: ext(100)}, 12, false},
		{"invalid, others scale up", Snapshot{Now: t0, Replicas: 4, StatusReplicas: 4, Pods: missing(4), External: ext(1000)}, 10, true},
		{"invalid, others scale down", Snapshot{Now: t0, Replicas: 4, StatusReplicas: 4, Pods: missing(4), External: ext(100)}, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := noWindow()
			b.ScaleUp.Policies = []RatePolicy{{Type: PercentPolicy, Value: 1000, Period: 15 * time.Second}}
			spec := HPASpec{MinReplicas: 1, MaxReplicas: 100, Metrics: []Metric{packets, reqs}, Behavior: b}
			d, _ := spec.Decide(tt.s, History{})
			if d.Replicas != tt.want || (d.Err != nil) != tt.err {
				t.Errorf("Decide = %d (err %v), want %d (err %v)", d.Replicas, d.Err, tt.want, tt.err)
			}
		})
	}
}

// step is one reconciliation of a run: after, the metric reads value.
type step struct {
	after time.Duration // since the run's start
	value float64       // the External "requests" total
	want  int
	// reason, when set, is the expected condition reason.
	reason string
}

// run replays steps through one HPA, carrying its decisions out.
func run(t *testing.T, spec HPASpec, start int, steps []step) {
	t.Helper()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	a := &HPA{Spec: spec}
	n := start
	for i, st := range steps {
		s := Snapshot{Now: t0.Add(st.after), Replicas: n, StatusReplicas: n, External: map[string]float64{"requests": st.value}}
		d := a.Decide(s)
		if d.Replicas != st.want || (st.reason != "" && d.Reason != st.reason) {
			t.Fatalf("step %d (+%v, %v): %d -> %d (%s: %s), want %d %s", i, st.after, st.value, n, d.Replicas, d.Reason, d.Message, st.want, st.reason)
		}
		n = d.Replicas
	}
}

// TestBehavior checks stabilisation windows and rate policies with the
// examples of the Kubernetes documentation ("Configurable scaling
// behavior"). The metric is External requests at 100 per replica, so that
// each step's proposal is the value / 100.
func TestBehavior(t *testing.T) {
	per := func(typ PolicyType, v int, period time.Duration) RatePolicy {
		return RatePolicy{Type: typ, Value: v, Period: period}
	}
	withDown := func(r Rules) Behavior { b := DefaultBehavior(); b.ScaleDown = r; return b }
	withUp := func(r Rules) Behavior { b := DefaultBehavior(); b.ScaleUp = r; return b }
	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	tests := []struct {
		name     string
		behavior Behavior
		start    int
		steps    []step
	}{
		{
			// "For scaling down the stabilization window is 300 seconds":
			// the highest recommendation of the last 5 minutes, counting
			// the current size as one when the controller starts.
			name: "default scale down waits 5 minutes", behavior: DefaultBehavior(), start: 10,
			steps: []step{
				{0, 500, 10, "ScaleDownStabilized"},
				{sec(60), 500, 10, "ScaleDownStabilized"},
				{sec(299), 500, 10, "ScaleDownStabilized"},
				{sec(301), 500, 5, "DesiredWithinRange"},
			},
		},
		{
			// "the highest recommendation": a burst within the window
			// holds the count.
			name: "highest of the window", behavior: DefaultBehavior(), start: 10,
			steps: []step{
				{0, 500, 10, "ScaleDownStabilized"},
				{sec(301), 500, 5, ""},
				{sec(320), 800, 8, ""},
				{sec(340), 500, 8, "ScaleDownStabilized"},
				{sec(619), 500, 8, "ScaleDownStabilized"},
				{sec(621), 500, 5, ""},
			},
		},
		{
			// "There are 2 policies where 4 pods or a 100% of the
			// currently running replicas may at most be added every 15
			// seconds": from 1, max(1+4, 2) = 5, then max(9, 10) = 10.
			name: "default scale up rate", behavior: DefaultBehavior(), start: 1,
			steps: []step{
				{0, 1000, 5, "ScaleUpLimit"},
				{sec(10), 1000, 5, "ScaleUpLimit"},
				{sec(15), 1000, 10, "DesiredWithinRange"},
			},
		},
		{
			name: "percent wins above 4 pods", behavior: DefaultBehavior(), start: 10,
			steps: []step{{0, 5000, 20, "ScaleUpLimit"}},
		},
		{
			// "the second policy to ensure that no more than 5 Pods are
			// removed per minute" (Pods 5 per 60 s, and 10% per 60 s).
			name: "limit scale down rate", start: 80,
			behavior: withDown(Rules{SelectPolicy: SelectMax, Policies: []RatePolicy{per(PercentPolicy, 10, time.Minute), per(PodsPolicy, 5, time.Minute)}, Tolerance: DefaultTolerance}),
			steps: []step{
				// 10% of 80 is 8 > 5: Max picks the percent policy.
				{0, 1000, 72, "ScaleDownLimit"},
				{sec(30), 1000, 72, "ScaleDownLimit"},
				// "when the number of replicas is 72, 10% of the pods is
				// 7.2 but the number is rounded up to 8" (int(72*0.9)=64).
				{sec(61), 1000, 64, "ScaleDownLimit"},
			},
		},
		{
			// "When the number of pods is more than 40 the second policy
			// will be used ... When the number of replicas falls below 40
			// the first policy (Pods) is applied and 4 replicas will be
			// reduced at a time."
			name: "pods policy below 40", start: 36,
			behavior: withDown(Rules{SelectPolicy: SelectMax, Policies: []RatePolicy{per(PodsPolicy, 4, time.Minute), per(PercentPolicy, 10, time.Minute)}, Tolerance: DefaultTolerance}),
			steps:    []step{{0, 1000, 32, "ScaleDownLimit"}, {sec(61), 1000, 28, "ScaleDownLimit"}},
		},
		{
			name: "select min", start: 80,
			behavior: withDown(Rules{SelectPolicy: SelectMin, Policies: []RatePolicy{per(PodsPolicy, 4, time.Minute), per(PercentPolicy, 10, time.Minute)}, Tolerance: DefaultTolerance}),
			steps:    []step{{0, 1000, 76, "ScaleDownLimit"}},
		},
		{
			// "selectPolicy: Disabled" turns scaling down off.
			name: "disable scale down", start: 10,
			behavior: withDown(Rules{SelectPolicy: SelectDisabled, Tolerance: DefaultTolerance}),
			steps:    []step{{0, 100, 10, "ScaleDownLimit"}, {sec(600), 100, 10, "ScaleDownLimit"}, {sec(601), 2000, 20, ""}},
		},
		{
			// "change downscale stabilization window" to 60 s.
			name: "downscale window 60s", start: 10,
			behavior: withDown(Rules{StabilizationWindow: time.Minute, SelectPolicy: SelectMax, Policies: []RatePolicy{per(PercentPolicy, 100, sec(15))}, Tolerance: DefaultTolerance}),
			steps:    []step{{0, 500, 10, ""}, {sec(59), 500, 10, ""}, {sec(61), 500, 5, ""}},
		},
		{
			// A scale-up window follows the lowest recommendation.
			name: "upscale window", start: 2,
			behavior: withUp(Rules{StabilizationWindow: time.Minute, SelectPolicy: SelectMax, Policies: []RatePolicy{per(PercentPolicy, 100, sec(15)), per(PodsPolicy, 4, sec(15))}, Tolerance: DefaultTolerance}),
			steps:    []step{{0, 800, 2, "ScaleUpStabilized"}, {sec(30), 800, 2, "ScaleUpStabilized"}, {sec(61), 800, 6, "ScaleUpLimit"}, {sec(80), 800, 8, ""}},
		},
		{
			// Kubernetes 1.33's configurable tolerance: scale up past 5%.
			name: "scale up tolerance", start: 10,
			behavior: withUp(Rules{SelectPolicy: SelectMax, Policies: []RatePolicy{per(PercentPolicy, 100, sec(15))}, Tolerance: 0.05}),
			steps:    []step{{0, 1040, 10, ""}, {sec(20), 1060, 11, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := HPASpec{MinReplicas: 1, MaxReplicas: 100, Metrics: []Metric{reqs}, Behavior: tt.behavior}
			run(t, spec, tt.start, tt.steps)
		})
	}
}

// TestBounds checks min and max replicas and the zero-replica switch.
func TestBounds(t *testing.T) {
	tests := []struct {
		name       string
		min, max   int
		current    int
		value      float64
		want       int
		wantReason string
	}{
		{"above max", 1, 5, 8, 800, 5, "TooManyReplicas"},
		{"below min", 3, 10, 1, 100, 3, "TooFewReplicas"},
		{"capped at max", 1, 6, 4, 2000, 6, "TooManyReplicas"},
		{"held at min", 2, 10, 4, 10, 2, "TooFewReplicas"},
		{"zero replicas is off", 1, 10, 0, 1000, 0, "ScalingDisabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := HPASpec{MinReplicas: tt.min, MaxReplicas: tt.max, Metrics: []Metric{reqs}, Behavior: noWindow()}
			d, _ := spec.Decide(Snapshot{Now: t0, Replicas: tt.current, StatusReplicas: tt.current, External: map[string]float64{"requests": tt.value}}, History{})
			if d.Replicas != tt.want || d.Reason != tt.wantReason {
				t.Errorf("Decide = %d (%s), want %d (%s)", d.Replicas, d.Reason, tt.want, tt.wantReason)
			}
		})
	}
}

// TestNormalizeCeiling: a ceiling brings a count the scale-down window holds
// down to it, but never below the proposal, never raises a count the
// scale-up window holds, says when it was the one that bound, and the rate
// policies still apply after it.
func TestNormalizeCeiling(t *testing.T) {
	tests := []struct {
		name                       string
		upWindow                   time.Duration
		recent                     int // the recommendation a minute ago
		current, proposed, ceiling int
		want                       int
		reason                     string
	}{
		{"no ceiling: the window holds the recent 10", 0, 10, 10, 4, math.MaxInt, 10, "ScaleDownStabilized"},
		{"ceiling under the window's count", 0, 10, 10, 4, 6, 6, "BudgetLimited"},
		{"proposal above the ceiling is kept", 0, 10, 10, 8, 6, 8, "BudgetLimited"},
		{"ceiling below the proposal: the proposal", 0, 10, 10, 6, 2, 6, "BudgetLimited"},
		{"ceiling above the window's count changes nothing", 0, 10, 10, 4, 12, 10, "ScaleDownStabilized"},
		{"scale-down rate: at most 50% of 10 per period", 0, 10, 10, 1, 2, 5, "ScaleDownLimit"},
		{"current below the ceiling: the window holds it", 0, 10, 5, 4, 6, 5, "ScaleDownStabilized"},
		// the scale-up window holds 8 for a proposal of 10: a ceiling of 6
		// must not lift it to the proposal
		{"scale-up window not lifted by the ceiling", 3 * time.Minute, 5, 8, 10, 6, 8, "ScaleUpStabilized"},
		{"scale-up window, no ceiling", 3 * time.Minute, 5, 8, 10, math.MaxInt, 8, "ScaleUpStabilized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := DefaultHPA(20, reqs)
			spec.Behavior.ScaleDown.Policies = []RatePolicy{{Type: PercentPolicy, Value: 50, Period: time.Minute}}
			spec.Behavior.ScaleUp.StabilizationWindow = tt.upWindow
			h := History{Recommendations: []Recommendation{{At: t0.Add(-time.Minute), Replicas: tt.recent}}}
			d := spec.normalize(Snapshot{Now: t0, Replicas: tt.current, StatusReplicas: tt.current}, &h, tt.proposed, tt.ceiling)
			if d.Replicas != tt.want || d.Reason != tt.reason {
				t.Errorf("normalize(current %d, proposed %d, ceiling %d) = %d (%s), want %d (%s)", tt.current, tt.proposed, tt.ceiling, d.Replicas, d.Reason, tt.want, tt.reason)
			}
		})
	}
}

// TestDecideIsPure checks that Decide leaves its inputs alone.
func TestDecideIsPure(t *testing.T) {
	spec := DefaultHPA(10, reqs)
	h := History{Recommendations: []Recommendation{{At: t0, Replicas: 3}}, ScaleUps: []ScaleEvent{{At: t0, Change: 1}}}
	s := Snapshot{Now: t0.Add(time.Minute), Replicas: 3, StatusReplicas: 3, External: map[string]float64{"requests": 900}}
	d1, h1 := spec.Decide(s, h)
	d2, _ := spec.Decide(s, h)
	if d1 != d2 || len(h.Recommendations) != 1 || len(h.ScaleUps) != 1 {
		t.Fatalf("Decide changed its input history: %+v", h)
	}
	// 3 -> 7 (max(3+4, 3*2)); the event older than the 15 s period is
	// replaced, as Kubernetes reuses outdated slots.
	if d1.Replicas != 7 || len(h1.Recommendations) != 2 || len(h1.ScaleUps) != 1 || h1.ScaleUps[0] != (ScaleEvent{At: s.Now, Change: 4}) {
		t.Fatalf("decision %d, history after = %+v, want 7 with the recommendation and the scale event recorded", d1.Replicas, h1)
	}
}

func TestValidate(t *testing.T) {
	good := DefaultHPA(10, reqs)
	tests := []struct {
		name string
		edit func(*HPASpec)
		want string // substring of the error; "" for valid
	}{
		{"default", func(*HPASpec) {}, ""},
		{"negative min", func(s *HPASpec) { s.MinReplicas = -1 }, "min_replicas"},
		{"max below min", func(s *HPASpec) { s.MinReplicas = 5; s.MaxReplicas = 3 }, "max_replicas"},
		{"no metrics", func(s *HPASpec) { s.Metrics = nil }, "at least one metric"},
		{"bad target", func(s *HPASpec) { s.Metrics = []Metric{{Name: "x", Source: SourcePods, Target: Utilization, Value: 1}} }, "cannot have"},
		{"zero target", func(s *HPASpec) { s.Metrics = []Metric{{Name: "x", Source: SourcePods, Target: AverageValue}} }, "above 0"},
		{"twice", func(s *HPASpec) { s.Metrics = []Metric{reqs, reqs} }, "twice"},
		{"scale to zero needs external", func(s *HPASpec) { s.MinReplicas = 0; s.Metrics = []Metric{packets} }, "External"},
		{"no policies", func(s *HPASpec) { s.Behavior.ScaleUp.Policies = nil }, "scale_up: policies"},
		{"disabled needs none", func(s *HPASpec) { s.Behavior.ScaleUp = Rules{SelectPolicy: SelectDisabled} }, ""},
		{"bad window", func(s *HPASpec) { s.Behavior.ScaleDown.StabilizationWindow = 2 * time.Hour }, "stabilization_window"},
		{"bad tolerance", func(s *HPASpec) { s.Behavior.ScaleDown.Tolerance = 1 }, "tolerance"},
		{"bad period", func(s *HPASpec) { s.Behavior.ScaleDown.Policies[0].Period = 0 }, "period"},
		{"bad select", func(s *HPASpec) { s.Behavior.ScaleDown.SelectPolicy = "Most" }, "select_policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.Metrics = append([]Metric(nil), good.Metrics...)
			s.Behavior = DefaultBehavior()
			tt.edit(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
