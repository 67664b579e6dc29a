package allocate

import (
	"fmt"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Thresholds are the probabilities at which the decider acts.
type Thresholds struct {
	Prewarm      float64
	Switch       float64
	SwitchWithin time.Duration
	Release      float64
	ReleaseAfter time.Duration
}

// Component is the decider's view of one component at one moment.
type Component struct {
	Name phoenix.ComponentID
	Risk phoenix.Risk
	// Allocation is the component's open allocation (provisioning,
	// prewarmed or switching), nil if none.
	Allocation *phoenix.Allocation
	// QuietSince is when the risk last fell below the release threshold and
	// has stayed there; zero while it is above.
	QuietSince time.Time
	// Failed is set when the failure of the component's active instance is
	// confirmed.
	Failed bool
	// FailReason says what confirmed the failure.
	FailReason string
	// Closure is what the component needs, dependencies first.
	Closure []phoenix.ComponentID
	// SwitchRequested is set when an operator asked for a switch.
	SwitchRequested bool
	// Switched is the allocation whose replica serves the component now
	// (after a switch), nil if the original primary serves.
	Switched *phoenix.Allocation
	// FailBackRequested is set when an operator asked to move traffic back
	// to the original primary; FailedBack when the proxy did it by policy.
	FailBackRequested, FailedBack bool
	// Disrupted, when not empty, says that something the component needs
	// is failing or being switched: its own risk then reflects that (calls
	// held by a proxy look like a latency climb), so no action is taken on
	// risk alone; confirmed failures are still acted on.
	Disrupted string
	// PrewarmHeld is set while a refused pre-warm (budget, no room) is not
	// to be tried again on risk alone.
	PrewarmHeld bool
	// RetryHeld is set for a moment after a replica built for a confirmed
	// failure could not be made: the next attempt waits (no retry storm).
	RetryHeld bool
	// Busy is set while an earlier action on the component is still running;
	// the decider leaves such a component alone.
	Busy bool
}

// View is an immutable snapshot of what the decider reads.
type View struct {
	Now        time.Time
	Thresholds Thresholds
	Components []Component
}

// Kind is what an Action asks for.
type Kind string

// Action kinds.
const (
	// Prewarm provisions Members in the secondary environment, copies their
	// state and registers the component's replica as standby.
	Prewarm Kind = "prewarm"
	// Switch moves the component's traffic to its replica.
	Switch Kind = "switch"
	// Release stops the replicas of an allocation whose risk has passed.
	Release Kind = "release"
	// FailBack moves traffic back to the original primary and releases the
	// replicas that served it meanwhile.
	FailBack Kind = "failback"
)

// Action is one step of a plan, with the reason it was decided.
type Action struct {
	Kind      Kind
	Component phoenix.ComponentID
	// Members to provision, dependencies first and the component last
	// (Prewarm only).
	Members []phoenix.ComponentID
	// Emergency marks a Prewarm decided after the failure, with no warning.
	Emergency bool
	// Preemptive marks a Switch decided on risk, before any failure.
	Preemptive bool
	Reason     string
}

// Decide returns the actions the view calls for. It is a pure function:
// the same view gives the same plan, so it is tested over tables of views,
// and the caller carries the plan out.
func Decide(v View) []Action {
	var plan []Action
	for _, c := range v.Components {
		if c.Busy {
			continue
		}
		plan = append(plan, decideOne(v, c)...)
	}
	return plan
}

func decideOne(v View, c Component) []Action {
	t := v.Thresholds
	a := c.Allocation
	switch {
	case c.Switched != nil && c.FailedBack:
		return []Action{{Kind: FailBack, Component: c.Name, Reason: "the proxy moved traffic back to the original primary by policy"}}
	case c.Switched != nil && c.FailBackRequested && !c.Failed:
		return []Action{{Kind: FailBack, Component: c.Name, Reason: "requested by an operator"}}
	case c.Failed && a == nil && c.RetryHeld:
		return nil
	case c.Failed && a == nil:
		members := append(append([]phoenix.ComponentID(nil), c.Closure...), c.Name)
		return []Action{
			{Kind: Prewarm, Component: c.Name, Members: members, Emergency: true,
				Reason: "failure confirmed with no replica ready (" + c.FailReason + "): building one now"},
			{Kind: Switch, Component: c.Name, Reason: "failure confirmed: " + c.FailReason},
		}
	case c.Failed && (a.Phase == phoenix.PhasePrewarmed || a.Phase == phoenix.PhaseSwitching):
		return []Action{{Kind: Switch, Component: c.Name, Reason: "failure confirmed: " + c.FailReason}}
	case c.Failed && a.Phase == phoenix.PhaseProvisioning:
		// The prewarm was interrupted (a restart); finish it, then switch.
		return []Action{
			{Kind: Prewarm, Component: c.Name, Members: memberNames(a), Emergency: a.Emergency, Reason: "resuming the interrupted pre-warm"},
			{Kind: Switch, Component: c.Name, Reason: "failure confirmed: " + c.FailReason},
		}
	case a == nil:
		if c.Risk.Probability >= t.Prewarm && c.Disrupted == "" && !c.PrewarmHeld {
			members := append(append([]phoenix.ComponentID(nil), c.Closure...), c.Name)
			return []Action{{Kind: Prewarm, Component: c.Name, Members: members,
				Reason: fmt.Sprintf("P(failure within %s) = %.2f [%.2f, %.2f] >= pre-warm threshold %.2f: %s",
					c.Risk.Horizon, c.Risk.Probability, c.Risk.Lower, c.Risk.Upper, t.Prewarm, topReason(c.Risk))}}
		}
	case a.Phase == phoenix.PhaseProvisioning:
		return []Action{{Kind: Prewarm, Component: c.Name, Members: memberNames(a), Emergency: a.Emergency, Reason: "resuming the interrupted pre-warm"}}
	case a.Phase == phoenix.PhaseSwitching:
		return []Action{{Kind: Switch, Component: c.Name, Reason: "resuming the interrupted switch"}}
	case a.Phase == phoenix.PhaseReleasing:
		return []Action{{Kind: Release, Component: c.Name, Reason: "resuming the interrupted release"}}
	case a.Phase == phoenix.PhasePrewarmed && c.SwitchRequested:
		return []Action{{Kind: Switch, Component: c.Name, Preemptive: true, Reason: "requested by an operator"}}
	case a.Phase == phoenix.PhasePrewarmed:
		// Pre-emptive switch on the lower bound of the probability's
		// confidence interval: "nearly certain" must hold even at the
		// pessimistic end of what the data allows. And only when the failure
		// is near: a standby that waits costs little, and a trend far from
		// its limit may still turn.
		if c.Risk.Lower >= t.Switch && c.Risk.LeadTime <= t.SwitchWithin && c.Disrupted == "" {
			return []Action{{Kind: Switch, Component: c.Name, Preemptive: true,
				Reason: fmt.Sprintf("pre-emptive: P(failure within %s) >= %.2f even at the lower confidence bound (%.2f), expected in %s: %s",
					c.Risk.Horizon, t.Switch, c.Risk.Lower, c.Risk.LeadTime.Round(100*time.Millisecond), topReason(c.Risk))}}
		}
		if !c.QuietSince.IsZero() && v.Now.Sub(c.QuietSince) >= t.ReleaseAfter {
			return []Action{{Kind: Release, Component: c.Name,
				Reason: fmt.Sprintf("risk has stayed below %.2f for %s (now %.2f)", t.Release, v.Now.Sub(c.QuietSince).Round(time.Second), c.Risk.Probability)}}
		}
	}
	return nil
}

func memberNames(a *phoenix.Allocation) []phoenix.ComponentID {
	out := make([]phoenix.ComponentID, len(a.Members))
	for i, m := range a.Members {
		out[i] = m.Component
	}
	return out
}

func topReason(r phoenix.Risk) string {
	if len(r.Signals) == 0 {
		return "no signal detail"
	}
	return r.Signals[0].Reason
}
