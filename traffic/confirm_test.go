package traffic

import (
	"strings"
	"testing"
	"time"
)

func TestConfirm(t *testing.T) {
	def := Confirmation{}.WithDefaults()
	tests := []struct {
		name           string
		c              Confirmation
		e              Evidence
		want, preempt  bool
		reasonContains string
	}{
		{"all well", def, Evidence{Healthy: true, Risk: 0.1}, false, false, "no failure signal"},
		{"health alone is suspicion", def, Evidence{Healthy: false, FailedChecks: 3}, false, false, "suspected, not confirmed: 1 of the 2"},
		{"health and errors", def, Evidence{Healthy: false, FailedChecks: 3, Errors: 4}, true, false, "requests failed in a row"},
		{"health and silence", def, Evidence{Healthy: false, Silence: 6 * time.Second}, true, false, "telemetry silent for 6s"},
		{"errors and risk", def, Evidence{Healthy: true, Errors: 3, Risk: 0.6}, true, false, "predicted risk 0.60"},
		{"few errors do not count", def, Evidence{Healthy: false, Errors: 2}, false, false, "1 of the 2"},
		{"short silence does not count", def, Evidence{Healthy: false, Silence: time.Second}, false, false, "1 of the 2"},
		{"unknown silence does not count", def, Evidence{Healthy: true, Risk: 0.7}, false, false, "1 of the 2"},
		{"pre-emptive on high risk", def, Evidence{Healthy: true, Risk: 0.97}, true, true, "pre-emptive"},
		{"pre-emptive off", Confirmation{Preemptive: 2}.WithDefaults(), Evidence{Healthy: true, Risk: 0.99}, false, false, "1 of the 2"},
		{"one signal suffices when configured", Confirmation{MinSignals: 1}.WithDefaults(), Evidence{Healthy: false}, true, false, "health checks failing"},
		{"all four required", Confirmation{MinSignals: 4}.WithDefaults(), Evidence{Healthy: false, Errors: 9, Silence: time.Minute, Risk: 0.8}, true, false, "4 of the 4"},
		{"three of four required", Confirmation{MinSignals: 4, Preemptive: 2}.WithDefaults(), Evidence{Healthy: false, Errors: 9, Silence: time.Minute}, false, false, "3 of the 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.c.Confirm(tc.e)
			if v.Confirmed != tc.want || v.Preemptive != tc.preempt || !strings.Contains(v.Reason, tc.reasonContains) {
				t.Errorf("Confirm(%+v) = %+v, want confirmed=%v preemptive=%v and a reason containing %q",
					tc.e, v, tc.want, tc.preempt, tc.reasonContains)
			}
		})
	}
}

func TestConfirmationValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Confirmation
		want string
	}{
		{Confirmation{}.WithDefaults(), ""},
		{Confirmation{MinSignals: 5}, "MinSignals 5"},
		{Confirmation{Risk: 1.2}, "Risk 1.2"},
		{Confirmation{Silence: -time.Second}, "Silence -1s"},
	} {
		err := tc.c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestStatusEvidence(t *testing.T) {
	up := BackendStatus{Name: "a", Joined: true, Healthy: true}
	down := BackendStatus{Name: "b", Joined: true, Healthy: false, ConsecutiveFailures: 4, ConsecutiveErrors: 7}
	joining := BackendStatus{Name: "c", Joined: false, Healthy: false, ConsecutiveErrors: 0}
	tests := []struct {
		name       string
		s          Status
		wantHealth bool
		wantErrors int64
	}{
		{"single down", Status{Active: down, Pool: []BackendStatus{down}}, false, 7},
		{"one of two down", Status{Active: up, Pool: []BackendStatus{down, up}}, true, 0},
		{"joining members do not count", Status{Active: down, Pool: []BackendStatus{down, joining}}, false, 7},
	}
	for _, tc := range tests {
		e := tc.s.Evidence(2*time.Second, 0.3)
		if e.Healthy != tc.wantHealth || e.Errors != tc.wantErrors || e.Silence != 2*time.Second || e.Risk != 0.3 {
			t.Errorf("%s: Evidence = %+v, want healthy=%v errors=%d", tc.name, e, tc.wantHealth, tc.wantErrors)
		}
	}
}
