package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/control"
)

// daemonProc is a `phoenix run` process under test.
type daemonProc struct {
	cmd  *exec.Cmd
	api  string
	tok  string
	done chan struct{}
}

func startDaemon(t *testing.T, cfgPath, api, token, logPath string) *daemonProc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(phoenixBin, "run", "--config", cfgPath, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, api: "http://" + api, tok: token, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(func() { d.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			return d
		}
		select {
		case <-d.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("daemon exited at start:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon API not up: %v", err)
		}
	}
}

func (d *daemonProc) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

func (d *daemonProc) call(t *testing.T, method, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, d.api+path, nil)
	req.Header.Set("Authorization", "Bearer "+d.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// waitEvent polls the event log until an event matches.
func (d *daemonProc) waitEvent(t *testing.T, timeout time.Duration, match func(phoenix.Event) bool) phoenix.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var after uint64
	for time.Now().Before(deadline) {
		var evs []phoenix.Event
		d.call(t, "GET", fmt.Sprintf("/api/v1/events?after=%d&wait=1s", after), &evs)
		for _, e := range evs {
			after = e.Seq
			if match(e) {
				return e
			}
		}
	}
	t.Fatalf("no matching event within %s", timeout)
	return phoenix.Event{}
}

// instancePIDs reads the process provider's records of an allocation's
// instances.
func instancePIDs(t *testing.T, root string, a *phoenix.Allocation) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range a.Members {
		b, err := os.ReadFile(filepath.Join(root, m.InstanceID, "instance.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct{ PID int }
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		out[m.InstanceID] = rec.PID
	}
	return out
}

// processesWithMarker counts live processes carrying an instance's marker.
func processesWithMarker(root, id string) int {
	want := "PHOENIX_INSTANCE=" + root + "/" + id + "\x00"
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && strings.Contains("\x00"+string(env), "\x00"+want) {
			n++
		}
	}
	return n
}

// TestDaemonKill9Resumes kills `phoenix run` with SIGKILL after it has
// pre-warmed a replica, restarts it, and checks that it resumes from its
// persisted state: the same replica processes (none duplicated, none
// leaked), the standby re-registered, replication resumed, and a switch then
// made through the API loses no acknowledged key.
func TestDaemonKill9Resumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for about 30 s; not in -short mode")
	}
	work := t.TempDir()
	ps := &portSet{}
	ports, err := ps.free("127.0.0.1", 5)
	if err != nil {
		t.Fatal(err)
	}
	proxy := map[string]string{"gateway": ports[0], "orders": ports[1], "inventory": ports[2]}
	api, otlp := ports[3], ports[4]
	stateDir := filepath.Join(work, "state")
	os.MkdirAll(stateDir, 0o700)
	token, adminToken := randomToken(), randomToken()
	if err := os.WriteFile(filepath.Join(stateDir, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	services, ordersDir, err := startShop(ctx, processEnv{exe: phoenixBin, work: work, ports: ps},
		shopEnv{proxy: proxy, otlp: otlp, token: token, adminToken: adminToken}, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	defer stopAll(services)
	primary := map[string]string{}
	for name, s := range services {
		primary[name] = s.addr()
	}
	cfgPath := filepath.Join(work, "phoenix.yaml")
	if err := writeConfig(cfgPath, configData{StateDir: stateDir, OrdersDir: ordersDir, Primary: primary, Proxy: proxy,
		API: api, OTLP: otlp, AdminToken: adminToken, Token: token, ReleaseAfter: "60s"}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(stateDir, "secondary")
	t.Cleanup(func() { releaseSecondary(root) })

	d := startDaemon(t, cfgPath, api, token, filepath.Join(work, "daemon-1.log"))

	load := newLoadGen("http://"+proxy["gateway"], 100, 8)
	lctx, lstop := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); load.run(lctx) }()

	// A climb that Phoenix pre-warms for, but that is far from its limit.
	time.Sleep(4 * time.Second)
	if err := fault(ctx, services["orders"], adminToken, `{"kind":"leak","bytes_per_second":5242880}`); err != nil {
		t.Fatal(err)
	}
	d.waitEvent(t, 40*time.Second, func(e phoenix.Event) bool { return e.Kind == phoenix.EventPrewarmed })
	if err := fault(ctx, services["orders"], adminToken, `{"kind":"clear"}`); err != nil {
		t.Fatal(err)
	}
	lstop()
	<-loadDone
	var st control.Status
	d.call(t, "GET", "/api/v1/status", &st)
	var alloc *phoenix.Allocation
	for _, c := range st.Components {
		if c.Name == "orders" {
			alloc = c.Allocation
		}
	}
	if alloc == nil || alloc.Phase != phoenix.PhasePrewarmed {
		t.Fatalf("orders allocation before the kill: %+v", alloc)
	}
	before := instancePIDs(t, root, alloc)

	d.kill()
	for id, pid := range before {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("replica %s (pid %d) died with the daemon", id, pid)
		}
	}

	d = startDaemon(t, cfgPath, api, token, filepath.Join(work, "daemon-2.log"))
	started := d.waitEvent(t, 10*time.Second, func(e phoenix.Event) bool {
		return e.Kind == phoenix.EventStarted && strings.Contains(e.Message, "resuming")
	})
	if !strings.Contains(started.Message, alloc.ID+" (prewarmed)") {
		t.Errorf("restart event %q does not name %s", started.Message, alloc.ID)
	}
	// The operator switches through the API (a mutating call: it needs the
	// token); the resumed replica must take the traffic with every key.
	deadline := time.Now().Add(10 * time.Second)
	for code := 0; code != http.StatusAccepted; {
		if code = d.call(t, "POST", "/api/v1/components/orders/switch", nil); code != http.StatusAccepted && time.Now().After(deadline) {
			t.Fatalf("switch request answered %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.waitEvent(t, 20*time.Second, func(e phoenix.Event) bool { return e.Kind == phoenix.EventSwitched })

	after := instancePIDs(t, root, alloc)
	for id, pid := range before {
		if after[id] != pid {
			t.Errorf("replica %s: pid %d before the restart, %d after: it was started again", id, pid, after[id])
		}
		if n := processesWithMarker(root, id); n != 1 {
			t.Errorf("replica %s: %d processes, want exactly 1", id, n)
		}
	}
	written, lost, err := load.verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if written < 100 || lost != 0 {
		t.Fatalf("%d keys written, %d lost after the restart and switch", written, lost)
	}
	t.Logf("%d requests before the kill, %d failed; %d keys read back through the replica", load.total.Load(), load.failed.Load(), written)
	if load.failed.Load() != 0 {
		t.Errorf("%d requests failed before the kill: %v", load.failed.Load(), load.failureReasons())
	}
}
