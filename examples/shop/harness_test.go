package shop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// childEnv makes the test binary run Main instead of the tests, so that
// tests start the real services as child processes.
const childEnv = "SHOP_TEST_CHILD"

const testToken = "test-admin-token"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// proc is a service running in a child process.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	url    string // http://host:port it listens on
	logs   *lines
	exited chan struct{}
	state  *os.ProcessState
}

// lines collects a child's stderr.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.WriteString(s)
	l.buf.WriteByte('\n')
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startProc runs Main(args) in a child with a clean environment plus env,
// waits for its "listening" log line and returns it. --listen
// 127.0.0.1:0 is added, so the kernel picks the port.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	args = append(args, "--listen", "127.0.0.1:0")
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOP_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Under -race a child would otherwise sleep a second at exit.
	cmd.Env = append(cmd.Env, childEnv+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: args[0], cmd: cmd, logs: &lines{}, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", args[0], err)
	}
	addr := make(chan string, 1)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.add(line)
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanDone // read all output before Wait closes the pipe
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", p.name, p.logs)
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.exited:
		t.Fatalf("%s exited before listening (%v):\n%s", args[0], p.state, p.logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not log its address:\n%s", args[0], p.logs)
	}
	return p
}

// kill9 SIGKILLs the process and waits for it to be gone.
func (p *proc) kill9() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
}

// stop asks for a graceful shutdown and requires exit code 0.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	st := p.wait(15 * time.Second)
	if st.ExitCode() != 0 {
		p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, st, p.logs)
	}
}

// wait waits for the process to exit and returns its state.
func (p *proc) wait(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.state
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v:\n%s", p.name, timeout, p.logs)
		return nil
	}
}

// killedBySIGKILL reports whether the process died of SIGKILL.
func killedBySIGKILL(st *os.ProcessState) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// shop is the three services wired together.
type shop struct {
	inventory, orders, gateway *proc
	dataDir                    string
}

func startShop(t *testing.T, env []string, extra ...string) *shop {
	t.Helper()
	s := &shop{dataDir: t.TempDir()}
	s.inventory = startProc(t, env, append([]string{"inventory"}, extra...)...)
	s.orders = startProc(t, env, append([]string{"orders", "--data", s.dataDir, "--inventory", s.inventory.url}, extra...)...)
	s.gateway = startProc(t, env, append([]string{"gateway", "--orders", s.orders.url}, extra...)...)
	return s
}

var testClient = &http.Client{Timeout: 20 * time.Second}

// do sends a request and returns the status and body; a transport error
// fails the test.
func do(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	code, b, err := tryDo(method, url, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, b
}

// tryDo is do without failing; header is name, value pairs.
func tryDo(method, url, body string, header ...string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// adminDo sends an authenticated admin request.
func adminDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	return do(t, method, url, body, "Authorization", "Bearer "+testToken)
}

// eventually polls cond until it holds or the deadline passes; cond
// returns a description of what it saw, for the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last saw %s", what, timeout, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape fetches /metrics and parses it as the Prometheus text format.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s/metrics: %v\n%s", base, err, body)
	}
	return fams
}

// metricValue returns the value of the first series of name whose labels
// include want (name=value pairs); ok is false if there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
series:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func scrapeValue(t *testing.T, base, name string, want ...string) float64 {
	t.Helper()
	v, ok := metricValue(scrape(t, base), name, want...)
	if !ok {
		t.Fatalf("%s/metrics has no %s%v", base, name, want)
	}
	return v
}
