package allocate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/allocate"
)

func TestCheckBudget(t *testing.T) {
	h := time.Hour
	const running = -1 // ns: the instance has not ended
	ran := func(from, to time.Duration) allocate.Interval {
		in := allocate.Interval{Start: t0.Add(-from)}
		if to != running {
			in.End = t0.Add(-to)
		}
		return in
	}
	// 10 instance-hours finished within the day, one instance running for
	// 2 hours: 12 used.
	day := []allocate.Interval{ran(20*h, 15*h), ran(10*h, 5*h), ran(2*h, running)}
	tests := []struct {
		name    string
		view    allocate.BudgetView
		req     allocate.BudgetRequest
		allowed bool
		used    float64
		reason  string
	}{
		{"no cap", allocate.BudgetView{Now: t0, Instances: day}, allocate.BudgetRequest{Instances: 100, Hold: h}, true, 12, "no budget cap"},
		{"within the cap", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 24, Instances: day}, allocate.BudgetRequest{Instances: 2, Hold: h}, true, 12,
			"within budget: 12.00 instance-hours used in the last 24h + 1 running x 1h0m0s + 2 new x 1h0m0s = 15.00 <= cap 24.00 instance-hours per day"},
		{"exactly the cap", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 15, Instances: day}, allocate.BudgetRequest{Instances: 2, Hold: h}, true, 12, "<= cap 15.00"},
		{"over the cap: refused, with the arithmetic", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 14, Instances: day}, allocate.BudgetRequest{Instances: 2, Hold: h}, false, 12,
			"over budget: 12.00 instance-hours used in the last 24h + 1 running x 1h0m0s + 2 new x 1h0m0s = 15.00 > cap 14.00 instance-hours per day"},
		{"only the part within the last 24 hours counts", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 5, Instances: []allocate.Interval{ran(30*h, 20*h), ran(48*h, 25*h)}},
			allocate.BudgetRequest{Instances: 1, Hold: h}, true, 4, "4.00 instance-hours used"},
		{"an end after now counts up to now", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 5, Instances: []allocate.Interval{ran(2*h, -3*h)}},
			allocate.BudgetRequest{}, true, 2, "0 running"},
		{"a spent budget refuses even a short hold", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 12, Instances: day}, allocate.BudgetRequest{Instances: 1, Hold: time.Minute}, false, 12, "over budget"},
		{"negative request counts as nothing", allocate.BudgetView{Now: t0, InstanceHoursPerDay: 13, Instances: day}, allocate.BudgetRequest{Instances: -5, Hold: -h}, true, 12, "0 new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := allocate.CheckBudget(tt.view, tt.req)
			if v.Allowed != tt.allowed || v.Used < tt.used-1e-9 || v.Used > tt.used+1e-9 || !strings.Contains(v.Reason, tt.reason) {
				t.Fatalf("got %+v\nwant allowed=%v used=%v, reason containing %q", v, tt.allowed, tt.used, tt.reason)
			}
		})
	}
}
