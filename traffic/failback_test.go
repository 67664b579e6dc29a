package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFailbackDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	auto := FailbackPolicy{Enabled: true, Auto: true, HealthyFor: 30 * time.Second, MinDwell: 2 * time.Minute}
	tests := []struct {
		name string
		p    FailbackPolicy
		v    FailbackView
		want bool
		why  string
	}{
		{"off", FailbackPolicy{Enabled: true}, FailbackView{Now: now, HaveFallback: true, HealthySince: now.Add(-time.Hour), LastSwitch: now.Add(-time.Hour)}, false, "off"},
		{"no fallback", auto, FailbackView{Now: now}, false, "no fallback"},
		{"fallback failing", auto, FailbackView{Now: now, HaveFallback: true, LastSwitch: now.Add(-time.Hour)}, false, "fails its health checks"},
		{"healthy too briefly", auto, FailbackView{Now: now, HaveFallback: true, HealthySince: now.Add(-10 * time.Second), LastSwitch: now.Add(-time.Hour)}, false, "healthy for 10s of the 30s"},
		{"switched too recently", auto, FailbackView{Now: now, HaveFallback: true, HealthySince: now.Add(-time.Hour), LastSwitch: now.Add(-time.Minute)}, false, "under the 2m0s dwell"},
		{"switching", auto, FailbackView{Now: now, HaveFallback: true, Switching: true, HealthySince: now.Add(-time.Hour), LastSwitch: now.Add(-time.Hour)}, false, "in progress"},
		{"due", auto, FailbackView{Now: now, HaveFallback: true, HealthySince: now.Add(-31 * time.Second), LastSwitch: now.Add(-3 * time.Minute)}, true, "passed every check for 31s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := tc.p.withDefaults().Due(tc.v)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("Due = %v %q, want %v and a reason containing %q", got, why, tc.want, tc.why)
			}
		})
	}
	if err := (Config{Component: "o", FailBack: FailbackPolicy{Auto: true}}).withDefaults().validate(); err == nil || !strings.Contains(err.Error(), "FailBack.Auto needs Enabled") {
		t.Errorf("Auto without Enabled: validate = %v", err)
	}
}

// TestFailBackOnCommand: after a switch, FailBack moves traffic back to the
// old primary under load, with state copied back inside the switch: no
// request fails and no acknowledged write is lost. The replica becomes the
// fallback, so traffic can move forward again.
func TestFailBackOnCommand(t *testing.T) {
	p, primary, standby, _ := pair(t, Config{FailBack: FailbackPolicy{Enabled: true}})
	l := startLoad(t, p)
	l.awaitServed(t, primary.name, time.Time{}, 50)
	if err := p.FailBack(context.Background(), nil); !errors.Is(err, ErrNoFallback) {
		t.Errorf("FailBack before any switch = %v, want ErrNoFallback", err)
	}
	err := p.Switch(context.Background(), func(ctx context.Context) error { return copyState(ctx, primary, standby) })
	if err != nil {
		t.Fatal(err)
	}
	l.awaitServed(t, standby.name, time.Now(), 100)
	if s := p.Status(); len(s.Fallback) != 1 || s.Fallback[0].Name != primary.name {
		t.Fatalf("Fallback after the switch = %+v, want %s", s.Fallback, primary.name)
	}
	err = p.FailBack(context.Background(), func(ctx context.Context) error { return copyState(ctx, standby, primary) })
	if err != nil {
		t.Fatalf("FailBack: %v", err)
	}
	back := time.Now()
	l.awaitServed(t, primary.name, back, 100)
	l.halt()
	l.checkNoFailures(t)
	if n := l.served(standby.name, back); n > 0 {
		t.Errorf("%d requests started after the fail back went to the replica", n)
	}
	if s := p.Status(); len(s.Fallback) != 1 || s.Fallback[0].Name != standby.name || s.Active.Name != primary.name {
		t.Errorf("after fail back: active %s, fallback %+v; want %s and %s", s.Active.Name, s.Fallback, primary.name, standby.name)
	}
	var stored map[string]string
	if err := json.Unmarshal([]byte(primary.get(t, "/dump")), &stored); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for k, v := range l.ackedWrites() {
		if stored[k] != v {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes missing on the primary after fail back", lost)
	}

	// A dead fallback is refused.
	standby.signal(t, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the fallback to fail its checks", func() bool {
		s := p.Status()
		return len(s.Fallback) == 1 && !s.Fallback[0].Healthy
	})
	if err := p.FailBack(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "passes its health checks") {
		t.Errorf("FailBack to a dead fallback = %v, want a refusal", err)
	}
}

// TestFailBackByPolicy: with Auto, traffic returns to the primary by itself
// once it has been healthy long enough and the dwell has passed.
func TestFailBackByPolicy(t *testing.T) {
	var mu sync.Mutex
	var causes []string
	prepared := make(chan struct{}, 1)
	p, primary, standby, _ := pair(t, Config{
		FailBack: FailbackPolicy{Enabled: true, Auto: true, HealthyFor: 300 * time.Millisecond, MinDwell: 600 * time.Millisecond},
		FailBackPrepare: func(context.Context) error {
			prepared <- struct{}{}
			return nil
		},
		OnRoute: func(c RouteChange) {
			mu.Lock()
			causes = append(causes, c.Cause)
			mu.Unlock()
		},
	})
	l := startLoad(t, p)
	l.awaitServed(t, primary.name, time.Time{}, 50)
	if err := p.Switch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	switched, switchedAt := time.Now(), p.Status().LastSwitch
	l.awaitServed(t, standby.name, switched, 20)
	<-prepared
	l.awaitServed(t, primary.name, switched, 100)
	l.halt()
	l.checkNoFailures(t)
	if got := p.Status().LastSwitch.Sub(switchedAt); got < 600*time.Millisecond {
		t.Errorf("failed back %s after the switch, before the 600ms dwell", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(causes, []string{"start", "switch", "failback"}) {
		t.Errorf("OnRoute causes = %v, want [start switch failback]", causes)
	}
}
