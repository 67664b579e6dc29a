package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/provider/docker/dockertest"
)

// killedAfterPrewarm runs the slow-leak scenario whose primary is killed
// from outside once its replica is ready, and checks the promise:
// the secondary serves, no request fails, no acknowledged key is lost.
func killedAfterPrewarm(t *testing.T, provider string) (Summary, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("a scenario of about 30 s; not in -short mode")
	}
	var tl bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Options{Scenario: "leak" + killOnPrewarm, Provider: provider, Executable: phoenixBin, Timeline: &tl})
	t.Logf("timeline:\n%s", tl.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Switched || sum.SwitchedPreemptively {
		t.Errorf("switched %v (pre-emptively %v): want a switch after the kill", sum.Switched, sum.SwitchedPreemptively)
	}
	if sum.RequestsFailed != 0 || sum.KeysLost != 0 || sum.KeysWritten < 100 {
		t.Errorf("%d of %d requests failed (%v), %d of %d keys lost", sum.RequestsFailed, sum.RequestsTotal, sum.FailureReasons, sum.KeysLost, sum.KeysWritten)
	}
	if sum.PrewarmedAt == nil || sum.FailedAt == nil || !sum.PrewarmedAt.Before(*sum.FailedAt) {
		t.Errorf("prewarmed_at %v, failed_at %v: the replica must be ready first", sum.PrewarmedAt, sum.FailedAt)
	}
	return sum, tl.String()
}

// TestDockerKilledContainer is issue 8's Docker check: the shop runs as
// containers on a primary network; orders is predicted to fail; Phoenix
// places orders and its closure (inventory) as containers on the secondary
// network; the primary orders container is killed through the Engine API;
// the secondary serves with no failed request and no lost key.
func TestDockerKilledContainer(t *testing.T) {
	dockertest.Engine(t) // skips without an engine; fails when CI=true
	_, tl := killedAfterPrewarm(t, "docker")
	for _, m := range []string{"orders-1.inventory", "orders-1.orders"} {
		if !strings.Contains(tl, "provisioned "+m+" started in the secondary environment (docker,") {
			t.Errorf("%s was not placed as a container in the secondary environment", m)
		}
	}
}

// TestProcessKilledAfterPrewarm is the same on local processes.
func TestProcessKilledAfterPrewarm(t *testing.T) {
	killedAfterPrewarm(t, "process")
}
