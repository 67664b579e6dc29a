package scale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// PodPhase is a pod's (or replica's) life phase.
type PodPhase string

// Pod phases, as Kubernetes names them.
const (
	PodPending PodPhase = "Pending" // created, not running yet
	PodRunning PodPhase = "Running"
	PodFailed  PodPhase = "Failed"
)

// Pod is one replica as the autoscaler sees it.
type Pod struct {
	Name  string
	Phase PodPhase
	// Ready is the pod's readiness (its Ready condition).
	Ready bool
	// Deleting is set once the pod is being removed.
	Deleting bool
	// Values holds the pod's per-pod metrics by name; a metric absent here is
	// missing for this pod.
	Values map[string]float64
	// Requests holds the pod's resource requests, by the Resource metric's
	// name, for Utilization targets.
	Requests map[string]float64
}

// Snapshot is what the autoscaler reads at one moment.
type Snapshot struct {
	Now time.Time
	// Replicas is the replica count in force (scale.spec.replicas).
	Replicas int
	// StatusReplicas is how many replicas exist, started or not
	// (scale.status.replicas).
	StatusReplicas int
	// Pods are the replicas with their per-pod metrics. A policy reads them
	// during Decide only: the caller may reuse them for the next snapshot.
	Pods []Pod
	// External holds the value of each External metric, by name.
	External map[string]float64
}

// errNoMetric is a metric that cannot give a proposal now.
var errNoMetric = errors.New("metric unavailable")

// podGroups is Kubernetes' groupPods: which pods count, for one metric.
type podGroups struct {
	ready     int
	metrics   map[string]float64 // usable values, by pod
	requests  map[string]float64
	unready   []string
	missing   []string
	hasNoReqs bool
}

// groupPods sorts the pods for metric m. Deleting and failed pods are
// ignored; pending ones are unready; for cpu, a pod that is not ready is
// unready. Kubernetes also treats a cpu sample taken within the pod's
// initialisation period as unready; a caller models that by reporting the
// pod not ready until its first full metric window.
func groupPods(pods []Pod, m Metric) podGroups {
	g := podGroups{metrics: map[string]float64{}, requests: map[string]float64{}}
	for _, p := range pods {
		if p.Deleting || p.Phase == PodFailed {
			continue
		}
		if p.Phase == PodPending {
			g.unready = append(g.unready, p.Name)
			continue
		}
		v, ok := p.Values[m.Name]
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			g.missing = append(g.missing, p.Name)
			g.requests[p.Name] = p.Requests[m.Name]
			continue
		}
		if m.Source == SourceResource && m.Name == "cpu" && !p.Ready {
			g.unready = append(g.unready, p.Name)
			continue
		}
		g.ready++
		g.metrics[p.Name] = v
		r, ok := p.Requests[m.Name]
		if !ok || !(r > 0) {
			g.hasNoReqs = true
		}
		g.requests[p.Name] = r
	}
	return g
}

// proposal is one metric's replica count.
type proposal struct {
	replicas int
	usage    float64 // the metric's current value, in the target's unit
}

// propose is Kubernetes' computeReplicasForMetric for one metric.
func propose(s Snapshot, m Metric, b Behavior) (proposal, error) {
	switch {
	case m.Source == SourceExternal && m.Target == AverageValue:
		return proposeExternalPerPod(s, m, b)
	case m.Source == SourceExternal:
		return proposeExternalValue(s, m, b)
	default:
		return proposePods(s, m, b)
	}
}

// proposeExternalPerPod is GetExternalPerPodMetricReplicas: the total over
// the target per pod, against the replicas that exist.
func proposeExternalPerPod(s Snapshot, m Metric, b Behavior) (proposal, error) {
	usage, ok := s.External[m.Name]
	if !ok || math.IsNaN(usage) || math.IsInf(usage, 0) || usage < 0 {
		return proposal{}, fmt.Errorf("%w: no value for external metric %q", errNoMetric, m.Name)
	}
	n := s.StatusReplicas
	ratio := usage / (m.Value * float64(n))
	if n == 0 {
		ratio = math.Inf(1)
		if usage == 0 {
			ratio = 0
		}
	}
	out := proposal{replicas: n, usage: usage / float64(max(n, 1))}
	if !b.within(ratio) {
		out.replicas = ceilInt(usage / m.Value)
	}
	return out, nil
}

// proposeExternalValue is GetExternalMetricReplicas: the usage ratio times
// the ready pods.
func proposeExternalValue(s Snapshot, m Metric, b Behavior) (proposal, error) {
	usage, ok := s.External[m.Name]
	if !ok || math.IsNaN(usage) || math.IsInf(usage, 0) || usage < 0 {
		return proposal{}, fmt.Errorf("%w: no value for external metric %q", errNoMetric, m.Name)
	}
	ratio := usage / m.Value
	out := proposal{replicas: s.Replicas, usage: usage}
	if s.Replicas == 0 {
		out.replicas = ceilInt(ratio)
		return out, nil
	}
	if b.within(ratio) {
		return out, nil
	}
	ready := 0
	for _, p := range s.Pods {
		if p.Phase == PodRunning && p.Ready && !p.Deleting {
			ready++
		}
	}
	if ready == 0 {
		return proposal{}, fmt.Errorf("%w: no ready pods for external metric %q", errNoMetric, m.Name)
	}
	out.replicas = ceilInt(ratio * float64(ready))
	return out, nil
}

// proposePods is calcPlainMetricReplicas and GetResourceReplicas: the
// average over the pods that report, made conservative for pods that are
// missing a value or not ready.
func proposePods(s Snapshot, m Metric, b Behavior) (proposal, error) {
	g := groupPods(s.Pods, m)
	if len(g.metrics) == 0 {
		return proposal{}, fmt.Errorf("%w: no ready pod reports %q", errNoMetric, m.Name)
	}
	utilization := m.Target == Utilization
	if utilization && g.hasNoReqs {
		return proposal{}, fmt.Errorf("%w: a pod has no request for %q", errNoMetric, m.Name)
	}
	ratio, usage := usageRatio(g.metrics, g.requests, m)
	out := proposal{replicas: s.Replicas, usage: usage}
	upWithUnready := len(g.unready) > 0 && ratio > 1
	if !upWithUnready && len(g.missing) == 0 {
		if b.within(ratio) {
			return out, nil
		}
		out.replicas = ceilInt(ratio * float64(g.ready))
		return out, nil
	}
	// Missing pods count at the target (at least 100% of the request for
	// utilisation) when scaling down, at nothing when scaling up; unready
	// pods at nothing when scaling up.
	for _, name := range g.missing {
		switch {
		case ratio < 1 && utilization:
			g.metrics[name] = g.requests[name] * max(100, m.Value) / 100
		case ratio < 1:
			g.metrics[name] = m.Value
		case ratio > 1:
			g.metrics[name] = 0
		}
	}
	if upWithUnready {
		for _, name := range g.unready {
			g.metrics[name] = 0
			g.requests[name] = podRequest(s.Pods, name, m.Name)
		}
	}
	if utilization {
		for name := range g.metrics {
			if !(g.requests[name] > 0) {
				return proposal{}, fmt.Errorf("%w: pod %s has no request for %q", errNoMetric, name, m.Name)
			}
		}
	}
	newRatio, _ := usageRatio(g.metrics, g.requests, m)
	if b.within(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return out, nil
	}
	n := ceilInt(newRatio * float64(len(g.metrics)))
	if (newRatio < 1 && n > s.Replicas) || (newRatio > 1 && n < s.Replicas) {
		return out, nil
	}
	out.replicas = n
	return out, nil
}

// usageRatio is the metric's average over the pods, against the target, and
// the average itself (percent for utilisation).
func usageRatio(vals, reqs map[string]float64, m Metric) (ratio, usage float64) {
	var sum, req float64
	for name, v := range vals {
		sum += v
		req += reqs[name]
	}
	if m.Target == Utilization {
		usage = sum * 100 / req
		return usage / m.Value, usage
	}
	usage = sum / float64(len(vals))
	return usage / m.Value, usage
}

func podRequest(pods []Pod, name, metric string) float64 {
	for _, p := range pods {
		if p.Name == name {
			return p.Requests[metric]
		}
	}
	return 0
}

// ceilInt is ceil for replica counts, saturating instead of overflowing.
func ceilInt(x float64) int {
	switch {
	case math.IsNaN(x) || x <= 0:
		return 0
	case x >= math.MaxInt32:
		return math.MaxInt32
	}
	return int(math.Ceil(x))
}
