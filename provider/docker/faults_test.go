package docker_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/docker"
)

// answers is true when the instance answers /healthz within 300ms.
func answers(addr string) bool {
	c := &http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// faultsFixture is one victim container and the means to hurt it.
type faultsFixture struct {
	p       *docker.Provider
	f       *docker.Faults
	spec    provider.Spec
	ns, net string
}

// start provisions the victim (again) and waits until it answers.
func (x *faultsFixture) start(t *testing.T) (provider.Instance, string) {
	t.Helper()
	inst, err := x.p.Provision(t.Context(), x.spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "instance answers", func() bool { return answers(inst.Addr) })
	return inst, x.p.ContainerName(x.spec.ID)
}

func (x *faultsFixture) status(t *testing.T) provider.Instance {
	t.Helper()
	st, err := x.p.Status(t.Context(), x.spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFaults injects each fault into a running container and checks what
// a client and the provider then see, and that the container recovers.
func TestFaults(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	x := &faultsFixture{p: newProvider(t, cli, img, ns, network, t.TempDir()), f: docker.NewFaults(cli),
		spec: provider.Spec{ID: "victim", Component: "orders", Command: serverCommand}, ns: ns, net: network}
	t.Run("Pause", x.testPause)
	t.Run("Disconnect", x.testDisconnect)
	t.Run("Stop", x.testStop)
	t.Run("Kill", x.testKill)
	t.Run("UnknownContainer", x.testUnknown)
}

func (x *faultsFixture) testPause(t *testing.T) {
	inst, name := x.start(t)
	if err := x.f.Pause(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if answers(inst.Addr) {
		t.Fatal("a paused container answered")
	}
	if st := x.status(t); st.State != provider.StateRunning || !strings.Contains(st.Detail, "paused") {
		t.Fatalf("Status of a paused container: %+v", st)
	}
	if err := x.f.Unpause(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "answers after unpause", func() bool { return answers(inst.Addr) })
}

func (x *faultsFixture) testDisconnect(t *testing.T) {
	inst, name := x.start(t)
	if err := x.f.Disconnect(t.Context(), name, x.net); err != nil {
		t.Fatal(err)
	}
	if answers(inst.Addr) {
		t.Fatal("a disconnected container answered")
	}
	if st := x.status(t); st.State != provider.StateRunning || st.Addr != "" || !strings.Contains(st.Detail, "not on network") {
		t.Fatalf("Status of a disconnected container: %+v", st)
	}
	if err := x.f.Connect(t.Context(), name, x.net); err != nil {
		t.Fatal(err)
	}
	st := x.status(t)
	if st.Addr == "" {
		t.Fatalf("no address after reconnecting: %+v", st)
	}
	waitFor(t, 5*time.Second, "answers after reconnect", func() bool { return answers(st.Addr) })
}

func (x *faultsFixture) testStop(t *testing.T) {
	inst, name := x.start(t)
	if err := x.f.Stop(t.Context(), name, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := x.status(t); st.State != provider.StateExited || !strings.Contains(st.Detail, "exited") {
		t.Fatalf("Status of a stopped container: %+v", st)
	}
	again, err := x.p.Provision(t.Context(), x.spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.Detail == inst.Detail {
		t.Fatalf("Provision after a stop returned the stopped container")
	}
	waitFor(t, 20*time.Second, "replacement answers", func() bool { return answers(again.Addr) })
}

func (x *faultsFixture) testKill(t *testing.T) {
	_, name := x.start(t)
	if err := x.f.Kill(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "killed container exited", func() bool { return x.status(t).State == provider.StateExited })
	if st := x.status(t); !strings.Contains(st.Detail, "exited 137") {
		t.Fatalf("Status of a killed container: %+v, want exit 137 (SIGKILL)", st)
	}
}

func (x *faultsFixture) testUnknown(t *testing.T) {
	for _, err := range []error{
		x.f.Kill(t.Context(), x.ns+"-nothing"),
		x.f.Pause(t.Context(), x.ns+"-nothing"),
		x.f.Disconnect(t.Context(), x.ns+"-nothing", x.net),
		x.f.Disconnect(t.Context(), x.p.ContainerName(x.spec.ID), x.ns+"-no-network"),
	} {
		if err == nil {
			t.Error("a fault on something that does not exist succeeded")
		}
	}
}
