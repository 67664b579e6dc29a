package scale

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Model is the capacity model a demand series is replayed against.
type Model struct {
	// PerReplica is the demand one replica serves in one interval.
	PerReplica float64
	// Startup is the time from ordering a replica to its serving.
	Startup time.Duration
	// Interval is the time one sample's demand covers: the interval that
	// ends at the sample's timestamp.
	Interval time.Duration
}

// Validate reports what is wrong with m.
func (m Model) Validate() error {
	switch {
	case !(m.PerReplica > 0) || math.IsInf(m.PerReplica, 0):
		return fmt.Errorf("capacity %v: write the demand one replica serves per interval, above 0", m.PerReplica)
	case m.Startup < 0 || m.Startup > 30*24*time.Hour:
		return fmt.Errorf("startup %v: write 0 to 720h", m.Startup)
	case m.Interval <= 0 || m.Interval > 30*24*time.Hour:
		return fmt.Errorf("interval %v: write more than 0, at most 720h", m.Interval)
	}
	return nil
}

// prefixSpan is how much of a trace's start DeriveModel reads.
const (
	prefixSpan       = 24 * time.Hour
	prefixMinSamples = 12
	// replicasAtMedian is how many replicas the derived capacity makes the
	// typical demand of the first day need.
	replicasAtMedian = 10
)

// DeriveModel derives a capacity model from the start of a trace only (its
// first day, at least 12 samples), so that nothing about the rest informs
// the replay: the interval is the median spacing of those samples, a
// replica starts in one interval, and serves a tenth of their median demand
// (so that typical demand needs replicasAtMedian = 10 replicas; the mean if
// the median is 0). A first day all zero says nothing of the demand's size:
// the capacity then looks ahead to the trace's first 12 values above 0, and
// takes a tenth of their median (1 if there are none).
func DeriveModel(trace []Sample) (Model, error) {
	if len(trace) < 2 {
		return Model{}, errors.New("trace: need at least 2 samples to derive the interval")
	}
	end := trace[0].At.Add(prefixSpan)
	n := sort.Search(len(trace), func(i int) bool { return trace[i].At.After(end) })
	n = min(max(n, prefixMinSamples), len(trace))
	prefix := trace[:n]
	var gaps, vals []float64
	for i, s := range prefix {
		vals = append(vals, s.Value)
		if i > 0 {
			if g := s.At.Sub(prefix[i-1].At); g > 0 {
				gaps = append(gaps, g.Seconds())
			}
		}
	}
	if len(gaps) == 0 {
		return Model{}, errors.New("trace: the first samples all share one timestamp; give --startup and a trace with distinct times")
	}
	interval := time.Duration(median(gaps) * float64(time.Second))
	typical := median(vals)
	if typical <= 0 {
		typical = mean(vals)
	}
	if typical <= 0 {
		typical = firstPositive(trace)
	}
	per := typical / replicasAtMedian
	if !(per > 0) {
		per = 1
	}
	m := Model{PerReplica: per, Startup: interval, Interval: interval}
	if err := m.Validate(); err != nil {
		return Model{}, fmt.Errorf("trace: derived %w; give --capacity and --startup", err)
	}
	return m, nil
}

// firstPositive is the median of the trace's first prefixMinSamples
// positive values (fewer if it has fewer; 0 if none): the typical demand of
// a series idle through its first day, whose first bursts then come to
// replicasAtMedian replicas rather than to one replica per unit of demand.
func firstPositive(trace []Sample) float64 {
	var vals []float64
	for _, s := range trace {
		if s.Value > 0 {
			vals = append(vals, s.Value)
			if len(vals) == prefixMinSamples {
				break
			}
		}
	}
	if len(vals) == 0 {
		return 0
	}
	return median(vals)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// ReplayConfig configures a replay.
type ReplayConfig struct {
	Model
	// Sync is the time between decisions, as the HPA controller's sync
	// period (15 s by default). Decisions continue at this period for one
	// Interval after each sample; after that the measurement is stale and
	// nothing is decided until the next sample.
	Sync time.Duration
	// Demand is the name under which the demand is in Snapshot.External.
	Demand string
	// MaxReplicas is the policies' ceiling, if they have one (0 if not):
	// the replay counts the samples whose demand needs more replicas than
	// that at full capacity, which no policy under it can serve.
	MaxReplicas int
}

// Result is what a replay measured.
type Result struct {
	Policy string `json:"policy"`
	// UnderprovisionedFraction is the share of samples whose demand
	// exceeded the capacity of the replicas serving during their interval.
	UnderprovisionedFraction float64 `json:"underprovisioned_fraction"`
	// ReplicaHours counts every replica from the moment it is ordered to
	// the moment it is removed, over the sampled intervals.
	ReplicaHours float64 `json:"replica_hours"`
	// OverprovisionedReplicaHours are replica-hours beyond the replicas the
	// demand needed (ceil(demand / capacity per replica)).
	OverprovisionedReplicaHours float64 `json:"overprovisioned_replica_hours"`
	// ScalingActions counts decisions that changed the replica count.
	ScalingActions int `json:"scaling_actions"`
	// CeilingSamples counts the samples whose demand needed more than
	// ReplayConfig.MaxReplicas replicas at full capacity: the ceiling bound
	// there, and every policy under it was under-provisioned alike. It
	// depends on the demand only, so it is the same for every policy of a
	// replay; when it is not 0 the comparison is of capped policies.
	CeilingSamples int `json:"ceiling_samples"`
}

// replica is one simulated replica: ordered, serving from ready, removed
// at gone (zero while it lives).
type replica struct{ ordered, ready, gone time.Time }

// end is when r is removed; far in the future while it lives.
func (r replica) end() time.Time {
	if r.gone.IsZero() {
		return time.Unix(1<<62, 0)
	}
	return r.gone
}

// Replay runs policy p against trace under cfg's capacity model and
// measures it. Each sample's demand is served by the time-average of the
// replicas ready during its interval; the policy sees a sample once its
// interval has ended, and its decisions take effect at once for removals
// and after Startup for additions. Replicas not yet ready are removed
// first. The trace must be in time order (equal timestamps allowed), as
// ParseTrace returns it.
func Replay(ctx context.Context, trace []Sample, cfg ReplayConfig, p Policy) (Result, error) {
	if err := cfg.Model.Validate(); err != nil {
		return Result{}, err
	}
	for i := 1; i < len(trace); i++ {
		if trace[i].At.Before(trace[i-1].At) {
			return Result{}, fmt.Errorf("replay: sample %d (%s) is before the one above it (%s): sort the trace by time", i, trace[i].At.Format(time.DateTime), trace[i-1].At.Format(time.DateTime))
		}
	}
	if cfg.Sync <= 0 {
		cfg.Sync = 15 * time.Second
	}
	if len(trace) == 0 {
		return Result{}, errors.New("replay: empty trace")
	}
	sim := simulation{cfg: cfg}
	first := trace[0]
	n := max(ceilInt(first.Value/cfg.PerReplica), 1)
	start := first.At.Add(-cfg.Interval)
	for range n {
		sim.replicas = append(sim.replicas, replica{ordered: start, ready: start})
	}
	sim.live = n
	obs, _ := p.(Observer)
	for i, s := range trace {
		if i%256 == 0 && ctx.Err() != nil {
			return Result{}, fmt.Errorf("replay: %w", ctx.Err())
		}
		sim.measure(s)
		if obs != nil {
			obs.Observe(s.At, s.Value)
		}
		end := s.At.Add(cfg.Interval)
		if i+1 < len(trace) && trace[i+1].At.Before(end) {
			end = trace[i+1].At
		}
		for now := s.At; now.Before(end) || now.Equal(s.At); now = now.Add(cfg.Sync) {
			sim.decide(p, now, s.Value)
		}
	}
	return sim.result(len(trace)), nil
}

// simulation is a replay's state and tallies.
type simulation struct {
	cfg      ReplayConfig
	replicas []replica // living ones, then removed ones still in a window
	live     int       // replicas[:live] are alive, sorted by ready time
	// pods is the snapshot's pod list, kept from one decision to the next:
	// pods[i] stands for replicas[i], named i, and pods[:running] are
	// running (the rest pending). A decision rewrites only the pods whose
	// state changed, so that it costs what changed rather than the replica
	// count (a series that spikes to 100,000 replicas made each of its
	// decisions allocate and name them all). A Snapshot's pods are the
	// policy's to read during Decide only (see Snapshot.Pods); they are
	// passed with no spare capacity, so that an append cannot write here.
	pods    []Pod
	running int
	under   int
	ceiling int
	hours   float64
	over    float64
	actions int
}

// measure tallies the interval that ends at s.At, then forgets replicas
// removed before it.
func (m *simulation) measure(s Sample) {
	from := s.At.Add(-m.cfg.Interval)
	var ready, alive float64
	kept := m.replicas[:m.live]
	for i, r := range m.replicas {
		alive += overlap(r.ordered, r.end(), from, s.At)
		ready += overlap(r.ready, r.end(), from, s.At)
		if i >= m.live && r.gone.After(s.At) {
			kept = append(kept, r)
		}
	}
	m.replicas = kept
	span := m.cfg.Interval.Seconds()
	ready /= span
	alive /= span
	if s.Value > ready*m.cfg.PerReplica*(1+1e-12) {
		m.under++
	}
	h := m.cfg.Interval.Hours()
	m.hours += alive * h
	need := math.Ceil(s.Value/m.cfg.PerReplica - 1e-9)
	if m.cfg.MaxReplicas > 0 && need > float64(m.cfg.MaxReplicas) {
		m.ceiling++
	}
	m.over += max(alive-need, 0) * h
}

// overlap is how many seconds [a, b) and [from, to) share.
func overlap(a, b, from, to time.Time) float64 {
	lo, hi := a, b
	if from.After(lo) {
		lo = from
	}
	if to.Before(hi) {
		hi = to
	}
	if !hi.After(lo) {
		return 0
	}
	return hi.Sub(lo).Seconds()
}

// decide asks the policy at now and carries its decision out.
func (m *simulation) decide(p Policy, now time.Time, demand float64) {
	current := m.live
	m.syncPods(now)
	snap := Snapshot{Now: now, Replicas: current, StatusReplicas: current, External: map[string]float64{m.cfg.Demand: demand}, Pods: m.pods[:current:current]}
	d := p.Decide(snap)
	switch {
	case d.Replicas > current:
		add := make([]replica, d.Replicas-current)
		for i := range add {
			add[i] = replica{ordered: now, ready: now.Add(m.cfg.Startup)}
		}
		m.replicas = slices.Insert(m.replicas, current, add...)
		m.live = d.Replicas
	case d.Replicas < current:
		// The latest to be ready go first; they stay listed, removed, until
		// their last interval is measured.
		for i := d.Replicas; i < current; i++ {
			m.replicas[i].gone = now
		}
		m.live = d.Replicas
	default:
		return
	}
	m.actions++
}

// syncPods brings pods up to the living replicas at now: one pod per
// replica, running once the replica is ready. The living replicas are
// sorted by ready time, so the ready ones are a prefix.
func (m *simulation) syncPods(now time.Time) {
	for len(m.pods) < m.live {
		m.pods = append(m.pods, Pod{Name: strconv.Itoa(len(m.pods)), Phase: PodPending})
	}
	ready := sort.Search(m.live, func(i int) bool { return m.replicas[i].ready.After(now) })
	for i := min(m.running, ready); i < max(m.running, ready); i++ {
		if i < ready {
			m.pods[i].Phase, m.pods[i].Ready = PodRunning, true
		} else {
			m.pods[i].Phase, m.pods[i].Ready = PodPending, false
		}
	}
	m.running = ready
}

func (m *simulation) result(samples int) Result {
	return Result{
		UnderprovisionedFraction:    float64(m.under) / float64(samples),
		ReplicaHours:                m.hours,
		OverprovisionedReplicaHours: m.over,
		ScalingActions:              m.actions,
		CeilingSamples:              m.ceiling,
	}
}
