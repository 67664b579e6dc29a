package telemetry

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorder keeps every sample a scraper emits.
type recorder struct {
	mu      sync.Mutex
	samples []Sample
}

func (r *recorder) add(s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
}

func (r *recorder) all() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sample(nil), r.samples...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSample waits for a sample after index from that satisfies pred and
// returns it with its index.
func (r *recorder) waitSample(t *testing.T, from int, what string, pred func(Sample) bool) (Sample, int) {
	t.Helper()
	var got Sample
	idx := -1
	waitFor(t, what, func() bool {
		ss := r.all()
		for i := from; i < len(ss); i++ {
			if pred(ss[i]) {
				got, idx = ss[i], i
				return true
			}
		}
		return false
	})
	return got, idx
}

func has(s phoenix.Signal) func(Sample) bool {
	return func(smp Sample) bool { _, ok := smp.Values[s]; return ok }
}

// runScraper runs s until the test ends and checks that Run returns.
func runScraper(t *testing.T, s *Scraper) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func demoSignals() SignalMap {
	m := DefaultSignalMap()
	m.Disk = "shop_disk_used_bytes"
	return m
}

func TestScrapeRealTarget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		ctype string // what the target answers our Accept header with
	}{
		{"text", nil, "text/plain"},
		{"openmetrics", []string{targetOMEnv + "=1"}, "application/openmetrics-text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := startTarget(t, "", tc.env...)
			if _, ctype, err := fetch(context.Background(), http.DefaultClient, proc.URL+"/metrics", time.Minute, 1<<20); err != nil || !strings.HasPrefix(ctype, tc.ctype) {
				t.Fatalf("target answers with %q (%v), want %s", ctype, err, tc.ctype)
			}
			rec := &recorder{}
			reg := prometheus.NewRegistry()
			hist := NewHistory(0, 0)
			s := NewScraper(Config{
				Interval: 50 * time.Millisecond, Timeout: 5 * time.Second,
				Signals: demoSignals(), OnSample: rec.add, Registerer: reg,
			}, hist)
			target := Target{Component: "orders", Environment: phoenix.Primary, URL: proc.URL + "/metrics"}
			s.SetTargets([]Target{target})
			runScraper(t, s)

			_, first := rec.waitSample(t, 0, "a first sample", has(phoenix.SignalMemory))
			proc.drive(t, "requests=100&errors=10&latency=0.05&burn=200ms&disk=12345")
			got, i := rec.waitSample(t, first, "a sample with an error ratio", has(phoenix.SignalErrors))
			prev := rec.all()[i-1]
			dt := got.Time.Sub(prev.Time).Seconds()

			if v := got.Values[phoenix.SignalErrors]; v != 0.1 {
				t.Errorf("errors = %v, want 0.1 (10 of 100 requests)", v)
			}
			if v := got.Values[phoenix.SignalRate]; math.Abs(v*dt-100) > 1e-6 {
				t.Errorf("rate = %v/s over %.3fs = %v requests, want 100", v, dt, v*dt)
			}
			if v, ok := got.Values[phoenix.SignalLatency]; !ok || v <= 0.025 || v > 0.05 {
				t.Errorf("latency p99 = %v (present %v), want within the (0.025, 0.05] bucket", v, ok)
			}
			if v := got.Values[phoenix.SignalCPU]; !(v > 0) {
				t.Errorf("cpu = %v cores, want > 0 after burning 200ms of CPU", v)
			}
			if v := got.Values[phoenix.SignalMemory]; v < 1e6 || v > 1e10 {
				t.Errorf("memory = %v bytes, want a plausible resident size", v)
			}
			if v := got.Values[phoenix.SignalDisk]; v != 12345 {
				t.Errorf("disk = %v, want 12345", v)
			}
			for sig, v := range got.Values {
				pts := hist.Range("orders", phoenix.Primary, sig, got.Time)
				if len(pts) == 0 || pts[0].V != v || !pts[0].T.Equal(got.Time) {
					t.Errorf("history of %s at %v = %v, want %v", sig, got.Time, pts, v)
				}
			}
			h := s.Health()
			if len(h) != 1 || !h[0].Up || h[0].LastError != "" || h[0].LastSuccess.IsZero() {
				t.Errorf("health = %+v, want one target up", h)
			}
			up := testutil.ToFloat64(s.metrics.up.WithLabelValues("orders", "primary"))
			if up != 1 {
				t.Errorf("phoenix_telemetry_target_up = %v, want 1", up)
			}
		})
	}
}

// A target process killed with SIGKILL and restarted on the same address
// exposes counters lower than before: that interval gives no rate, and
// rates resume from the next one.
func TestCounterResetOnRestart(t *testing.T) {
	proc := startTarget(t, "")
	addr := strings.TrimPrefix(proc.URL, "http://")
	rec := &recorder{}
	s := NewScraper(Config{Interval: 50 * time.Millisecond, Timeout: 5 * time.Second, OnSample: rec.add}, nil)
	s.SetTargets([]Target{{Component: "orders", Environment: phoenix.Primary, URL: proc.URL + "/metrics"}})
	runScraper(t, s)

	_, i := rec.waitSample(t, 0, "a first sample", has(phoenix.SignalMemory))
	proc.drive(t, "requests=100&latency=0.01")
	_, i = rec.waitSample(t, i, "a rate from the first process", func(s Sample) bool { return s.Values[phoenix.SignalRate] > 0 })

	proc.kill()
	waitFor(t, "the target to be seen down", func() bool {
		h := s.Health()
		return len(h) == 1 && !h[0].Up && strings.Contains(h[0].LastError, "connection refused")
	})
	n := len(rec.all())
	proc2 := startTarget(t, addr, targetInitEnv+"=requests=10&latency=0.01")
	after, j := rec.waitSample(t, n, "a sample from the restarted process", has(phoenix.SignalMemory))
	for _, sig := range []phoenix.Signal{phoenix.SignalRate, phoenix.SignalErrors, phoenix.SignalLatency} {
		if v, ok := after.Values[sig]; ok {
			t.Errorf("first sample after the restart has %s = %v, want none (counters went from 100 to 10)", sig, v)
		}
	}
	proc2.drive(t, "requests=30&errors=3&latency=0.01")
	got, k := rec.waitSample(t, j, "a rate from the restarted process", has(phoenix.SignalErrors))
	dt := got.Time.Sub(rec.all()[k-1].Time).Seconds()
	if v := got.Values[phoenix.SignalRate]; math.Abs(v*dt-30) > 1e-6 {
		t.Errorf("rate after restart = %v/s over %.3fs, want 30 requests", v, dt)
	}
	if v := got.Values[phoenix.SignalErrors]; v != 0.1 {
		t.Errorf("errors after restart = %v, want 0.1", v)
	}
}

func TestDownTargets(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + closed.Addr().String() + "/metrics"
	closed.Close()

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	handler := func(status int, ctype, body string, declaredLen bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			if declaredLen {
				w.Header().Set("Content-Length", "2000000")
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	huge := strings.Repeat("# padding comment line\n", 100000)
	cases := []struct {
		name    string
		handler http.Handler // nil: refusedURL
		want    string
	}{
		{"refused", nil, "connection refused"},
		{"timeout", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}), "timed out after 200ms"},
		{"status 500", handler(500, "text/plain", "database on fire", false), `HTTP status 500 Internal Server Error: "database on fire"`},
		{"garbage", handler(200, "text/plain; version=0.0.4", "<html><body>hello</body></html>\n", false), "parse text exposition"},
		{"garbage openmetrics", handler(200, "application/openmetrics-text; version=1.0.0", "this is not metrics\n", false), "parse OpenMetrics"},
		{"not a metrics type", handler(200, "text/html", "<html></html>", false), `content type "text/html" is not a metrics format`},
		{"protobuf", handler(200, "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", "\xed\xed\xed\xed\xc7\xc7\x03", false), "protobuf exposition is not read"},
		{"huge chunked body", handler(200, "text/plain", huge, false), "body exceeds the 1024-byte limit"},
		{"huge declared body", handler(200, "text/plain", huge[:2000000], true), "body of 2000000 bytes exceeds the 1024-byte limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := refusedURL
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				t.Cleanup(srv.Close)
				u = srv.URL + "/metrics"
			}
			rec := &recorder{}
			s := NewScraper(Config{Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond, MaxBodyBytes: 1024, OnSample: rec.add}, NewHistory(0, 0))
			s.SetTargets([]Target{{Component: "orders", Environment: phoenix.Primary, URL: u}})
			runScraper(t, s)
			var h TargetHealth
			waitFor(t, "two failed scrapes", func() bool {
				h = s.Health()[0]
				return h.ConsecutiveFailures >= 2
			})
			if h.Up || !strings.Contains(h.LastError, tc.want) || !h.LastSuccess.IsZero() || h.LastScrape.IsZero() {
				t.Errorf("health = %+v, want down with an error containing %q", h, tc.want)
			}
			if n := len(rec.all()); n != 0 {
				t.Errorf("a down target produced %d samples, want 0", n)
			}
		})
	}
}

// SetTargets while running: the removed target stops being scraped, the
// added one starts, and Health follows.
func TestSetTargetsWhileRunning(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	serve := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name]++
			mu.Unlock()
			_, _ = w.Write([]byte("process_resident_memory_bytes 1000\n"))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	count := func(name string) int { mu.Lock(); defer mu.Unlock(); return hits[name] }
	a, b := serve("a"), serve("b")
	ta := Target{Component: "a", Environment: phoenix.Primary, URL: a.URL}
	tb := Target{Component: "b", Environment: phoenix.Primary, URL: b.URL}

	s := NewScraper(Config{Interval: 10 * time.Millisecond}, NewHistory(0, 0))
	s.SetTargets([]Target{ta, ta})
	if h := s.Health(); len(h) != 1 || h[0].Target != ta || h[0].Up || !h[0].LastScrape.IsZero() {
		t.Fatalf("health before Run = %+v, want target a not yet scraped (duplicate ignored)", h)
	}
	runScraper(t, s)
	waitFor(t, "target a scraped", func() bool { return count("a") >= 2 })

	s.SetTargets([]Target{tb})
	waitFor(t, "target b scraped twice", func() bool { return count("b") >= 2 })
	stopped := count("a")
	nb := count("b")
	waitFor(t, "target b scraped three more times", func() bool { return count("b") >= nb+3 })
	if n := count("a"); n != stopped {
		t.Errorf("removed target a scraped %d more times", n-stopped)
	}
	if h := s.Health(); len(h) != 1 || h[0].Target != tb || !h[0].Up {
		t.Errorf("health = %+v, want only target b, up", h)
	}
}

func TestRunTwiceFails(t *testing.T) {
	s := NewScraper(Config{}, nil)
	runScraper(t, s)
	waitFor(t, "Run to start", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.running })
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run = %v, want an 'already running' error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Interval: -time.Second}, "telemetry interval -1s: must be positive"},
		{Config{Timeout: -1}, "telemetry timeout -1ns: must be positive"},
		{Config{MaxBodyBytes: -5}, "telemetry max body bytes -5: must be positive"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestTargetValidate(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Component: "orders", Environment: phoenix.Primary, URL: "http://127.0.0.1:9100/metrics"}, ""},
		{Target{Component: "Orders!", Environment: phoenix.Primary, URL: "http://x/metrics"}, "component name"},
		{Target{Component: "orders", Environment: "", URL: "http://x/metrics"}, "environment is empty"},
		{Target{Component: "orders", Environment: phoenix.Primary, URL: "127.0.0.1:9100/metrics"}, "not an absolute http(s) URL"},
		{Target{Component: "orders", Environment: phoenix.Primary, URL: "ftp://x/metrics"}, "not an absolute http(s) URL"},
		{Target{Component: "orders", Environment: phoenix.Primary, URL: "http://x/metrics", Interval: 10 * time.Second, Timeout: 2 * time.Second}, ""},
		{Target{Component: "orders", Environment: phoenix.Primary, URL: "http://x/metrics", Interval: -time.Second}, "must be positive"},
		{Target{Component: "orders", Environment: phoenix.Primary, URL: "http://x/metrics", Interval: time.Second, Timeout: 2 * time.Second}, "longer than its interval"},
	} {
		err := tc.t.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.t, err, tc.want)
		}
	}
}
