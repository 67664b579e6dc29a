package traffic

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRetrySafety: a request that fails after it was written is retried
// only when repeating it is safe.
func TestRetrySafety(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantHits   string // times the backend saw the request
	}{
		{"POST without idempotency key is not retried", http.MethodPost, "/drop/post", nil, http.StatusBadGateway, "1"},
		{"POST with Idempotency-Key is retried", http.MethodPost, "/flaky/post-key", http.Header{"Idempotency-Key": {"abc"}}, http.StatusOK, "2"},
		{"PUT is retried", http.MethodPut, "/flaky/put", nil, http.StatusOK, "2"},
		{"GET is retried", http.MethodGet, "/flaky/get", nil, http.StatusOK, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh proxy has no pooled connection, so the transport's
			// own retry on a reused connection does not hide the proxy's.
			p := startProxy(t, Config{}, backend.backend())
			req, err := http.NewRequest(tc.method, "http://"+p.Addr().String()+tc.path, strings.NewReader("payload"))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d (%q), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if resp.StatusCode == http.StatusBadGateway && !strings.Contains(body, "not retried") {
				t.Errorf("502 body %q does not say why it was not retried", body)
			}
			key := tc.path[strings.LastIndexByte(tc.path, '/')+1:]
			hits := backend.get(t, "/hits/"+key)
			if hits != tc.wantHits {
				t.Errorf("backend saw the request %s times, want %s", hits, tc.wantHits)
			}
			if got, want := strconv.FormatUint(p.Status().Retries+1, 10), hits; got != want {
				t.Errorf("proxy made %s attempts, the backend saw %s", got, want)
			}
		})
	}
}

// TestHoldTimeout: with the active dead and no switch coming, a request is
// held for HoldTimeout, tried once more, and answered 502 with the reason.
func TestHoldTimeout(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	events := &healthEvents{}
	const hold = 500 * time.Millisecond
	p := startProxy(t, Config{HoldTimeout: hold, OnHealth: events.record}, backend.backend())
	backend.signal(t, syscall.SIGKILL)
	events.await(t, backend.name, false)

	start := time.Now()
	resp, err := http.Get("http://" + p.Addr().String() + "/who")
	if err != nil {
		t.Fatal(err)
	}
	held := time.Since(start)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
	for _, want := range []string{"connection refused", "after holding"} {
		if !strings.Contains(body, want) {
			t.Errorf("body %q does not mention %q", body, want)
		}
	}
	if held < hold {
		t.Errorf("answered after %s, before HoldTimeout %s: the request was not held", held, hold)
	}
	if st := p.Status(); st.Failed != 1 || st.Held != 1 {
		t.Errorf("status counts failed=%d held=%d, want 1 and 1", st.Failed, st.Held)
	}
}

// TestHoldUntilRecovered: while the active fails its checks, requests wait;
// when it passes them again they are served, and OnHealth reports both
// transitions with their reasons.
func TestHoldUntilRecovered(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	events := &healthEvents{}
	// A generous check timeout, so that on a loaded machine the checks
	// fail for the 500 rather than for slowness; the thresholds are the
	// hysteresis table test's business.
	p := startProxy(t, Config{
		OnHealth:       events.record,
		HealthInterval: 500 * time.Millisecond, HealthTimeout: 500 * time.Millisecond,
		UnhealthyAfter: 1, HealthyAfter: 1,
	}, backend.backend())
	setHealth(t, backend, http.StatusInternalServerError)
	if reason := events.await(t, backend.name, false); reason != "status 500" {
		t.Errorf("unhealthy reason = %q, want %q", reason, "status 500")
	}

	// A held request whose client gives up stops being held.
	impatient := &http.Client{Timeout: 200 * time.Millisecond}
	if resp, err := impatient.Get("http://" + p.Addr().String() + "/who"); err == nil {
		t.Fatalf("request to an unhealthy backend answered %s before the client's timeout", resp.Status)
	}
	waitFor(t, 5*time.Second, "the abandoned request to stop being held", func() bool {
		st := p.Status()
		return st.Holding == 0 && st.Canceled == 1
	})

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + p.Addr().String() + "/who")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- resp.Status + " " + readAll(t, resp)
	}()
	waitFor(t, 5*time.Second, "the request to be held", func() bool { return p.Status().Holding == 1 })
	setHealth(t, backend, http.StatusOK)
	events.await(t, backend.name, true)
	if answer := <-got; answer != "200 OK "+backend.name {
		t.Errorf("held request got %q, want 200 from %s", answer, backend.name)
	}
	st := p.Status()
	if !st.Active.Healthy || st.Active.LastError == "" || st.Held != 2 {
		t.Errorf("status = %+v, want the active healthy with its last error kept, and 2 requests held", st)
	}
}

func setHealth(t *testing.T, c *child, code int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, c.url.String()+"/admin/health/"+strconv.Itoa(code), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set health of %s: %s", c.name, resp.Status)
	}
}

func TestForwardedHeaders(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, backend.backend())
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.Addr().String()+"/headers", nil)
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(readAll(t, resp)), &got); err != nil {
		t.Fatal(err)
	}
	if want := "10.0.0.1, 127.0.0.1"; got["x-forwarded-for"] != want {
		t.Errorf("X-Forwarded-For = %q, want %q", got["x-forwarded-for"], want)
	}
	if got["x-forwarded-host"] != p.Addr().String() || got["host"] != backend.url.Host {
		t.Errorf("X-Forwarded-Host = %q and Host = %q, want %q and %q", got["x-forwarded-host"], got["host"], p.Addr(), backend.url.Host)
	}
}

// TestGracefulStop: a request in flight when Run's context ends completes.
func TestGracefulStop(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p, err := New(Config{Component: "orders"}, backend.backend())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + p.Addr().String() + "/slow/300")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- readAll(t, resp)
	}()
	waitFor(t, 5*time.Second, "the request in flight", func() bool { return p.Status().Active.InFlight == 1 })
	cancel()
	if answer := <-got; answer != "slow done" {
		t.Errorf("in-flight request got %q, want it to complete", answer)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run = %v, want nil after its context ended", err)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Errorf("second Run succeeded, want an error")
	}
}

// TestUpgrade: a protocol upgrade passes through, and counts as in flight
// (so a switch drains it) until it is closed.
func TestUpgrade(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, backend.backend())
	conn, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /upgrade HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %s, want 101", resp.Status)
	}
	if n := p.Status().Active.InFlight; n != 1 {
		t.Errorf("in flight during the upgrade = %d, want 1", n)
	}
	fmt.Fprint(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo = %q, %v; want ping", line, err)
	}
	conn.Close()
	waitFor(t, 5*time.Second, "the upgraded connection to end", func() bool { return p.Status().Active.InFlight == 0 })
}
