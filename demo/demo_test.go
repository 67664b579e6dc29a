package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// phoenixBin is the phoenix binary built once for this package's tests: the
// demo starts the shop's services from it, as it does from a user's build.
var phoenixBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "phoenix-demo-test-")
	if err != nil {
		panic(err)
	}
	phoenixBin = filepath.Join(dir, "phoenix")
	// Static, as a release is: the Docker tests put this very binary in
	// their image instead of building another.
	build := exec.Command("go", "build", "-o", phoenixBin, "github.com/phoenixsre/phoenix/cmd/phoenix")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic("build phoenix: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runScenario plays o.Scenario with this package's phoenix binary and
// returns the summary and the timeline (the event log as people read it).
func runScenario(t *testing.T, o Options) (Summary, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("the demo scenarios take about 25 s each; not in -short mode")
	}
	var tl bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o.Executable, o.Timeline = phoenixBin, &tl
	sum, err := Run(ctx, o)
	t.Logf("timeline:\n%s", tl.String())
	if err != nil {
		t.Fatalf("demo %s: %v", o.Scenario, err)
	}
	t.Logf("summary: %+v", sum)
	if sum.KeysWritten < 100 {
		t.Fatalf("only %d keys written: the load generator did not run", sum.KeysWritten)
	}
	if sum.KeysLost != 0 {
		t.Errorf("keys_lost = %d, want 0", sum.KeysLost)
	}
	return sum, tl.String()
}

// TestLeak is the first check: the failure is predicted, the replica
// is pre-warmed before the failure, traffic switches, and no request fails
// and no acknowledged key is lost.
func TestLeak(t *testing.T) {
	s, _ := runScenario(t, Options{Scenario: "leak"})
	if s.RequestsFailed != 0 {
		t.Errorf("requests_failed = %d (%v), want 0", s.RequestsFailed, s.FailureReasons)
	}
	if !s.Switched {
		t.Error("switched = false")
	}
	if s.PrewarmedAt == nil || s.FailedAt == nil || !s.PrewarmedAt.Before(*s.FailedAt) {
		t.Errorf("prewarmed_at %v is not before failed_at %v", s.PrewarmedAt, s.FailedAt)
	}
	// Passive discovery: the proxies saw orders call inventory, and the
	// process holding the client socket was resolved to orders.
	if !slices.ContainsFunc(s.Edges, func(e string) bool { return strings.HasPrefix(e, "orders->inventory") && strings.Contains(e, "proxy") }) {
		t.Errorf("no orders->inventory edge learnt from the proxies: %v", s.Edges)
	}
	if s.SecondaryInstanceSeconds <= 0 || s.SecondaryInstanceSeconds >= s.HotStandbyInstanceSeconds {
		t.Errorf("secondary %.1f instance-seconds vs hot standby %.1f", s.SecondaryInstanceSeconds, s.HotStandbyInstanceSeconds)
	}
}

// TestCrash: with no warning Phoenix can only react; it must still switch and
// lose no key. Failed requests are reported, not required to be zero.
func TestCrash(t *testing.T) {
	s, _ := runScenario(t, Options{Scenario: "crash"})
	if !s.Switched {
		t.Error("switched = false")
	}
	if s.PredictedAt != nil {
		t.Errorf("predicted_at = %v for a failure with no warning", s.PredictedAt)
	}
	t.Logf("crash: %d of %d requests failed (%v)", s.RequestsFailed, s.RequestsTotal, s.FailureReasons)
}

// TestFalseAlarm: the replica may be made, must be released, traffic must
// not move, and no request fails.
func TestFalseAlarm(t *testing.T) {
	s, _ := runScenario(t, Options{Scenario: "false-alarm"})
	if s.Switched {
		t.Error("switched = true on a false alarm")
	}
	if s.ReleasedAt == nil {
		t.Error("released_at = null: the replica was not released (or never made)")
	}
	if s.RequestsFailed != 0 {
		t.Errorf("requests_failed = %d (%v), want 0", s.RequestsFailed, s.FailureReasons)
	}
}

// TestBudgetRefusesPrewarm: with a budget too small for any replica, the
// predicted failure is not pre-warmed for (the refusal is logged), and the
// failure itself is still survived: a replica built after a confirmed
// failure is never refused.
func TestBudgetRefusesPrewarm(t *testing.T) {
	sum, out := runScenario(t, Options{Scenario: "leak", budget: 0.0001})
	if !strings.Contains(out, "over budget:") {
		t.Error("no budget refusal in the event log")
	}
	if !strings.Contains(out, "over budget, but a failure is confirmed") {
		t.Error("the emergency replica's budget overrun was not logged")
	}
	if sum.PredictedAt != nil && sum.PrewarmedAt != nil && sum.PrewarmedAt.Before(*sum.FailedAt) {
		t.Errorf("a replica was pre-warmed at %v although the budget refuses it", sum.PrewarmedAt)
	}
	if !sum.Switched || sum.KeysLost != 0 {
		t.Errorf("switched %v, %d keys lost: the failure must still be survived", sum.Switched, sum.KeysLost)
	}
}

// TestPortSetNeverRepeats: the ports a run is given are distinct across
// calls, though each is released before it is used and the kernel may
// offer it again.
func TestPortSetNeverRepeats(t *testing.T) {
	s := &portSet{}
	seen := map[string]bool{}
	for range 200 {
		ports, err := s.free("127.0.0.1", 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %s given twice", p)
			}
			seen[p] = true
		}
	}
}
