package telemetry

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The tests scrape a real target process: this test binary re-executed with
// targetEnv set, instrumented with the Prometheus Go client on its own
// registry, the way a component of the protected application would be.
const (
	targetEnv     = "PHOENIX_TELEMETRY_TARGET"      // "1": run as a target
	targetAddrEnv = "PHOENIX_TELEMETRY_TARGET_ADDR" // listen address, default 127.0.0.1:0
	targetOMEnv   = "PHOENIX_TELEMETRY_TARGET_OM"   // "1": offer OpenMetrics
	targetInitEnv = "PHOENIX_TELEMETRY_TARGET_INIT" // a /drive query applied before listening
)

func TestMain(m *testing.M) {
	if os.Getenv(targetEnv) == "1" {
		os.Exit(runTarget())
	}
	if dir := os.Getenv(receiverEnv); dir != "" {
		os.Exit(runReceiver(dir))
	}
	os.Exit(m.Run())
}

// targetApp is the instrumented application of the target process.
type targetApp struct {
	mu       sync.Mutex // held while driving, so a scrape sees all of a drive or none
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	errs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	disk     prometheus.Gauge
}

func newTargetApp() *targetApp {
	a := &targetApp{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests served.",
		}, []string{"code"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_request_errors_total", Help: "Requests that failed.",
		}, []string{"code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency.", Buckets: prometheus.DefBuckets,
		}, []string{"path"}),
		disk: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shop_disk_used_bytes", Help: "Data volume use."}),
	}
	a.reg.MustRegister(a.requests, a.errs, a.latency, a.disk,
		prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return a
}

// drive applies a query such as "requests=100&errors=10&latency=0.05&burn=200ms&disk=5".
func (a *targetApp) drive(q url.Values) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	num := func(k string) (float64, error) {
		if q.Get(k) == "" {
			return 0, nil
		}
		return strconv.ParseFloat(q.Get(k), 64)
	}
	requests, err1 := num("requests")
	nerrs, err2 := num("errors")
	latency, err3 := num("latency")
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return err
		}
	}
	for i := 0; i < int(requests); i++ {
		code := "200"
		if i < int(nerrs) {
			code = "500"
			a.errs.WithLabelValues(code).Inc()
		}
		a.requests.WithLabelValues(code).Inc()
		a.latency.WithLabelValues("/api").Observe(latency)
	}
	if d := q.Get("disk"); d != "" {
		v, err := strconv.ParseFloat(d, 64)
		if err != nil {
			return err
		}
		a.disk.Set(v)
	}
	if b := q.Get("burn"); b != "" {
		d, err := time.ParseDuration(b)
		if err != nil {
			return err
		}
		burnCPU(d)
	}
	return nil
}

// burnCPU spins until the process has used d of CPU time.
func burnCPU(d time.Duration) {
	var ru syscall.Rusage
	cpu := func() time.Duration {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	end := cpu() + d
	x := 1.0
	for cpu() < end {
		for i := 0; i < 100000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	_ = x
}

func runTarget() int {
	app := newTargetApp()
	if init := os.Getenv(targetInitEnv); init != "" {
		q, err := url.ParseQuery(init)
		if err == nil {
			err = app.drive(q)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "target init:", err)
			return 2
		}
	}
	openMetrics := os.Getenv(targetOMEnv) == "1"
	metrics := promhttp.HandlerFor(app.reg, promhttp.HandlerOpts{EnableOpenMetrics: openMetrics})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		app.mu.Lock()
		defer app.mu.Unlock()
		if openMetrics {
			// Behave as an OpenMetrics-only exporter, whatever the scraper prefers.
			r.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/drive", func(w http.ResponseWriter, r *http.Request) {
		if err := app.drive(r.URL.Query()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	addr := os.Getenv(targetAddrEnv)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "target listen:", err)
		return 2
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	fmt.Printf("URL %s\n", srv.URL)
	// Exit when the test closes our stdin (or dies): no orphan processes.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// targetProc is a running target process.
type targetProc struct {
	cmd *exec.Cmd
	URL string // base URL, without /metrics
}

// startTarget starts a target process; addr "" picks a free port. env adds
// variables such as targetOMEnv=1. The process is killed when the test ends.
func startTarget(t *testing.T, addr string, env ...string) *targetProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{targetEnv + "=1", targetAddrEnv + "=" + addr}, env...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start target process: %v", err)
	}
	p := &targetProc{cmd: cmd}
	t.Cleanup(func() {
		stdin.Close()
		p.kill()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "URL ") {
		t.Fatalf("target process did not report its URL: %q, %v", line, err)
	}
	p.URL = strings.TrimSpace(strings.TrimPrefix(line, "URL "))
	return p
}

// kill sends SIGKILL and reaps the process; calling it twice is harmless.
func (p *targetProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *targetProc) drive(t *testing.T, query string) {
	t.Helper()
	resp, err := http.Post(p.URL+"/drive?"+query, "text/plain", nil)
	if err != nil {
		t.Fatalf("drive target: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("drive target: status %s", resp.Status)
	}
}
