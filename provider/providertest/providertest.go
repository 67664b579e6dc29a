// Package providertest is the conformance suite every provider passes: the
// same behaviour, checked the same way, whatever the environment behind it.
package providertest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/provider"
)

// Harness adapts a provider to the suite.
type Harness struct {
	// New returns a provider over the environment under test. It is called
	// more than once: a second value must see the instances the first one
	// started (as a restarted daemon would).
	New func(t *testing.T) provider.Provider
	// Command starts an HTTP server that answers GET /healthz with 200 and
	// GET /data with the content of {data_dir}/data. It may use the
	// placeholders {addr}, {port} and {data_dir}.
	Command []string
	// Env is the environment the Command needs.
	Env map[string]string
	// Kill stops an instance behind the provider's back, as a crash would.
	Kill func(t *testing.T, inst provider.Instance)
	// SharedDataDir is true when Instance.DataDir is a path the test process
	// can write to and the instance reads (process and docker bind mounts).
	SharedDataDir bool
	// EnforcesCapacity is true when the provider refuses, with
	// provider.ErrNoCapacity, a spec its offers cannot fit, and its offers'
	// Free counts the instances it runs. New must then return a provider
	// whose offers have Free of at least 2.
	EnforcesCapacity bool
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Run("ProvisionIsIdempotent", func(t *testing.T) { testIdempotent(t, h) })
	t.Run("StatusAndRelease", func(t *testing.T) { testStatusRelease(t, h) })
	t.Run("AdoptedByNewProvider", func(t *testing.T) { testAdopt(t, h) })
	t.Run("CrashedInstanceIsRestarted", func(t *testing.T) { testCrash(t, h) })
	t.Run("BadSpecsAreRefused", func(t *testing.T) { testBadSpecs(t, h) })
	t.Run("Offers", func(t *testing.T) { testOffers(t, h) })
	t.Run("ConcurrentProvisionStartsOne", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("DataSurvivesCrash", func(t *testing.T) { testDataSurvivesCrash(t, h) })
	t.Run("ReleaseRemovesData", func(t *testing.T) { testReleaseRemovesData(t, h) })
	t.Run("RefusesBeyondCapacity", func(t *testing.T) { testRefusesBeyondCapacity(t, h) })
	t.Run("OffersCountWhatRuns", func(t *testing.T) { testOffersCountWhatRuns(t, h) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func spec(t *testing.T, h Harness) provider.Spec {
	id := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	if len(id) > 60 {
		id = id[len(id)-60:]
	}
	id = strings.Trim(id, "-.")
	return provider.Spec{ID: id, Component: "conformance", Command: h.Command, Env: h.Env}
}

func provision(t *testing.T, p provider.Provider, s provider.Spec) provider.Instance {
	t.Helper()
	inst, err := p.Provision(ctx(t), s)
	if err != nil {
		t.Fatalf("Provision(%s): %v", s.ID, err)
	}
	t.Cleanup(func() { _ = p.Release(context.Background(), s.ID) })
	waitHealthy(t, inst)
	return inst
}

// waitHealthy polls the instance until it answers, or fails the test.
func waitHealthy(t *testing.T, inst provider.Instance) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + inst.Addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("instance %s at %s never became healthy: %v", inst.ID, inst.Addr, last)
}

func testIdempotent(t *testing.T, h Harness) {
	p := h.New(t)
	s := spec(t, h)
	a := provision(t, p, s)
	b, err := p.Provision(ctx(t), s)
	if err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if a.Addr != b.Addr || a.Detail != b.Detail || a.DataDir != b.DataDir {
		t.Fatalf("second Provision started another instance: %+v then %+v", a, b)
	}
	if a.State != provider.StateRunning {
		t.Fatalf("state %q, want running", a.State)
	}
	if h.SharedDataDir {
		want := "state written by the controller"
		if err := os.WriteFile(filepath.Join(a.DataDir, "data"), []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + a.Addr + "/data")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != want {
			t.Fatalf("instance read %q from its data dir, want %q", got, want)
		}
	}
}

func testStatusRelease(t *testing.T, h Harness) {
	p := h.New(t)
	s := spec(t, h)
	inst := provision(t, p, s)
	st, err := p.Status(ctx(t), s.ID)
	if err != nil || st.State != provider.StateRunning || st.Addr != inst.Addr {
		t.Fatalf("Status = %+v, %v; want running at %s", st, err, inst.Addr)
	}
	if err := p.Release(ctx(t), s.ID); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := p.Status(ctx(t), s.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Status after Release: %v, want ErrNotFound", err)
	}
	if _, err := http.Get("http://" + inst.Addr + "/healthz"); err == nil {
		t.Fatalf("instance still answers after Release")
	}
	if err := p.Release(ctx(t), s.ID); err != nil {
		t.Fatalf("second Release: %v, want nil", err)
	}
	if _, err := p.Status(ctx(t), "never-provisioned"); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Status of unknown id: %v, want ErrNotFound", err)
	}
}

func testAdopt(t *testing.T, h Harness) {
	s := spec(t, h)
	first := provision(t, h.New(t), s)
	second := h.New(t)
	st, err := second.Status(ctx(t), s.ID)
	if err != nil || st.State != provider.StateRunning {
		t.Fatalf("a new provider does not see the running instance: %+v, %v", st, err)
	}
	again, err := second.Provision(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if again.Detail != first.Detail || again.Addr != first.Addr {
		t.Fatalf("a new provider started a duplicate: %+v, first %+v", again, first)
	}
}

// waitExited waits until the provider reports the killed instance id as
// exited.
func waitExited(t *testing.T, p provider.Provider, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := p.Status(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == provider.StateExited {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status still %q after the instance was killed", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testCrash(t *testing.T, h Harness) {
	p := h.New(t)
	s := spec(t, h)
	inst := provision(t, p, s)
	h.Kill(t, inst)
	waitExited(t, p, s.ID)
	again, err := p.Provision(ctx(t), s)
	if err != nil {
		t.Fatalf("Provision after crash: %v", err)
	}
	waitHealthy(t, again)
	if again.Detail == inst.Detail {
		t.Fatalf("Provision after a crash returned the dead instance (%s)", inst.Detail)
	}
}

func testBadSpecs(t *testing.T, h Harness) {
	p := h.New(t)
	for _, s := range []provider.Spec{
		{ID: "", Command: h.Command},
		{ID: "../escape", Command: h.Command},
		{ID: "no-command"},
	} {
		_, err := p.Provision(ctx(t), s)
		if err == nil {
			_ = p.Release(context.Background(), s.ID)
		}
		if !errors.Is(err, provider.ErrInvalidSpec) {
			t.Errorf("Provision(%+v) = %v, want provider.ErrInvalidSpec", s, err)
		}
	}
}

func testOffers(t *testing.T, h Harness) {
	offers, err := h.New(t).Offers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(offers) == 0 {
		t.Fatal("no offers")
	}
	for _, o := range offers {
		if o.ID == "" || o.Provider == "" || o.Free < 0 {
			t.Errorf("malformed offer %+v", o)
		}
	}
}
