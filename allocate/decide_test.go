package allocate_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
)

var (
	t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	th = allocate.Thresholds{Prewarm: 0.5, Switch: 0.95, SwitchWithin: 10 * time.Second, Release: 0.2, ReleaseAfter: 10 * time.Second}
)

func risk(p, lo, hi float64, lead time.Duration) phoenix.Risk {
	return phoenix.Risk{Component: "orders", Probability: p, Lower: lo, Upper: hi, LeadTime: lead, Horizon: 30 * time.Second,
		Signals: []phoenix.SignalRisk{{Signal: phoenix.SignalMemory, Reason: "memory rising"}}}
}

func alloc(phase phoenix.Phase) *phoenix.Allocation {
	return &phoenix.Allocation{ID: "orders-1", Component: "orders", Phase: phase,
		Members: []phoenix.Member{{Component: "inventory"}, {Component: "orders"}}}
}

// TestDecide is the decider over a table of states: each row is a snapshot
// and the plan it must give.
func TestDecide(t *testing.T) {
	closure := []phoenix.ComponentID{"inventory"}
	tests := []struct {
		name string
		c    allocate.Component
		want []allocate.Action
	}{
		{"quiet component: nothing",
			allocate.Component{Risk: risk(0.1, 0, 0.2, 0)}, nil},
		{"risk at the pre-warm threshold: pre-warm closure then component",
			allocate.Component{Risk: risk(0.5, 0.3, 0.7, 25*time.Second)},
			[]allocate.Action{{Kind: allocate.Prewarm, Members: []phoenix.ComponentID{"inventory", "orders"}}}},
		{"just below the threshold: nothing",
			allocate.Component{Risk: risk(0.49, 0.3, 0.7, 0)}, nil},
		{"busy component is left alone",
			allocate.Component{Risk: risk(0.9, 0.8, 1, 0), Busy: true}, nil},
		{"prewarmed, certain and near: pre-emptive switch",
			allocate.Component{Risk: risk(0.99, 0.96, 1, 5*time.Second), Allocation: alloc(phoenix.PhasePrewarmed)},
			[]allocate.Action{{Kind: allocate.Switch, Preemptive: true}}},
		{"prewarmed, certain but far: wait",
			allocate.Component{Risk: risk(0.99, 0.96, 1, 25*time.Second), Allocation: alloc(phoenix.PhasePrewarmed)}, nil},
		{"prewarmed, likely but lower bound under the switch threshold: wait",
			allocate.Component{Risk: risk(0.97, 0.9, 1, 5*time.Second), Allocation: alloc(phoenix.PhasePrewarmed)}, nil},
		{"prewarmed and failed: switch",
			allocate.Component{Risk: risk(0.3, 0.1, 0.5, 0), Allocation: alloc(phoenix.PhasePrewarmed), Failed: true, FailReason: "3 checks"},
			[]allocate.Action{{Kind: allocate.Switch}}},
		{"failed with no replica: emergency pre-warm, then switch",
			allocate.Component{Risk: risk(0, 0, 0, 0), Failed: true, FailReason: "3 checks"},
			[]allocate.Action{{Kind: allocate.Prewarm, Emergency: true, Members: []phoenix.ComponentID{"inventory", "orders"}}, {Kind: allocate.Switch}}},
		{"failed while provisioning (after a restart): finish, then switch",
			allocate.Component{Failed: true, Allocation: alloc(phoenix.PhaseProvisioning)},
			[]allocate.Action{{Kind: allocate.Prewarm, Members: []phoenix.ComponentID{"inventory", "orders"}}, {Kind: allocate.Switch}}},
		{"quiet for the release period: release",
			allocate.Component{Risk: risk(0.05, 0, 0.1, 0), Allocation: alloc(phoenix.PhasePrewarmed), QuietSince: t0.Add(-10 * time.Second)},
			[]allocate.Action{{Kind: allocate.Release}}},
		{"quiet, but not long enough: keep",
			allocate.Component{Risk: risk(0.05, 0, 0.1, 0), Allocation: alloc(phoenix.PhasePrewarmed), QuietSince: t0.Add(-9 * time.Second)}, nil},
		{"operator asks to switch a prewarmed replica",
			allocate.Component{Risk: risk(0.6, 0.4, 0.8, 0), Allocation: alloc(phoenix.PhasePrewarmed), SwitchRequested: true},
			[]allocate.Action{{Kind: allocate.Switch, Preemptive: true}}},
		{"risk while a dependency is disrupted: no pre-warm",
			allocate.Component{Risk: risk(0.9, 0.8, 1, 5*time.Second), Disrupted: "inventory is switching"}, nil},
		{"certain and near while a dependency is disrupted: no pre-emptive switch",
			allocate.Component{Risk: risk(0.99, 0.96, 1, 2*time.Second), Allocation: alloc(phoenix.PhasePrewarmed), Disrupted: "inventory failed"}, nil},
		{"failed while a dependency is disrupted: still switch",
			allocate.Component{Allocation: alloc(phoenix.PhasePrewarmed), Failed: true, FailReason: "x", Disrupted: "inventory failed"},
			[]allocate.Action{{Kind: allocate.Switch}}},
		{"pre-warm held after a refusal: no pre-warm on risk",
			allocate.Component{Risk: risk(0.9, 0.8, 1, 5*time.Second), PrewarmHeld: true}, nil},
		{"pre-warm held, but failed: emergency pre-warm and switch",
			allocate.Component{Failed: true, FailReason: "x", PrewarmHeld: true},
			[]allocate.Action{{Kind: allocate.Prewarm, Emergency: true, Members: []phoenix.ComponentID{"inventory", "orders"}}, {Kind: allocate.Switch}}},
		{"failed, but the last emergency pre-warm failed a moment ago: wait",
			allocate.Component{Failed: true, FailReason: "x", RetryHeld: true}, nil},
		{"interrupted switch resumes",
			allocate.Component{Allocation: alloc(phoenix.PhaseSwitching)}, []allocate.Action{{Kind: allocate.Switch}}},
		{"interrupted release resumes",
			allocate.Component{Allocation: alloc(phoenix.PhaseReleasing)}, []allocate.Action{{Kind: allocate.Release}}},
		{"interrupted pre-warm resumes with its members",
			allocate.Component{Allocation: alloc(phoenix.PhaseProvisioning)},
			[]allocate.Action{{Kind: allocate.Prewarm, Members: []phoenix.ComponentID{"inventory", "orders"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.Name = "orders"
			c.Closure = closure
			got := allocate.Decide(allocate.View{Now: t0, Thresholds: th, Components: []allocate.Component{c}})
			for i := range tt.want {
				tt.want[i].Component = "orders"
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(allocate.Action{}, "Reason"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			for _, a := range got {
				if a.Reason == "" {
					t.Errorf("%s action without a reason", a.Kind)
				}
			}
		})
	}
}

// TestDecideIsPure: the same view gives the same plan, and the view is not
// modified.
func TestDecideIsPure(t *testing.T) {
	a := alloc(phoenix.PhasePrewarmed)
	v := allocate.View{Now: t0, Thresholds: th, Components: []allocate.Component{
		{Name: "orders", Risk: risk(0.99, 0.97, 1, time.Second), Allocation: a, Closure: []phoenix.ComponentID{"inventory"}},
		{Name: "inventory", Risk: risk(0.7, 0.5, 0.9, 0)},
	}}
	before := cmp.Diff(nil, v)
	p1, p2 := allocate.Decide(v), allocate.Decide(v)
	if diff := cmp.Diff(p1, p2); diff != "" {
		t.Fatalf("two calls differ:\n%s", diff)
	}
	if after := cmp.Diff(nil, v); after != before {
		t.Fatal("Decide modified its view")
	}
	if len(p1) != 2 {
		t.Fatalf("want a switch of orders and a pre-warm of inventory, got %+v", p1)
	}
}
