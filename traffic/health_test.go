package traffic

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// step is one input to the hysteresis: a check result or a passive failure.
type step byte

const (
	pass    step = 'P' // a health check passed
	fail    step = 'F' // a health check failed
	suspect step = 'S' // a proxied request failed on transport
)

func TestHysteresis(t *testing.T) {
	tests := []struct {
		name        string
		steps       string
		wantHealthy bool
		wantUsable  bool
		wantFlips   int
	}{
		{"starts healthy", "", true, true, 0},
		{"two failures are tolerated", "FF", true, true, 0},
		{"three failures make it unhealthy", "FFF", false, false, 1},
		{"a pass resets the failure streak", "FFPFF", true, true, 0},
		{"one pass does not make it healthy", "FFFP", false, false, 1},
		{"two passes make it healthy", "FFFPP", true, true, 2},
		{"a failure resets the pass streak", "FFFPFP", false, false, 1},
		{"more failures do not flip again", "FFFFFFF", false, false, 1},
		{"flapping settles", "FFFPPFFFPP", true, true, 4},
		{"suspect holds a healthy backend", "S", true, false, 0},
		{"suspect is not a check failure", "SSSS", true, false, 0},
		{"a pass clears suspect", "SP", true, true, 0},
		{"a failure keeps it suspect", "SF", true, false, 0},
		{"suspect then down", "SFFF", false, false, 1},
		{"recovery clears suspect", "SFFFPP", true, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHysteresis()
			flips := 0
			for _, s := range []byte(tc.steps) {
				if apply(&h, step(s), 3, 2) {
					flips++
				}
			}
			if h.healthy != tc.wantHealthy || h.usable() != tc.wantUsable || flips != tc.wantFlips {
				t.Errorf("after %q: healthy=%v usable=%v flips=%d, want %v %v %d",
					tc.steps, h.healthy, h.usable(), flips, tc.wantHealthy, tc.wantUsable, tc.wantFlips)
			}
		})
	}
}

// apply feeds one step and reports whether healthy flipped.
func apply(h *hysteresis, s step, unhealthyAfter, healthyAfter int) bool {
	switch s {
	case pass:
		return h.observe(true, unhealthyAfter, healthyAfter)
	case fail:
		return h.observe(false, unhealthyAfter, healthyAfter)
	default:
		h.markSuspect()
		return false
	}
}

// FuzzHysteresis checks the state machine's invariants over any sequence
// and thresholds: a flip needs a full streak, usable means healthy and not
// suspect, and a full streak always decides the state.
func FuzzHysteresis(f *testing.F) {
	f.Add([]byte("FFFPP"), uint8(3), uint8(2))
	f.Add([]byte("SFSFPFFFFPPP"), uint8(1), uint8(1))
	f.Add([]byte("PPPPSSSFFPF"), uint8(5), uint8(4))
	f.Fuzz(func(t *testing.T, steps []byte, ua, ha uint8) {
		unhealthyAfter, healthyAfter := int(ua%8)+1, int(ha%8)+1
		h := newHysteresis()
		for i, b := range steps {
			s := [3]step{pass, fail, suspect}[int(b)%3]
			before := h
			flipped := apply(&h, s, unhealthyAfter, healthyAfter)
			if flipped != (before.healthy != h.healthy) {
				t.Fatalf("step %d: flipped=%v but healthy %v -> %v", i, flipped, before.healthy, h.healthy)
			}
			if flipped && h.healthy && h.successes < healthyAfter {
				t.Fatalf("step %d: healthy after %d passes, want %d", i, h.successes, healthyAfter)
			}
			if flipped && !h.healthy && h.failures < unhealthyAfter {
				t.Fatalf("step %d: unhealthy after %d failures, want %d", i, h.failures, unhealthyAfter)
			}
			if h.failures >= unhealthyAfter && h.healthy {
				t.Fatalf("step %d: healthy with %d consecutive failures", i, h.failures)
			}
			if h.successes >= healthyAfter && !h.healthy {
				t.Fatalf("step %d: unhealthy with %d consecutive passes", i, h.successes)
			}
			if h.usable() != (h.healthy && !h.suspect) {
				t.Fatalf("step %d: usable=%v with healthy=%v suspect=%v", i, h.usable(), h.healthy, h.suspect)
			}
			if s == pass && h.suspect {
				t.Fatalf("step %d: still suspect after a passing check", i)
			}
		}
	})
}

// TestCheckTimeoutWhileServing: a check that times out says nothing while
// requests to the backend are being answered (a loaded machine, not a dead
// backend), so the backend stays in service under load; without traffic the
// same timeouts make it unhealthy.
func TestCheckTimeoutWhileServing(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	events := &healthEvents{}
	p := startProxy(t, Config{OnHealth: events.record, HealthInterval: 100 * time.Millisecond, HealthTimeout: 50 * time.Millisecond}, backend.backend())
	l := startLoad(t, p)
	l.awaitServed(t, backend.name, time.Time{}, 20)
	backend.put(t, "/admin/healthdelay/200")
	waitFor(t, 10*time.Second, "checks to time out", func() bool {
		return strings.Contains(p.Status().Active.LastError, "not counted")
	})
	since := time.Now()
	l.awaitServed(t, backend.name, since, 100)
	l.halt()
	l.checkNoFailures(t)
	if s := p.Status(); !s.Active.Healthy || s.Active.ConsecutiveFailures > 0 || s.Held > 0 {
		t.Errorf("under load, timed-out checks counted: %+v, held %d", s.Active, s.Held)
	}
	if reason := events.await(t, backend.name, false); !strings.Contains(reason, "timeout") {
		t.Errorf("without traffic: unhealthy reason %q, want a timeout", reason)
	}
}

func TestInconclusive(t *testing.T) {
	for _, tc := range []struct {
		res      checkResult
		answered bool
		want     bool
	}{
		{checkResult{ok: true}, true, false},
		{checkResult{timeout: true}, true, true},
		{checkResult{timeout: true}, false, false},
		{checkResult{reason: "connection refused"}, true, false},
		{checkResult{reason: "status 500"}, true, false},
	} {
		if got := tc.res.inconclusive(tc.answered); got != tc.want {
			t.Errorf("%+v.inconclusive(%v) = %v, want %v", tc.res, tc.answered, got, tc.want)
		}
	}
}

// TestFastRecheck: once a check disagrees with a backend's health, the next
// ones come every HealthFastInterval, so health flips after UnhealthyAfter
// (HealthyAfter) fast intervals rather than as many full ones: here within
// about one HealthInterval of the change, where full intervals would take at
// least two.
func TestFastRecheck(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	events := &healthEvents{}
	const interval = 3 * time.Second
	p := startProxy(t, Config{
		OnHealth:       events.record,
		HealthInterval: interval, HealthTimeout: time.Second, HealthFastInterval: 20 * time.Millisecond,
		UnhealthyAfter: 3, HealthyAfter: 3,
	}, backend.backend())
	for _, healthy := range []bool{false, true} {
		code := http.StatusInternalServerError
		if healthy {
			code = http.StatusOK
		}
		setHealth(t, backend, code)
		began := time.Now()
		events.await(t, backend.name, healthy)
		if took := time.Since(began); took > interval+interval/2 {
			t.Errorf("healthy=%v took %s after the change; with fast re-checks it is at most one interval (%s) and a few fast ones", healthy, took, interval)
		}
	}
	if st := p.Status(); !st.Active.Healthy {
		t.Errorf("active not healthy at the end: %+v", st.Active)
	}
}
