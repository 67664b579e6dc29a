package scale

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// follow is a policy that asks, at every decision, for a count set by the
// test: a stand-in to check the replay's accounting.
type follow struct{ want func(Snapshot) int }

func (f follow) Decide(s Snapshot) Decision { return Decision{Replicas: f.want(s)} }

func trace(step time.Duration, vals ...float64) []Sample {
	out := make([]Sample, len(vals))
	for i, v := range vals {
		out[i] = Sample{At: t0.Add(time.Duration(i) * step), Value: v}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestReplayAccounting(t *testing.T) {
	m := Model{PerReplica: 10, Startup: 5 * time.Minute, Interval: 5 * time.Minute}
	cfg := ReplayConfig{Model: m, Demand: "demand"}
	tests := []struct {
		name   string
		trace  []Sample
		policy Policy
		want   Result
	}{
		{
			// Starts with ceil(25/10) = 3 replicas and keeps them: never
			// short, 12 intervals of 3 replicas for 5 minutes.
			name:   "steady",
			trace:  trace(5*time.Minute, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25),
			policy: follow{func(Snapshot) int { return 3 }},
			want:   Result{ReplicaHours: 3, ScalingActions: 0},
		},
		{
			// 1 replica, then demand 50: ordered at 5 min, the 4 new ones
			// serve from 10 min, so the intervals ending at 5 and 10 are
			// short; they are paid from 5 min.
			name:  "startup",
			trace: trace(5*time.Minute, 10, 50, 50, 50),
			policy: follow{func(s Snapshot) int {
				return max(1, ceilInt(s.External["demand"]/10))
			}},
			want: Result{UnderprovisionedFraction: 0.5, ReplicaHours: (1 + 1 + 5 + 5) * 5.0 / 60, ScalingActions: 1},
		},
		{
			// Removal is at once: 5 replicas for demand 10 are 4 too many
			// for one interval, then 1 is kept.
			name:  "overprovisioned",
			trace: trace(5*time.Minute, 50, 10, 10),
			policy: follow{func(s Snapshot) int {
				return max(1, ceilInt(s.External["demand"]/10))
			}},
			want: Result{ReplicaHours: (5 + 5 + 1) * 5.0 / 60, OverprovisionedReplicaHours: 4 * 5.0 / 60, ScalingActions: 1},
		},
		{
			// A replica ordered at 2.5 min is ready at 7.5 min: it serves
			// half of the interval that ends at 10 min, which then has
			// 1.5 replicas ready (15) for a demand of 16, though 2 are
			// paid for.
			name:  "partial interval",
			trace: []Sample{{t0, 10}, {t0.Add(150 * time.Second), 10}, {t0.Add(10 * time.Minute), 16}},
			policy: follow{func(s Snapshot) int {
				if s.Now.Before(t0.Add(150 * time.Second)) {
					return 1
				}
				return 2
			}},
			want: Result{UnderprovisionedFraction: 1.0 / 3, ReplicaHours: (1 + 1 + 2) * 5.0 / 60, ScalingActions: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Replay(context.Background(), tt.trace, cfg, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.UnderprovisionedFraction, tt.want.UnderprovisionedFraction) || !near(got.ReplicaHours, tt.want.ReplicaHours) ||
				!near(got.OverprovisionedReplicaHours, tt.want.OverprovisionedReplicaHours) || got.ScalingActions != tt.want.ScalingActions {
				t.Fatalf("Replay = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReplayCeiling checks that the samples whose demand needs more than
// the ceiling are counted, for a policy capped at it and one that is not
// alike, and no others.
func TestReplayCeiling(t *testing.T) {
	m := Model{PerReplica: 10, Startup: 5 * time.Minute, Interval: 5 * time.Minute}
	cfg := ReplayConfig{Model: m, Demand: "demand", MaxReplicas: 4}
	// 40 needs exactly 4 (the ceiling); 41 and 90 need more.
	tr := trace(5*time.Minute, 10, 40, 41, 90, 10)
	for _, top := range []int{4, 100} {
		p := follow{func(s Snapshot) int { return min(top, max(1, ceilInt(s.External["demand"]/10))) }}
		got, err := Replay(context.Background(), tr, cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.CeilingSamples != 2 {
			t.Errorf("policy capped at %d: CeilingSamples = %d, want 2", top, got.CeilingSamples)
		}
	}
	cfg.MaxReplicas = 0
	if got, _ := Replay(context.Background(), tr, cfg, follow{func(Snapshot) int { return 1 }}); got.CeilingSamples != 0 {
		t.Errorf("no ceiling: CeilingSamples = %d, want 0", got.CeilingSamples)
	}
}

// podsCheck is a policy that asks for random counts and checks, at each
// decision, the snapshot's pods against its own record of the replicas it
// ordered: one pod per replica, distinct names, and running exactly those
// whose start-up has passed (the replay adds replicas at the end and removes
// the latest to be ready).
type podsCheck struct {
	t       *testing.T
	startup time.Duration
	rng     *rand.Rand
	ready   []time.Time // the replicas' ready times, in order
	checked int
}

func (c *podsCheck) Decide(s Snapshot) Decision {
	c.t.Helper()
	if c.ready == nil {
		c.ready = make([]time.Time, s.Replicas) // the replay's first replicas serve from the start
	}
	want := 0
	for _, r := range c.ready {
		if !r.After(s.Now) {
			want++
		}
	}
	running, names := 0, map[string]bool{}
	for i, p := range s.Pods {
		names[p.Name] = true
		switch {
		case p.Phase == PodRunning && p.Ready && i == running:
			running++ // the replicas ready first are listed first
		case p.Phase != PodPending || p.Ready:
			c.t.Fatalf("%v: pod %d (%s) is %s, ready %v, after %d running", s.Now, i, p.Name, p.Phase, p.Ready, running)
		}
	}
	if len(s.Pods) != len(c.ready) || len(names) != len(s.Pods) || running != want {
		c.t.Fatalf("%v: %d pods (%d names), %d running; want %d, %d running", s.Now, len(s.Pods), len(names), running, len(c.ready), want)
	}
	c.checked++
	n := len(c.ready)
	if c.rng.IntN(4) == 0 { // change the count at one decision in four
		n = 1 + c.rng.IntN(60)
	}
	for len(c.ready) < n {
		c.ready = append(c.ready, s.Now.Add(c.startup))
	}
	c.ready = c.ready[:n]
	return Decision{Replicas: n}
}

// TestReplayPods checks the pods the replay shows policies, which it keeps
// from one decision to the next rather than rebuilding, through random
// rises and falls, start-ups that span several decisions and removals of
// replicas not yet ready.
func TestReplayPods(t *testing.T) {
	vals := make([]float64, 200)
	for i := range vals {
		vals[i] = 100
	}
	// Start-ups that end between decisions (50 s), at one (45 s, three
	// 15-s periods, as NAB's 5-minute ones do) and at once (0).
	for _, startup := range []time.Duration{50 * time.Second, 45 * time.Second, 0} {
		t.Run(startup.String(), func(t *testing.T) {
			m := Model{PerReplica: 10, Startup: startup, Interval: time.Minute}
			c := &podsCheck{t: t, startup: startup, rng: rand.New(rand.NewPCG(1, 2))}
			if _, err := Replay(context.Background(), trace(time.Minute, vals...), ReplayConfig{Model: m, Demand: "demand"}, c); err != nil {
				t.Fatal(err)
			}
			if c.checked < 200*4 {
				t.Errorf("checked %d decisions, want at least %d", c.checked, 200*4)
			}
		})
	}
}

func TestReplayRejects(t *testing.T) {
	p := follow{func(Snapshot) int { return 1 }}
	good := ReplayConfig{Model: Model{PerReplica: 1, Interval: time.Minute}}
	if _, err := Replay(context.Background(), nil, good, p); err == nil {
		t.Error("empty trace accepted")
	}
	for _, m := range []Model{{PerReplica: 0, Interval: time.Minute}, {PerReplica: 1}, {PerReplica: math.Inf(1), Interval: time.Minute}, {PerReplica: 1, Interval: time.Minute, Startup: -1}} {
		if _, err := Replay(context.Background(), trace(time.Minute, 1, 2), ReplayConfig{Model: m}, p); err == nil {
			t.Errorf("model %+v accepted", m)
		}
	}
	unsorted := []Sample{{t0, 1}, {t0.Add(2 * time.Minute), 1}, {t0.Add(time.Minute), 1}}
	if _, err := Replay(context.Background(), unsorted, good, p); err == nil || !strings.Contains(err.Error(), "sort the trace by time") {
		t.Errorf("unsorted trace: err = %v, want one that says to sort it", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Replay(ctx, trace(time.Minute, 1, 2), good, p); err == nil {
		t.Error("cancelled replay succeeded")
	}
}

// TestDeriveModel checks the defaults come from the first day alone.
func TestDeriveModel(t *testing.T) {
	var tr []Sample
	for i := range 2 * 288 {
		v := 100.0
		if i >= 288 {
			v = 5000 // the second day must not matter
		}
		tr = append(tr, Sample{At: t0.Add(time.Duration(i) * 5 * time.Minute), Value: v})
	}
	m, err := DeriveModel(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := Model{PerReplica: 10, Startup: 5 * time.Minute, Interval: 5 * time.Minute}
	if m != want {
		t.Fatalf("DeriveModel = %+v, want %+v", m, want)
	}
	zeros := trace(time.Minute, 0, 0, 0, 0)
	if m, err := DeriveModel(zeros); err != nil || m.PerReplica != 1 {
		t.Fatalf("DeriveModel(zeros) = %+v, %v; want capacity 1", m, err)
	}
	// A first day all idle (300 zeros): the first 12 bursts after it set
	// the capacity (10 to 110 and 1000: median 65, 6.5 per replica; their
	// mean would be 138.3), not the larger ones after them.
	var vals []float64
	for range 300 {
		vals = append(vals, 0)
	}
	for k := 1; k <= 11; k++ {
		vals = append(vals, float64(10*k), 0)
	}
	vals = append(vals, 1000)
	for range 100 {
		vals = append(vals, 1e6)
	}
	idle := trace(5*time.Minute, vals...)
	if m, err := DeriveModel(idle); err != nil || m.PerReplica != 6.5 {
		t.Fatalf("DeriveModel(idle first day) = %+v, %v; want capacity 6.5", m, err)
	}
	if _, err := DeriveModel(trace(time.Minute, 1)); err == nil {
		t.Error("one sample accepted")
	}
	same := []Sample{{t0, 1}, {t0, 2}}
	if _, err := DeriveModel(same); err == nil {
		t.Error("no spacing accepted")
	}
}

// TestEvalPolicies replays both policies on synthetic demand of three
// kinds and checks the promises the predictive policy makes against the
// HPA: it never runs more replica-hours, and where the demand's noise
// around its level is large it is short of capacity less often.
func TestEvalPolicies(t *testing.T) {
	gen := map[string]func(r *rand.Rand, i int) float64{
		// A daily wave with multiplicative noise and bursts.
		"bursty wave": func(r *rand.Rand, i int) float64 {
			v := 200 + 120*math.Sin(2*math.Pi*float64(i)/288)
			v *= math.Exp(0.3 * r.NormFloat64())
			return v
		},
		// Smooth: a slow wave with a little noise.
		"smooth": func(r *rand.Rand, i int) float64 {
			return 500 + 100*math.Sin(2*math.Pi*float64(i)/288) + 5*r.NormFloat64()
		},
	}
	for name, g := range gen {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 7))
			tr := make([]Sample, 3*288)
			for i := range tr {
				tr[i] = Sample{At: t0.Add(time.Duration(i) * 5 * time.Minute), Value: max(0, g(r, i))}
			}
			m, err := DeriveModel(tr)
			if err != nil {
				t.Fatal(err)
			}
			var res [2]Result
			for i, name := range []string{PolicyHPA, PolicyPredictive} {
				p, err := EvalPolicy(name, EvalConfig{Model: m, Target: DefaultTarget})
				if err != nil {
					t.Fatal(err)
				}
				if res[i], err = Replay(context.Background(), tr, ReplayConfigFor(m), p); err != nil {
					t.Fatal(err)
				}
			}
			hpa, pred := res[0], res[1]
			t.Logf("hpa %+v\npredictive %+v", hpa, pred)
			if pred.ReplicaHours > hpa.ReplicaHours {
				t.Errorf("predictive ran %.1f replica-hours, the HPA %.1f", pred.ReplicaHours, hpa.ReplicaHours)
			}
			if pred.UnderprovisionedFraction > hpa.UnderprovisionedFraction {
				t.Errorf("predictive short %.3f of the time, the HPA %.3f", pred.UnderprovisionedFraction, hpa.UnderprovisionedFraction)
			}
		})
	}
	if _, err := EvalPolicy("vpa", EvalConfig{Model: Model{PerReplica: 1, Interval: time.Minute}, Target: 0.8}); err == nil {
		t.Error("unknown policy accepted")
	}
	if _, err := EvalPolicy(PolicyHPA, EvalConfig{Model: Model{PerReplica: 1, Interval: time.Minute}, Target: 1.5}); err == nil {
		t.Error("target above 1 accepted")
	}
}

// BenchmarkReplay replays the HPA on a day and a half of 5-minute samples
// whose demand needs 10 replicas, calm or with a spike to 10,000 replicas
// every 50 samples: the ratio of the two is what a replica costs a replay
// (each decision used to build and name a pod per replica).
func BenchmarkReplay(b *testing.B) {
	m := Model{PerReplica: 10, Startup: 5 * time.Minute, Interval: 5 * time.Minute}
	for _, bc := range []struct {
		name  string
		spike float64
	}{{"calm", 100}, {"spiky", 100_000}} {
		vals := make([]float64, 432)
		for i := range vals {
			vals[i] = 100
			if i%50 == 49 {
				vals[i] = bc.spike
			}
		}
		tr := trace(5*time.Minute, vals...)
		spec := DefaultHPA(evalMaxReplicas, Metric{Name: "demand", Source: SourceExternal, Target: AverageValue, Value: 8})
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := NewHPA(spec)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Replay(context.Background(), tr, ReplayConfig{Model: m, Demand: "demand"}, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
