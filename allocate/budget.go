package allocate

import (
	"fmt"
	"math"
	"time"
)

// BudgetWindow is the "day" of a budget in instance-hours per day: any 24
// hours ending now. A rolling window has no midnight at which a spent
// budget suddenly comes back.
const BudgetWindow = 24 * time.Hour

// Interval is when one secondary instance ran; End is zero while it runs.
type Interval struct {
	Start, End time.Time
}

// BudgetView is the snapshot CheckBudget reads.
type BudgetView struct {
	Now time.Time
	// InstanceHoursPerDay is the cap; 0 means no cap.
	InstanceHoursPerDay float64
	// Instances are the secondary instances that ran within the window
	// (older ones may be included: only their overlap counts).
	Instances []Interval
}

// BudgetRequest is what a plan would add.
type BudgetRequest struct {
	Instances int
	// Hold is how long the new instances, and the running ones, are
	// expected to run from now: the pre-warm until the risk passes, at
	// least the release cool-down.
	Hold time.Duration
}

// BudgetVerdict is the answer, with its arithmetic.
type BudgetVerdict struct {
	Allowed bool
	// Used is the instance-hours spent within the window up to now;
	// Committed what the running instances will spend over Hold; Requested
	// what the new ones will. Cap is InstanceHoursPerDay.
	Used, Committed, Requested, Cap float64
	Reason                          string
}

// CheckBudget says whether a plan fits the budget. It is pure: the caller
// logs a refusal with its Reason.
func CheckBudget(v BudgetView, r BudgetRequest) BudgetVerdict {
	from := v.Now.Add(-BudgetWindow)
	hold := max(r.Hold, 0)
	var used time.Duration
	running := 0
	for _, in := range v.Instances {
		end := in.End
		if end.IsZero() {
			end = v.Now
			running++
		}
		start := in.Start
		if start.Before(from) {
			start = from
		}
		if end.After(v.Now) {
			end = v.Now
		}
		if end.After(start) {
			used += end.Sub(start)
		}
	}
	vd := BudgetVerdict{
		Used:      used.Hours(),
		Committed: float64(running) * hold.Hours(),
		Requested: float64(max(r.Instances, 0)) * hold.Hours(),
		Cap:       v.InstanceHoursPerDay,
	}
	total := vd.Used + vd.Committed + vd.Requested
	arith := fmt.Sprintf("%.2f instance-hours used in the last 24h + %d running x %s + %d new x %s = %.2f",
		vd.Used, running, hold, max(r.Instances, 0), hold, total)
	switch {
	case !(v.InstanceHoursPerDay > 0) || math.IsInf(v.InstanceHoursPerDay, 1):
		vd.Allowed = true
		vd.Reason = "no budget cap: " + arith
	case total <= v.InstanceHoursPerDay:
		vd.Allowed = true
		vd.Reason = fmt.Sprintf("within budget: %s <= cap %.2f instance-hours per day", arith, v.InstanceHoursPerDay)
	default:
		vd.Reason = fmt.Sprintf("over budget: %s > cap %.2f instance-hours per day", arith, v.InstanceHoursPerDay)
	}
	return vd
}
