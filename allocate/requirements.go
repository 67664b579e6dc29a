package allocate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/phoenixsre/phoenix"
)

// Sample is one measured value of a signal.
type Sample struct {
	At    time.Time
	Value float64
}

// History is what was measured of one component, one slice per resource, in
// the units of phoenix's signals: CPU in cores in use, memory and disk in
// bytes, network in bytes per second (in and out together), rate in requests
// per second. Samples need not be sorted; samples outside the window and
// values that are not finite or are negative are ignored, so the caller may
// pass a store's history as it is.
type History struct {
	CPU     []Sample
	Memory  []Sample
	Disk    []Sample
	Network []Sample
	Rate    []Sample
}

// Estimate says how one resource's figure is derived from its history:
// the Percentile of the samples within Window before now, times Headroom,
// times the load factor if ScalesWithLoad, and at least Floor. With fewer
// than the policy's MinSamples samples in the window, Default is used
// (times the load factor if it scales) instead of a measurement.
type Estimate struct {
	// Percentile is in (0, 1]; 1 is the window's maximum.
	Percentile float64
	Window     time.Duration
	// Headroom is a factor >= 1: margin for what the window did not see.
	Headroom float64
	// ScalesWithLoad multiplies the figure by the load factor: true for
	// resources that grow with requests served (CPU, network).
	ScalesWithLoad bool
	// Default and Floor are in the resource's unit (cores, bytes, bytes/s).
	Default float64
	Floor   float64
}

// RequirementPolicy is how requirements are derived from history.
type RequirementPolicy struct {
	CPU     Estimate
	Memory  Estimate
	Disk    Estimate
	Network Estimate
	// RatePercentile and RateWindow summarise the request rate the history
	// was measured under; the load factor is AbsorbRate over that figure.
	RatePercentile float64
	RateWindow     time.Duration
	// MaxLoadFactor caps the load factor, so that a component measured
	// nearly idle does not ask for a thousand times its usage.
	MaxLoadFactor float64
	// MinSamples is how many samples in the window make a measurement;
	// fewer and the Estimate's Default is used.
	MinSamples int
}

// DefaultRequirementPolicy is the policy Phoenix starts with: p95 of the
// last hour for CPU and network (they follow load), p99 for memory (a
// replica that runs out of memory fails at once; CPU only slows down), and
// the maximum for disk (the replica receives all the data there is).
func DefaultRequirementPolicy() RequirementPolicy {
	return RequirementPolicy{
		CPU:            Estimate{Percentile: 0.95, Window: time.Hour, Headroom: 1.3, ScalesWithLoad: true, Default: 0.25, Floor: 0.05},
		Memory:         Estimate{Percentile: 0.99, Window: time.Hour, Headroom: 1.25, Default: 256 << 20, Floor: 32 << 20},
		Disk:           Estimate{Percentile: 1, Window: time.Hour, Headroom: 1.5},
		Network:        Estimate{Percentile: 0.95, Window: time.Hour, Headroom: 1.3, ScalesWithLoad: true},
		RatePercentile: 0.95,
		RateWindow:     time.Hour,
		MaxLoadFactor:  10,
		MinSamples:     5,
	}
}

// Validate reports the first setting that cannot work, naming it.
func (p RequirementPolicy) Validate() error {
	for _, e := range []struct {
		name string
		e    Estimate
	}{{"cpu", p.CPU}, {"memory", p.Memory}, {"disk", p.Disk}, {"network", p.Network}} {
		switch {
		case !(e.e.Percentile > 0 && e.e.Percentile <= 1):
			return fmt.Errorf("requirements %s.percentile %v: use a value in (0, 1], such as 0.95", e.name, e.e.Percentile)
		case e.e.Window <= 0:
			return fmt.Errorf("requirements %s.window %s: use a positive duration, such as 1h", e.name, e.e.Window)
		case !(e.e.Headroom >= 1) || math.IsInf(e.e.Headroom, 0):
			return fmt.Errorf("requirements %s.headroom %v: use a finite factor >= 1, such as 1.25", e.name, e.e.Headroom)
		case !(e.e.Default >= 0) || !(e.e.Floor >= 0) || math.IsInf(e.e.Default+e.e.Floor, 0):
			return fmt.Errorf("requirements %s: default and floor must be finite and >= 0", e.name)
		}
	}
	switch {
	case !(p.RatePercentile > 0 && p.RatePercentile <= 1):
		return fmt.Errorf("requirements rate_percentile %v: use a value in (0, 1]", p.RatePercentile)
	case p.RateWindow <= 0:
		return fmt.Errorf("requirements rate_window %s: use a positive duration", p.RateWindow)
	case !(p.MaxLoadFactor >= 1) || math.IsInf(p.MaxLoadFactor, 0):
		return fmt.Errorf("requirements max_load_factor %v: use a finite factor >= 1", p.MaxLoadFactor)
	case p.MinSamples < 1:
		return fmt.Errorf("requirements min_samples %d: use 1 or more", p.MinSamples)
	}
	return nil
}

// Need is one member of the closure to size.
type Need struct {
	Component phoenix.ComponentID
	History   History
	// HealthyInSecondary is set when the member already has a healthy
	// counterpart in the secondary environment: nothing is required for it.
	HealthyInSecondary bool
	// AbsorbRate is the request rate (per second) the replica must serve
	// once traffic moves to it, such as the component's whole demand when
	// its primaries' share all moves; 0 means the rate it was measured at.
	AbsorbRate float64
}

// RequirementsInput is the snapshot Requirements reads.
type RequirementsInput struct {
	Now time.Time
	// Members is the closure, dependencies first and the component at risk
	// last, as Action.Members orders them.
	Members []Need
}

// Requirement is what one member needs in the secondary environment, with
// how each figure was reached. It is meant to be stored with the allocation
// (it marshals to JSON) and shown in the event log (Explain).
type Requirement struct {
	Component phoenix.ComponentID `json:"component"`
	// Needed is false for a member with a healthy counterpart already in
	// the secondary; its figures are then empty.
	Needed             bool              `json:"needed"`
	Resources          phoenix.Resources `json:"resources"`
	NetworkBytesPerSec int64             `json:"network_bytes_per_sec"`
	// LoadFactor is AbsorbRate over the measured rate, in [1, MaxLoadFactor].
	LoadFactor float64  `json:"load_factor"`
	LoadReason string   `json:"load_reason"`
	Figures    []Figure `json:"figures,omitempty"`
	Reason     string   `json:"reason"`
}

// Figure explains one resource's figure.
type Figure struct {
	Resource string  `json:"resource"` // cpu, memory, disk, network
	Unit     string  `json:"unit"`     // cores, bytes, bytes/s
	Value    float64 `json:"value"`
	// Source is "measured" (a percentile of the window), "default" (too few
	// samples) or "floor" (the measurement was below the floor).
	Source     string        `json:"source"`
	Percentile float64       `json:"percentile"`
	Window     time.Duration `json:"window_ns"`
	Samples    int           `json:"samples"`
	Measured   float64       `json:"measured"`
	LoadFactor float64       `json:"load_factor"`
	Headroom   float64       `json:"headroom"`
	Explain    string        `json:"explain"`
}

// Explain is one line for people: what the member needs and why.
func (r Requirement) Explain() string {
	if !r.Needed {
		return string(r.Component) + ": " + r.Reason
	}
	parts := make([]string, 0, len(r.Figures)+1)
	for _, f := range r.Figures {
		parts = append(parts, f.Explain)
	}
	parts = append(parts, r.LoadReason)
	return string(r.Component) + ": " + strings.Join(parts, "; ")
}

// Requirements sizes each member of a closure from its measured history. It
// is a pure function: the same input gives the same requirements. It fails
// only on an invalid policy.
func Requirements(in RequirementsInput, p RequirementPolicy) ([]Requirement, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(in.Members) == 0 {
		return nil, errors.New("requirements: no member to size")
	}
	out := make([]Requirement, 0, len(in.Members))
	for _, m := range in.Members {
		out = append(out, requirementOf(in.Now, m, p))
	}
	return out, nil
}

func requirementOf(now time.Time, m Need, p RequirementPolicy) Requirement {
	r := Requirement{Component: m.Component}
	if m.HealthyInSecondary {
		r.Reason = "already has a healthy counterpart in the secondary environment: nothing to provision"
		return r
	}
	r.Needed = true
	r.LoadFactor, r.LoadReason = loadFactor(now, m, p)
	cpu := figure(now, "cpu", "cores", m.History.CPU, p.CPU, r.LoadFactor, p.MinSamples)
	mem := figure(now, "memory", "bytes", m.History.Memory, p.Memory, r.LoadFactor, p.MinSamples)
	disk := figure(now, "disk", "bytes", m.History.Disk, p.Disk, r.LoadFactor, p.MinSamples)
	net := figure(now, "network", "bytes/s", m.History.Network, p.Network, r.LoadFactor, p.MinSamples)
	r.Figures = []Figure{cpu, mem, disk, net}
	r.Resources = phoenix.Resources{
		MilliCPU:    ceilInt(cpu.Value * 1000),
		MemoryBytes: ceilInt(mem.Value),
		DiskBytes:   ceilInt(disk.Value),
	}
	r.NetworkBytesPerSec = ceilInt(net.Value)
	r.Reason = fmt.Sprintf("%s CPU, %s memory, %s disk, %s/s network", milli(r.Resources.MilliCPU),
		bytesIEC(r.Resources.MemoryBytes), bytesIEC(r.Resources.DiskBytes), bytesIEC(r.NetworkBytesPerSec))
	return r
}

// loadFactor is how much more load the replica must take than the history
// was measured under.
func loadFactor(now time.Time, m Need, p RequirementPolicy) (float64, string) {
	if m.AbsorbRate <= 0 || math.IsNaN(m.AbsorbRate) || math.IsInf(m.AbsorbRate, 0) {
		return 1, "load factor 1: the replica takes the load it was measured under"
	}
	vals := window(now, m.History.Rate, p.RateWindow)
	if len(vals) < p.MinSamples {
		return 1, fmt.Sprintf("load factor 1: %d rate samples in the last %s, fewer than %d", len(vals), p.RateWindow, p.MinSamples)
	}
	measured := stat.Quantile(p.RatePercentile, stat.LinInterp, vals, nil)
	if measured <= 0 {
		return p.MaxLoadFactor, fmt.Sprintf("load factor %.2g (the cap): it must absorb %.3g req/s and served none in the last %s",
			p.MaxLoadFactor, m.AbsorbRate, p.RateWindow)
	}
	f := m.AbsorbRate / measured
	why := fmt.Sprintf("load factor %.2f = %.3g req/s to absorb / p%s of the last %s's rate %.3g req/s",
		f, m.AbsorbRate, pct(p.RatePercentile), p.RateWindow, measured)
	switch {
	case f < 1:
		return 1, why + ", raised to 1 (part of the usage does not shrink with load)"
	case f > p.MaxLoadFactor:
		return p.MaxLoadFactor, why + fmt.Sprintf(", capped at %.2g", p.MaxLoadFactor)
	}
	return f, why
}

func figure(now time.Time, res, unit string, samples []Sample, e Estimate, load float64, minSamples int) Figure {
	f := Figure{Resource: res, Unit: unit, Percentile: e.Percentile, Window: e.Window, Headroom: e.Headroom, LoadFactor: 1}
	if e.ScalesWithLoad {
		f.LoadFactor = load
	}
	vals := window(now, samples, e.Window)
	f.Samples = len(vals)
	factors := fmt.Sprintf("x load %.2f x headroom %.2f", f.LoadFactor, f.Headroom)
	if !e.ScalesWithLoad {
		factors = fmt.Sprintf("x headroom %.2f (does not scale with load)", f.Headroom)
	}
	if len(vals) < minSamples {
		f.Source = "default"
		f.Value = e.Default * f.LoadFactor
		f.Explain = fmt.Sprintf("%s %s: the default %s x load %.2f, as the last %s has %d samples (fewer than %d)",
			res, show(unit, f.Value), show(unit, e.Default), f.LoadFactor, e.Window, len(vals), minSamples)
		return f.atLeast(e.Floor)
	}
	f.Source = "measured"
	f.Measured = stat.Quantile(e.Percentile, stat.LinInterp, vals, nil)
	f.Value = f.Measured * f.LoadFactor * f.Headroom
	f.Explain = fmt.Sprintf("%s %s = p%s of the last %s (%d samples) %s %s",
		res, show(unit, f.Value), pct(e.Percentile), e.Window, len(vals), show(unit, f.Measured), factors)
	return f.atLeast(e.Floor)
}

func (f Figure) atLeast(floor float64) Figure {
	if f.Value < floor {
		f.Explain += fmt.Sprintf(", raised to the floor %s", show(f.Unit, floor))
		f.Value, f.Source = floor, "floor"
	}
	return f
}

// window returns the sorted finite, non-negative values sampled in
// (now-w, now].
func window(now time.Time, samples []Sample, w time.Duration) []float64 {
	from := now.Add(-w)
	vals := make([]float64, 0, len(samples))
	for _, s := range samples {
		if !s.At.After(from) || s.At.After(now) || !(s.Value >= 0) || math.IsInf(s.Value, 1) {
			continue
		}
		vals = append(vals, s.Value)
	}
	slices.Sort(vals)
	return vals
}

// ceilInt rounds a figure up to a whole unit, saturating rather than
// overflowing. A relative tolerance of 1e-9 keeps a product such as
// 0.4 x 1.3 x 1000 (520.0000000000001 in floating point) at 520.
func ceilInt(v float64) int64 {
	c := math.Ceil(v - math.Abs(v)*1e-9)
	if c >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(c)
}

func pct(p float64) string {
	if p == 1 {
		return "100"
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", p*100), "0"), ".")
}

func show(unit string, v float64) string {
	switch unit {
	case "cores":
		return milli(ceilInt(v * 1000))
	case "bytes":
		return bytesIEC(ceilInt(v))
	case "bytes/s":
		return bytesIEC(ceilInt(v)) + "/s"
	}
	return fmt.Sprintf("%g %s", v, unit)
}

func milli(m int64) string { return fmt.Sprintf("%dm", m) }

func bytesIEC(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
