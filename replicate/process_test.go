package replicate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix/examples/shop"
)

// childEnv makes the test binary run a child instead of the tests: "agent"
// (a replicate Agent, configured by the PHX_* variables) or "shop" (the
// example shop's Main), so the tests run real processes they can kill.
const childEnv = "PHOENIX_REPLICATE_CHILD"

const testToken = "test-agent-token"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "agent":
		os.Exit(agentChild())
	case "shop":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := shop.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// agentChild serves an Agent on PHX_LISTEN and prints "LISTENING addr".
func agentChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	throttle, _ := strconv.ParseInt(os.Getenv("PHX_THROTTLE"), 10, 64)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := NewAgent(AgentConfig{Role: os.Getenv("PHX_ROLE"), Dir: os.Getenv("PHX_DIR"), Token: testToken, Throttle: throttle, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer a.Close()
	ln, err := net.Listen("tcp", os.Getenv("PHX_LISTEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "LISTENING", ln.Addr())
	if err := a.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a process started by the tests.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	out    strings.Builder
	exited chan struct{}
}

func (c *child) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// startChild runs the test binary as a child of kind with env and args and
// waits until a line of its stderr yields an address through addrOf.
func startChild(t testing.TB, kind string, env []string, args []string, addrOf func(line string) string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), childEnv+"="+kind, "GORACE=atexit_sleep_ms=0"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.out.WriteString(line + "\n")
			c.mu.Unlock()
			if a := addrOf(line); a != "" {
				select {
				case addr <- a:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("%s child logs:\n%s", kind, c.logs())
		}
	})
	select {
	case c.addr = <-addr:
	case <-c.exited:
		t.Fatalf("%s child exited before listening:\n%s", kind, c.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s child did not say where it listens:\n%s", kind, c.logs())
	}
	return c
}

// kill9 SIGKILLs the child and waits for it to be gone.
func (c *child) kill9() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatal("child survived SIGKILL")
	}
}

// startAgent runs an agent process of role on dir, listening on listen
// (":0" style addresses pick a port). It returns the child and its URL.
func startAgent(t testing.TB, role, dir, listen string, extraEnv ...string) (*child, string) {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	env := append([]string{"PHX_ROLE=" + role, "PHX_DIR=" + dir, "PHX_LISTEN=" + listen}, extraEnv...)
	c := startChild(t, "agent", env, nil, func(line string) string {
		a, _ := strings.CutPrefix(line, "LISTENING ")
		if a == line {
			return ""
		}
		return a
	})
	return c, "http://" + c.addr
}

// inProcessAgent serves an agent from this process (for tests that do not
// kill it), returning its URL.
func inProcessAgent(t testing.TB, role, dir string) string {
	t.Helper()
	u, _ := inProcessAgentMetrics(t, role, dir)
	return u
}

// inProcessAgentMetrics is inProcessAgent, also returning the registry of
// the agent's metrics.
func inProcessAgentMetrics(t testing.TB, role, dir string) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := NewAgent(AgentConfig{Role: role, Dir: dir, Token: testToken, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return srv.URL, reg
}

// receivedBytes reads phoenix_agent_received_bytes_total from reg.
func receivedBytes(t testing.TB, reg *prometheus.Registry) int64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "phoenix_agent_received_bytes_total" {
			return int64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatal("no phoenix_agent_received_bytes_total")
	return 0
}

// faultProxy is a TCP proxy in front of an agent that damages the first
// client-to-agent stream longer than at bytes: it flips the byte at at
// (corrupt) or closes both connections there (truncate).
type faultProxy struct {
	ln       net.Listener
	target   string
	at       int64
	truncate bool
	mu       sync.Mutex
	fired    bool
}

func startFaultProxy(t testing.TB, target string, at int64, truncate bool) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, at: at, truncate: truncate}
	go p.serve()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *faultProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *faultProxy) didFire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

func (p *faultProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		go func() {
			_, _ = io.Copy(in, out)
			in.Close()
		}()
		go p.upstream(in, out)
	}
}

// upstream copies client bytes to the agent, damaging them once.
func (p *faultProxy) upstream(in, out net.Conn) {
	defer out.Close()
	buf := make([]byte, 32<<10)
	var pos int64
	for {
		n, err := in.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			p.mu.Lock()
			hit := !p.fired && pos <= p.at && p.at < pos+int64(n)
			if hit {
				p.fired = true
			}
			p.mu.Unlock()
			if hit && p.truncate {
				_, _ = out.Write(chunk[:p.at-pos])
				in.Close()
				return
			}
			if hit {
				chunk[p.at-pos] ^= 0x20
			}
			if _, werr := out.Write(chunk); werr != nil {
				return
			}
			pos += int64(n)
		}
		if err != nil {
			return
		}
	}
}

// agentHealthy reports whether the agent at u answers /healthz.
func agentHealthy(u string) bool {
	resp, err := http.Get(u + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// testLogger logs through t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
