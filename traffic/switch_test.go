package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pair starts a primary and a standby backend and a proxy in front of them,
// with OnHealth recorded.
func pair(t *testing.T, cfg Config) (p *Proxy, primary, standby *child, events *healthEvents) {
	t.Helper()
	primary = startBackend(t, "orders@primary")
	standby = startBackend(t, "orders@standby")
	events = &healthEvents{}
	cfg.OnHealth = events.record
	p = startProxy(t, cfg, primary.backend())
	sb := standby.backend()
	if err := p.SetStandby(&sb); err != nil {
		t.Fatal(err)
	}
	return p, primary, standby, events
}

// TestSwitchAfterFault plays the control loop: under steady load the
// primary fails, the test waits for OnHealth(unhealthy) and switches. No
// client request may fail, and traffic must end up on the standby.
func TestSwitchAfterFault(t *testing.T) {
	tests := []struct {
		name   string
		fault  syscall.Signal
		reason string // expected in the unhealthy transition
		after  func(t *testing.T, primary *child)
	}{
		{name: "kill -9", fault: syscall.SIGKILL, reason: "connection refused"},
		{
			name: "SIGSTOP", fault: syscall.SIGSTOP, reason: "timeout after",
			after: func(t *testing.T, primary *child) { primary.signal(t, syscall.SIGCONT) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Checks get 250ms, not 150ms, so that a loaded test machine
			// does not turn "connection refused" into a timeout.
			p, primary, standby, events := pair(t, Config{
				HealthInterval: 250 * time.Millisecond, HealthTimeout: 250 * time.Millisecond,
				DrainTimeout: time.Second, HoldTimeout: 10 * time.Second,
			})
			l := startLoad(t, p)
			l.awaitServed(t, primary.name, time.Time{}, 100)

			faultAt := time.Now()
			primary.signal(t, tc.fault)
			reason := events.await(t, primary.name, false)
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("unhealthy reason = %q, want it to mention %q", reason, tc.reason)
			}
			if err := p.Switch(context.Background(), nil); err != nil {
				t.Fatalf("Switch: %v", err)
			}
			switched := time.Now()
			if tc.after != nil {
				tc.after(t, primary)
			}
			l.awaitServed(t, standby.name, switched, 100)
			l.halt()

			l.checkNoFailures(t)
			if n := l.served(primary.name, switched); n > 0 {
				t.Errorf("%d requests started after Switch returned were served by the old primary", n)
			}
			if got := p.Active().Name; got != standby.name {
				t.Errorf("Active() = %s, want %s", got, standby.name)
			}
			if _, ok := p.Standby(); ok {
				t.Errorf("a standby is still registered after the switch")
			}
			st := p.Status()
			t.Logf("fault -> unhealthy -> switch took %s; fault -> first response from standby %s; retries %d, held %d",
				switched.Sub(faultAt), l.firstServed(standby.name, faultAt).Sub(faultAt), st.Retries, st.Held)
		})
	}
}

// TestPreemptiveSwitch switches while the primary is healthy, copying its
// state to the standby in prepare: no request fails, none started after the
// switch reaches the primary, and every acknowledged write is on the standby.
func TestPreemptiveSwitch(t *testing.T) {
	p, primary, standby, _ := pair(t, Config{})
	l := startLoad(t, p)
	l.awaitServed(t, primary.name, time.Time{}, 100)

	prepare := func(ctx context.Context) error {
		st := p.Status()
		if !st.Switching || st.Active.InFlight != 0 {
			t.Errorf("prepare called with switching=%v and %d requests in flight on the active", st.Switching, st.Active.InFlight)
		}
		return copyState(ctx, primary, standby)
	}
	if err := p.Switch(context.Background(), prepare); err != nil {
		t.Fatalf("Switch: %v", err)
	}
	switched := time.Now()
	l.awaitServed(t, standby.name, switched, 100)
	l.halt()

	l.checkNoFailures(t)
	if n := l.served(primary.name, switched); n > 0 {
		t.Errorf("%d requests started after Switch returned were served by the primary", n)
	}
	var stored map[string]string
	if err := json.Unmarshal([]byte(standby.get(t, "/dump")), &stored); err != nil {
		t.Fatal(err)
	}
	acked := l.ackedWrites()
	lost := 0
	for k, v := range acked {
		if stored[k] != v {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are missing on the new active", lost, len(acked))
	}
	t.Logf("%d acknowledged writes, %d lost", len(acked), lost)
}

// copyState is the test's stand-in for replicate: a full copy of the
// backend's keys, taken while the proxy holds writes.
func copyState(ctx context.Context, from, to *child) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, from.url.String()+"/dump", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, to.url.String()+"/load", &buf)
	if err != nil {
		return err
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("load: " + resp.Status)
	}
	return nil
}

// TestSwitchPrepareFails: when prepare fails, held requests go back to the
// primary, the standby stays registered, and no request fails.
func TestSwitchPrepareFails(t *testing.T) {
	p, primary, standby, _ := pair(t, Config{})
	l := startLoad(t, p)
	l.awaitServed(t, primary.name, time.Time{}, 100)

	errPromote := errors.New("promote refused")
	err := p.Switch(context.Background(), func(context.Context) error { return errPromote })
	if !errors.Is(err, errPromote) {
		t.Fatalf("Switch = %v, want it to wrap %v", err, errPromote)
	}
	after := time.Now()
	l.awaitServed(t, primary.name, after, 100)
	l.halt()

	l.checkNoFailures(t)
	if n := l.served(standby.name, time.Time{}); n > 0 {
		t.Errorf("%d requests reached the standby although the switch failed", n)
	}
	if got := p.Active().Name; got != primary.name {
		t.Errorf("Active() = %s, want %s", got, primary.name)
	}
	if b, ok := p.Standby(); !ok || b.Name != standby.name {
		t.Errorf("Standby() = %v, %v; want %s still registered", b, ok, standby.name)
	}
}

func TestSwitchRefused(t *testing.T) {
	primary := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, primary.backend())
	if err := p.Switch(context.Background(), nil); !errors.Is(err, ErrNoStandby) {
		t.Errorf("Switch without standby = %v, want ErrNoStandby", err)
	}
	self := primary.backend()
	if err := p.SetStandby(&self); err == nil {
		t.Errorf("SetStandby(active) succeeded, want an error")
	}
	bad := Backend{Name: "x", URL: nil}
	if err := p.SetStandby(&bad); err == nil {
		t.Errorf("SetStandby without URL succeeded, want an error")
	}
}

// TestHeldDuringSwitch: a request arriving while prepare runs waits for the
// switch and is served by the new active; one that waits longer than
// HoldTimeout gets 503, never the old active.
func TestHeldDuringSwitch(t *testing.T) {
	p, primary, standby, _ := pair(t, Config{HoldTimeout: time.Second})
	base := "http://" + p.Addr().String()
	inPrepare, release := make(chan struct{}), make(chan struct{})
	switched := make(chan error, 1)
	go func() {
		switched <- p.Switch(context.Background(), func(ctx context.Context) error {
			close(inPrepare)
			<-release
			return nil
		})
	}()
	<-inPrepare

	resp, err := http.Get(base + "/who")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "switch") {
		t.Errorf("request held past HoldTimeout during a switch: %d %q, want 503 naming the switch", resp.StatusCode, body)
	}
	if by := resp.Header.Get("X-Served-By"); by == primary.name {
		t.Errorf("request was sent to the old active during the switch")
	}

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/who")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- readAll(t, resp)
	}()
	waitFor(t, 5*time.Second, "a held request", func() bool { return p.Status().Holding == 1 })
	close(release)
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	if who := <-got; who != standby.name {
		t.Errorf("request held during the switch answered %q, want %q", who, standby.name)
	}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
