package main

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/scale"
)

func TestMeans(t *testing.T) {
	var trace []scale.Sample
	for i, v := range []float64{1, 2, 3, 4, 5} {
		trace = append(trace, scale.Sample{At: time.Unix(int64(300*i), 0), Value: v})
	}
	for _, tc := range []struct {
		name string
		got  []float64
		want []float64
	}{
		{"centred 3", centredMeans(trace, 3), []float64{1.5, 2, 3, 4, 4.5}},
		{"centred 1", centredMeans(trace, 1), []float64{1, 2, 3, 4, 5}},
		// the trailing mean of a sample ends with it: nothing later counts
		{"trailing 3", trailingMeans(trace, 3), []float64{1, 1.5, 2, 3, 4}},
		{"trailing 1", trailingMeans(trace, 1), []float64{1, 2, 3, 4, 5}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestParseWindows(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "7,25", want: []int{7, 25}},
		{in: " 3 ", want: []int{3}},
		{in: "4", err: true}, // a centred mean needs an odd length
		{in: "0", err: true},
		{in: "7,x", err: true},
		{in: "", err: true},
	} {
		got, err := parseWindows(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("parseWindows(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestOracleDecides: the oracle provisions the margin over the highest
// level of the intervals its decision is in force over, and the trailing
// policy over the last measured sample's level, never below one replica.
func TestOracleDecides(t *testing.T) {
	var trace []scale.Sample
	for i, v := range []float64{10, 10, 40, 10, 10} {
		trace = append(trace, scale.Sample{At: time.Unix(int64(300*i), 0), Value: v})
	}
	level := centredMeans(trace, 1)
	o := &oracle{trace: trace, level: level, margin: 1, capacity: 10, startup: 300 * time.Second}
	// At sample 0: samples 1 (removals) and 2 (the first a new replica serves).
	if got := o.Decide(scale.Snapshot{Now: trace[0].At}).Replicas; got != 4 {
		t.Errorf("oracle at sample 0: %d replicas, want 4 (sample 2's 40)", got)
	}
	if got := o.Decide(scale.Snapshot{Now: trace[2].At}).Replicas; got != 1 {
		t.Errorf("oracle at sample 2: %d replicas, want 1 (samples 3 and 4)", got)
	}
	// With the floor, at sample 2 the oracle keeps what its measured 40
	// needs, although samples 3 and 4 need 1; at sample 3 it is free again.
	o.floor = true
	if got := o.Decide(scale.Snapshot{Now: trace[2].At.Add(time.Minute)}).Replicas; got != 4 {
		t.Errorf("floored oracle after sample 2: %d replicas, want 4 (the floor of sample 2's 40)", got)
	}
	if got := o.Decide(scale.Snapshot{Now: trace[3].At}).Replicas; got != 1 {
		t.Errorf("floored oracle at sample 3: %d replicas, want 1 (sample 3's 10)", got)
	}
	tr := &oracle{trace: trace, level: trailingMeans(trace, 1), trailing: true, margin: 1, capacity: 10, startup: 300 * time.Second}
	if got := tr.Decide(scale.Snapshot{Now: trace[1].At.Add(time.Minute)}).Replicas; got != 1 {
		t.Errorf("trailing after sample 1: %d replicas, want 1: sample 2 is not measured yet", got)
	}
	if got := tr.Decide(scale.Snapshot{Now: trace[2].At}).Replicas; got != 4 {
		t.Errorf("trailing at sample 2: %d replicas, want 4", got)
	}
	tr.margin = 0
	if got := tr.Decide(scale.Snapshot{Now: trace[0].At}).Replicas; got != 1 {
		t.Errorf("margin 0: %d replicas, want the floor of 1", got)
	}
}

// TestOnlineSpendsTheShadowsBudget: on a steady demand the online margin
// settles where the policy runs what the shadow HPA runs.
func TestOnlineSpendsTheShadowsBudget(t *testing.T) {
	var trace []scale.Sample
	for i := range 2000 {
		trace = append(trace, scale.Sample{At: time.Unix(int64(300*i), 0), Value: 100 + float64(i%7)})
	}
	model, err := scale.DeriveModel(trace)
	if err != nil {
		t.Fatal(err)
	}
	cfg := scale.EvalConfig{Model: model, Target: 0.8}
	rc := scale.ReplayConfigFor(model)
	replay := func(p scale.Policy) scale.Result {
		r, err := scale.Replay(context.Background(), trace, rc, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	hpa, _ := scale.EvalPolicy(scale.PolicyHPA, cfg)
	shadow, _ := scale.EvalPolicy(scale.PolicyHPA, cfg)
	h := replay(hpa)
	// A margin far off at the start, so that the controller has to move it.
	o := replay(&online{trace: trace, level: trailingMeans(trace, 7), capacity: rc.PerReplica, interval: rc.Interval,
		shadow: shadow, logMargin: math.Log(3)})
	if r := o.ReplicaHours / h.ReplicaHours; r < 0.97 || r > 1.03 {
		t.Errorf("online ran %.3f of the HPA's replica-hours, want about 1", r)
	}
}
