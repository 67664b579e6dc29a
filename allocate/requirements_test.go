package allocate_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
)

// series returns one sample per 10 s ending at t0, oldest first, with the
// values given.
func series(vals ...float64) []allocate.Sample {
	out := make([]allocate.Sample, len(vals))
	for i, v := range vals {
		out[i] = allocate.Sample{At: t0.Add(-time.Duration(len(vals)-1-i) * 10 * time.Second), Value: v}
	}
	return out
}

func constant(v float64, n int) []allocate.Sample {
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = v
	}
	return series(vals...)
}

func ramp(n int, scale float64) []allocate.Sample {
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = float64(i+1) * scale
	}
	return series(vals...)
}

func TestRequirements(t *testing.T) {
	pol := allocate.DefaultRequirementPolicy()
	const mib = 1 << 20
	steady := allocate.History{
		CPU:     constant(0.4, 60),
		Memory:  constant(200*mib, 60),
		Disk:    constant(100*mib, 60),
		Network: constant(1e6, 60),
		Rate:    constant(100, 60),
	}
	tests := []struct {
		name    string
		need    allocate.Need
		want    phoenix.Resources
		net     int64
		load    float64
		explain []string // substrings of Explain
	}{
		{"steady history: percentile times headroom",
			allocate.Need{Component: "orders", History: steady},
			phoenix.Resources{MilliCPU: 520, MemoryBytes: 250 * mib, DiskBytes: 150 * mib}, 1.3e6, 1,
			[]string{"cpu 520m = p95 of the last 1h0m0s (60 samples) 400m x load 1.00 x headroom 1.30",
				"memory 250.0 MiB = p99 of the last 1h0m0s (60 samples) 200.0 MiB x headroom 1.25 (does not scale with load)",
				"disk 150.0 MiB = p100", "load factor 1: the replica takes the load it was measured under"}},
		{"a percentile, not the maximum: 1..100 cores gives p95 = 95",
			allocate.Need{Component: "orders", History: allocate.History{CPU: ramp(100, 1), Memory: steady.Memory}},
			phoenix.Resources{MilliCPU: 123500, MemoryBytes: 250 * mib}, 0, 1,
			[]string{"p95 of the last 1h0m0s (100 samples) 95000m"}},
		{"samples older than the window are ignored",
			allocate.Need{Component: "orders", History: allocate.History{
				CPU:    append([]allocate.Sample{{At: t0.Add(-2 * time.Hour), Value: 50}}, constant(0.4, 60)...),
				Memory: steady.Memory}},
			phoenix.Resources{MilliCPU: 520, MemoryBytes: 250 * mib}, 0, 1, nil},
		{"samples after now, NaN, infinite and negative values are ignored",
			allocate.Need{Component: "orders", History: allocate.History{
				CPU: append(constant(0.4, 60), allocate.Sample{At: t0.Add(time.Minute), Value: 50},
					allocate.Sample{At: t0, Value: math.NaN()}, allocate.Sample{At: t0, Value: math.Inf(1)},
					allocate.Sample{At: t0, Value: -3}),
				Memory: steady.Memory}},
			phoenix.Resources{MilliCPU: 520, MemoryBytes: 250 * mib}, 0, 1, nil},
		{"too few samples: the defaults, said so",
			allocate.Need{Component: "orders", History: allocate.History{CPU: constant(3, 4)}},
			phoenix.Resources{MilliCPU: 250, MemoryBytes: 256 * mib}, 0, 1,
			[]string{"cpu 250m: the default 250m x load 1.00, as the last 1h0m0s has 4 samples (fewer than 5)"}},
		{"it must absorb twice the measured load: CPU and network double, memory does not",
			allocate.Need{Component: "orders", History: steady, AbsorbRate: 200},
			phoenix.Resources{MilliCPU: 1040, MemoryBytes: 250 * mib, DiskBytes: 150 * mib}, 2.6e6, 2,
			[]string{"load factor 2.00 = 200 req/s to absorb / p95 of the last 1h0m0s's rate 100 req/s", "x load 2.00 x headroom 1.30"}},
		{"less load than measured: the factor stays 1",
			allocate.Need{Component: "orders", History: steady, AbsorbRate: 10},
			phoenix.Resources{MilliCPU: 520, MemoryBytes: 250 * mib, DiskBytes: 150 * mib}, 1.3e6, 1,
			[]string{"raised to 1"}},
		{"a near idle component is capped at the maximum load factor",
			allocate.Need{Component: "orders", History: allocate.History{CPU: steady.CPU, Rate: constant(1, 60)}, AbsorbRate: 1000},
			phoenix.Resources{MilliCPU: 5200, MemoryBytes: 256 * mib}, 0, 10,
			[]string{"capped at 10"}},
		{"a tiny measurement is raised to the floor",
			allocate.Need{Component: "orders", History: allocate.History{CPU: constant(0.001, 60), Memory: constant(1, 60)}},
			phoenix.Resources{MilliCPU: 50, MemoryBytes: 32 * mib}, 0, 1,
			[]string{"raised to the floor 50m", "raised to the floor 32.0 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allocate.Requirements(allocate.RequirementsInput{Now: t0, Members: []allocate.Need{tt.need}}, pol)
			if err != nil {
				t.Fatal(err)
			}
			r := got[0]
			if !r.Needed || r.Resources != tt.want || r.NetworkBytesPerSec != int64(tt.net) || math.Abs(r.LoadFactor-tt.load) > 1e-9 {
				t.Errorf("got %+v, network %d, load %v; want %+v, network %v, load %v", r.Resources, r.NetworkBytesPerSec, r.LoadFactor, tt.want, tt.net, tt.load)
			}
			ex := r.Explain()
			for _, s := range tt.explain {
				if !strings.Contains(ex, s) {
					t.Errorf("Explain() = %q\nwant it to contain %q", ex, s)
				}
			}
		})
	}
}

// TestRequirementsClosure: members with a healthy counterpart need nothing,
// the order is kept, and the record survives JSON (it is stored with the
// allocation).
func TestRequirementsClosure(t *testing.T) {
	h := allocate.History{CPU: constant(0.2, 30), Memory: constant(64<<20, 30)}
	got, err := allocate.Requirements(allocate.RequirementsInput{Now: t0, Members: []allocate.Need{
		{Component: "inventory", History: h, HealthyInSecondary: true},
		{Component: "payments", History: h},
		{Component: "orders", History: h},
	}}, allocate.DefaultRequirementPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Component != "inventory" || got[2].Component != "orders" {
		t.Fatalf("order not kept: %+v", got)
	}
	if got[0].Needed || got[0].Resources != (phoenix.Resources{}) || !strings.Contains(got[0].Explain(), "healthy counterpart") {
		t.Errorf("inventory has a healthy counterpart and still needs %+v (%s)", got[0].Resources, got[0].Explain())
	}
	if !got[1].Needed || got[1].Resources.MilliCPU != 260 {
		t.Errorf("payments = %+v, want 260m", got[1])
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back []allocate.Requirement
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back[2].Figures[0].Percentile != 0.95 || back[2].Figures[0].Window != time.Hour || back[2].Figures[0].Source != "measured" {
		t.Errorf("figure after a JSON round trip: %+v", back[2].Figures[0])
	}
}

func TestRequirementPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*allocate.RequirementPolicy)
		want string // substring of the error, "" for none
	}{
		{"default", func(*allocate.RequirementPolicy) {}, ""},
		{"percentile 0", func(p *allocate.RequirementPolicy) { p.CPU.Percentile = 0 }, "cpu.percentile"},
		{"percentile over 1", func(p *allocate.RequirementPolicy) { p.Memory.Percentile = 95 }, "memory.percentile 95: use a value in (0, 1]"},
		{"no window", func(p *allocate.RequirementPolicy) { p.Disk.Window = 0 }, "disk.window"},
		{"headroom below 1", func(p *allocate.RequirementPolicy) { p.Network.Headroom = 0.5 }, "network.headroom"},
		{"NaN headroom", func(p *allocate.RequirementPolicy) { p.CPU.Headroom = math.NaN() }, "cpu.headroom"},
		{"negative floor", func(p *allocate.RequirementPolicy) { p.CPU.Floor = -1 }, "cpu: default and floor"},
		{"rate percentile", func(p *allocate.RequirementPolicy) { p.RatePercentile = 2 }, "rate_percentile"},
		{"rate window", func(p *allocate.RequirementPolicy) { p.RateWindow = -time.Second }, "rate_window"},
		{"load cap", func(p *allocate.RequirementPolicy) { p.MaxLoadFactor = 0.5 }, "max_load_factor"},
		{"min samples", func(p *allocate.RequirementPolicy) { p.MinSamples = 0 }, "min_samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := allocate.DefaultRequirementPolicy()
			tt.edit(&p)
			err := p.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
			if _, rerr := allocate.Requirements(allocate.RequirementsInput{Now: t0, Members: []allocate.Need{{Component: "a"}}}, p); (rerr == nil) != (err == nil) {
				t.Fatalf("Requirements error %v, Validate error %v", rerr, err)
			}
		})
	}
	if _, err := allocate.Requirements(allocate.RequirementsInput{Now: t0}, allocate.DefaultRequirementPolicy()); err == nil {
		t.Fatal("no members: want an error")
	}
}
