package telemetry

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/phoenixsre/phoenix"
)

// needProgram returns the path of an outside program, skipping the test
// when it is missing, or failing it when CI=true (CI installs it).
func needProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found, and CI=true: install the Debian package %s", name, pkg)
		}
		t.Skipf("%s not found: install the Debian package %s to run this test", name, pkg)
	}
	return path
}

// freeAddr returns a loopback address with a port free at the time of the
// call, for a program that cannot report the port it bound.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs Debian's Prometheus server with the given
// configuration until the test ends, and returns its base URL once it is
// ready.
func startPrometheus(t *testing.T, config string) string {
	t.Helper()
	bin := needProgram(t, "prometheus", "prometheus")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s:\n%s", logs.String())
		}
	}
}

// TestPrometheusRemoteWritesToPhoenix runs the chain users run: Debian's
// Prometheus scrapes a process instrumented with the Prometheus Go client
// and remote-writes to Phoenix's receiver; Phoenix stores the series and
// turns them into the component's signals. The same Prometheus then serves
// as the external source, read through its query API.
func TestPrometheusRemoteWritesToPhoenix(t *testing.T) {
	in := newIngestion(t, LimitsConfig{}, RemoteWriteConfig{})
	target := startTarget(t, "")
	prom := startPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: [%q]
        labels:
          component: orders
remote_write:
  - url: %s/api/v1/write
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 50ms
      max_backoff: 1s
`, strings.TrimPrefix(target.URL, "http://"), in.url))

	smp, _ := in.rec.waitSample(t, 0, "orders' memory remote-written by Prometheus", has(phoenix.SignalMemory))
	if smp.Target.Component != "orders" || !(smp.Values[phoenix.SignalMemory] > 1e6) {
		t.Errorf("first sample %+v, want orders with its resident memory", smp)
	}
	up := seriesPoints(t, in.store, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "up"))
	if len(up) != 1 {
		t.Fatalf("up series stored: %v, want one", up)
	}
	for ls, pts := range up {
		if !strings.Contains(ls, `component="orders"`) || !strings.Contains(ls, `job="shop"`) || pts[len(pts)-1].V != 1 {
			t.Errorf("up = %s %v, want orders' up at 1", ls, pts)
		}
	}

	// Counters need a series' second sample: create the labelled series,
	// let Prometheus forward them, then drive the real load.
	target.drive(t, "requests=10&errors=1")
	waitFor(t, "the error series stored", func() bool {
		return len(seriesPoints(t, in.store, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "http_request_errors_total"))) > 0
	})
	n := len(in.rec.all())
	target.drive(t, "requests=100&errors=10&latency=0.3")
	in.rec.waitSample(t, n, "an error ratio of 0.1 and the latency", func(s Sample) bool {
		return math.Abs(s.Values[phoenix.SignalErrors]-0.1) < 1e-9 && s.Values[phoenix.SignalLatency] > 0.25
	})

	t.Run("external source", func(t *testing.T) {
		src, err := NewPrometheusSource(SourceConfig{URL: prom, Step: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		pts, err := src.Points(context.Background(), "orders", phoenix.Primary, phoenix.SignalMemory, now.Add(-time.Minute), now)
		if err != nil || len(pts) == 0 || !(pts[len(pts)-1].V > 1e6) {
			t.Errorf("memory history from Prometheus: %v, %v; want points above 1e6", pts, err)
		}
		src.SetTargets([]Target{{Component: "orders", Environment: phoenix.Primary}, {Component: "cart", Environment: phoenix.Primary}})
		latest, err := src.Latest(context.Background())
		if err != nil || len(latest) != 1 || latest[0].Target.Component != "orders" || !(latest[0].Values[phoenix.SignalMemory] > 1e6) {
			t.Errorf("latest from Prometheus: %+v, %v; want orders' memory (cart has no data)", latest, err)
		}
		if _, err := src.Points(context.Background(), "orders", phoenix.Secondary, phoenix.SignalMemory, now.Add(-time.Minute), now); err == nil || !strings.Contains(err.Error(), "serves environment primary") {
			t.Errorf("another environment: %v", err)
		}
		bad, err := NewPrometheusSource(SourceConfig{URL: prom, Queries: map[phoenix.Signal]string{phoenix.SignalMemory: `sum(by {$selector`}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bad.Points(context.Background(), "orders", phoenix.Primary, phoenix.SignalMemory, now.Add(-time.Minute), now); err == nil || !strings.Contains(err.Error(), "parse error") {
			t.Errorf("a malformed query: %v, want Prometheus's parse error", err)
		}
		many, err := NewPrometheusSource(SourceConfig{URL: prom, Queries: map[phoenix.Signal]string{phoenix.SignalMemory: `up{$selector} or label_replace(up{$selector}, "copy", "1", "", "")`}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := many.Points(context.Background(), "orders", phoenix.Primary, phoenix.SignalMemory, now.Add(-time.Minute), now); err == nil || !strings.Contains(err.Error(), "want one per component") {
			t.Errorf("a query returning two series: %v", err)
		}
	})
}

func TestSourceUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	src, err := NewPrometheusSource(SourceConfig{URL: srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Points(context.Background(), "orders", phoenix.Primary, phoenix.SignalMemory, time.Now().Add(-time.Minute), time.Now()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable source: %v", err)
	}
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{URL: "prometheus:9090"}, "absolute http(s) URL"},
		{SourceConfig{URL: "http://p", Queries: map[phoenix.Signal]string{"memory": "up"}}, "must contain $selector"},
		{SourceConfig{URL: "http://p", ComponentLabel: "a-b"}, "not a label name"},
		{SourceConfig{URL: "http://p", Step: -1}, "must be positive"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
