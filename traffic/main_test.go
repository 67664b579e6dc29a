package traffic

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// backendEnv, when set, makes the test binary serve the test backend app
// under that name instead of running tests.
const backendEnv = "PHOENIX_TRAFFIC_TEST_BACKEND"

func TestMain(m *testing.M) {
	if name := os.Getenv(backendEnv); name != "" {
		os.Exit(runBackend(name))
	}
	os.Exit(m.Run())
}

// runBackend serves the tiny app every test backend runs. It prints its
// address on stdout, then exits when its stdin closes (the test is gone).
func runBackend(name string) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	a := &app{name: name, kv: map[string]string{}, hits: map[string]int{}}
	a.health.Store(http.StatusOK)
	if err := http.Serve(ln, a.routes()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// app is the backend: it says who served, stores keys in memory, and can
// misbehave on demand.
type app struct {
	name   string
	health atomic.Int32 // status /healthz answers
	fail   atomic.Int32 // if set, the status every other non-admin request gets
	slowHz atomic.Int64 // milliseconds /healthz waits before answering
	slowIn atomic.Int64 // /slow requests being served
	mu     sync.Mutex
	kv     map[string]string
	hits   map[string]int // per /drop and /flaky key
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(a.slowHz.Load()) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(int(a.health.Load()))
	})
	mux.HandleFunc("GET /who", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, a.name)
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"x-forwarded-for":  r.Header.Get("X-Forwarded-For"),
			"x-forwarded-host": r.Header.Get("X-Forwarded-Host"),
			"host":             r.Host,
			"path":             r.URL.Path,
			"te":               strings.Join(r.Header.Values("Te"), ","),
		})
	})
	mux.HandleFunc("PUT /k/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.kv[r.PathValue("id")] = string(v)
		a.mu.Unlock()
		io.WriteString(w, "stored")
	})
	mux.HandleFunc("GET /dump", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		json.NewEncoder(w).Encode(a.kv)
	})
	mux.HandleFunc("POST /load", func(w http.ResponseWriter, r *http.Request) {
		var kv map[string]string
		if err := json.NewDecoder(r.Body).Decode(&kv); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		for k, v := range kv {
			a.kv[k] = v
		}
		a.mu.Unlock()
	})
	a.faultRoutes(mux)
	a.shapeRoutes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", a.name)
		if code := a.fail.Load(); code != 0 && r.URL.Path != "/healthz" && !strings.HasPrefix(r.URL.Path, "/admin/") {
			http.Error(w, "failing on purpose", int(code))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// faultRoutes are the endpoints that misbehave on purpose.
func (a *app) faultRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /admin/healthdelay/{ms}", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.ParseInt(r.PathValue("ms"), 10, 64)
		if err != nil || ms < 0 {
			http.Error(w, "bad delay", http.StatusBadRequest)
			return
		}
		a.slowHz.Store(ms)
	})
	mux.HandleFunc("PUT /admin/health/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "bad code", http.StatusBadRequest)
			return
		}
		a.health.Store(int32(code))
	})
	mux.HandleFunc("PUT /admin/fail/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || (code != 0 && (code < 200 || code > 599)) {
			http.Error(w, "bad code", http.StatusBadRequest)
			return
		}
		a.fail.Store(int32(code))
	})
	// /drop/{key} reads the request, then closes the connection without
	// answering, every time. /flaky/{key} does so only the first time.
	mux.HandleFunc("/drop/{key}", func(w http.ResponseWriter, r *http.Request) { a.drop(w, r, true) })
	mux.HandleFunc("/flaky/{key}", func(w http.ResponseWriter, r *http.Request) { a.drop(w, r, false) })
	mux.HandleFunc("GET /hits/{key}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		fmt.Fprint(w, a.hits[r.PathValue("key")])
	})
	mux.HandleFunc("GET /admin/slow", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, a.slowIn.Load())
	})
	mux.HandleFunc("GET /slow/{ms}", func(w http.ResponseWriter, r *http.Request) {
		a.slowIn.Add(1)
		defer a.slowIn.Add(-1)
		ms, _ := strconv.Atoi(r.PathValue("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			io.WriteString(w, "slow done")
		case <-r.Context().Done():
		}
	})
	// /upgrade switches to a protocol that echoes what it receives.
	mux.HandleFunc("GET /upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})
}

// shapeRoutes answer in the shapes HTTP/1.1 allows, for the data plane's
// framing: echoed bodies, streamed chunks with a trailer, informational
// responses, no content.
func (a *app) shapeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
	})
	// /stream/{n} sends n chunks, one per wait, and an X-Chunks trailer.
	mux.HandleFunc("GET /stream/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Header().Set("Trailer", "X-Chunks")
		rc := http.NewResponseController(w)
		for i := range n {
			fmt.Fprintf(w, "chunk %d\n", i)
			rc.Flush()
			time.Sleep(20 * time.Millisecond)
		}
		w.Header().Set("X-Chunks", strconv.Itoa(n))
	})
	mux.HandleFunc("GET /early", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "after hints")
	})
	// /big/{mib} sends that many MiB.
	mux.HandleFunc("GET /big/{mib}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("mib"))
		w.Header().Set("Content-Length", strconv.Itoa(n<<20))
		block := bytes.Repeat([]byte("x"), 1<<20)
		for range n {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /nothing", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *app) drop(w http.ResponseWriter, r *http.Request, always bool) {
	_, _ = io.Copy(io.Discard, r.Body)
	key := r.PathValue("key")
	a.mu.Lock()
	a.hits[key]++
	first := a.hits[key] == 1
	a.mu.Unlock()
	if !always && !first {
		io.WriteString(w, "applied")
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// child is a backend process started from the test binary.
type child struct {
	name string
	url  *url.URL
	cmd  *exec.Cmd
}

func startBackend(t testing.TB, name string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), backendEnv+"="+name)
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
		t.Fatalf("start backend %s: %v", name, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	var addr string
	select {
	case s := <-line:
		addr = strings.TrimSpace(strings.TrimPrefix(s, "ADDR "))
	case <-time.After(20 * time.Second):
		t.Fatalf("backend %s did not report its address", name)
	}
	u, err := url.Parse("http://" + addr)
	if err != nil || addr == "" {
		t.Fatalf("backend %s reported %q: %v", name, addr, err)
	}
	return &child{name: name, url: u, cmd: cmd}
}

func (c *child) backend() Backend { return Backend{Name: c.name, URL: c.url} }

func (c *child) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, c.name, err)
	}
}

// put sends an admin PUT straight to the backend, bypassing the proxy.
func (c *child) put(t testing.TB, path string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, c.url.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s to %s: %v", path, c.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s to %s: %s", path, c.name, resp.Status)
	}
}

// get fetches path straight from the backend, bypassing the proxy.
func (c *child) get(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(c.url.String() + path)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// startProxy runs a proxy until the test ends and checks Run's result.
func startProxy(t testing.TB, cfg Config, active Backend) *Proxy {
	t.Helper()
	return runProxy(t, newProxy(t, cfg, active))
}

// newProxy is a proxy for runProxy, which a test may adjust first.
func newProxy(t testing.TB, cfg Config, active Backend) *Proxy {
	t.Helper()
	if cfg.Component == "" {
		cfg.Component = "orders"
	}
	p, err := New(cfg, active)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runProxy runs p until the test ends and checks Run's result.
func runProxy(t testing.TB, p *Proxy) *Proxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return p
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// healthEvents records OnHealth calls and lets a test await one.
type healthEvents struct {
	mu     sync.Mutex
	events []healthEvent
}

type healthEvent struct {
	backend string
	healthy bool
	reason  string
}

func (h *healthEvents) record(b Backend, healthy bool, reason string) {
	h.mu.Lock()
	h.events = append(h.events, healthEvent{b.Name, healthy, reason})
	h.mu.Unlock()
}

// await waits for a transition of backend to healthy and returns its reason.
func (h *healthEvents) await(t testing.TB, backend string, healthy bool) string {
	t.Helper()
	var reason string
	waitFor(t, 15*time.Second, fmt.Sprintf("%s healthy=%v", backend, healthy), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events {
			if e.backend == backend && e.healthy == healthy {
				reason = e.reason
				return true
			}
		}
		return false
	})
	return reason
}
