package traffic

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFastPathShapes: responses of every framing HTTP/1.1 has reach the
// client whole, through the fast path, one keep-alive connection carrying
// them all, and a streamed response streams.
func TestFastPathShapes(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, backend.backend())
	base := "http://" + p.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)

	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
		length             int64 // the Content-Length the client sees, -1 if none
	}{
		{"GET", "/who", "", 200, "orders@primary", 14},
		{"PUT", "/echo", "x", 200, "PUT /echo x", 11},
		{"POST", "/echo?q=1&r=%20", "hello", 200, "POST /echo?q=1&r=%20 hello", 26},
		{"DELETE", "/echo", "", 200, "DELETE /echo ", 13},
		{"HEAD", "/who", "", 200, "", 14},
		{"GET", "/nothing", "", 204, "", 0},
		{"GET", "/early", "", 200, "after hints", 11},
		{"GET", "/stream/3", "", 200, "chunk 0\nchunk 1\nchunk 2\n", -1},
	} {
		req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.body == "" {
			req.Body = nil
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tc.status || body != tc.want || resp.ContentLength != tc.length {
			t.Errorf("%s %s = %d %q (length %d), want %d %q (length %d)", tc.method, tc.path,
				resp.StatusCode, body, resp.ContentLength, tc.status, tc.want, tc.length)
		}
		if tc.path == "/stream/3" && resp.Trailer.Get("X-Chunks") != "3" {
			t.Errorf("trailer X-Chunks = %q, want 3", resp.Trailer.Get("X-Chunks"))
		}
	}
	if st := p.Status(); st.Served != 8 || st.Failed != 0 || p.stats.handoffs.Load() != 0 {
		t.Errorf("served %d, failed %d, handed to net/http %d; want 8, 0, 0", st.Served, st.Failed, p.stats.handoffs.Load())
	}

	// A streamed response streams: its first chunk arrives before the
	// backend has written the last.
	resp, err := client.Get(base + "/stream/4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "chunk 1\nchunk 2\nchunk 3\n" {
		t.Fatalf("rest of the stream = %q, %v", rest, err)
	}
	if gap := time.Since(first); gap < 40*time.Millisecond {
		t.Errorf("the last chunks came %s after the first; the backend waits 20ms between chunks, so the first was held back", gap)
	}
}

// TestHandOff: a request the fast path does not take is served by net/http,
// and so is the rest of its connection.
func TestHandOff(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{MaxRetryBody: 16}, backend.backend())
	long := strings.Repeat("y", 40)
	for _, tc := range []struct {
		name, request, want string
	}{
		{"HTTP/1.0", "GET /echo HTTP/1.0\r\nHost: o\r\nConnection: keep-alive\r\n\r\n", "GET /echo "},
		{"chunked request body", "PUT /echo HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "PUT /echo hello"},
		{"expect continue", "PUT /echo HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", "PUT /echo hello"},
		{"body over MaxRetryBody", "PUT /echo HTTP/1.1\r\nHost: o\r\nContent-Length: 40\r\n\r\n" + long, "PUT /echo " + long},
		{"absolute form", "GET http://o/echo?a=1 HTTP/1.1\r\nHost: o\r\n\r\n", "GET /echo?a=1 "},
		{"bare LF", "GET /echo HTTP/1.1\nHost: o\n\n", "GET /echo "},
		{"head beyond the fast path's buffer", "GET /echo HTTP/1.1\r\nHost: o\r\nX-Big: " + strings.Repeat("z", h1ReadBuffer) + "\r\n\r\n", "GET /echo "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.stats.handoffs.Load()
			conn, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for i, req := range []string{tc.request, "GET /who HTTP/1.1\r\nHost: o\r\n\r\n"} {
				if _, err := io.WriteString(conn, req); err != nil {
					t.Fatal(err)
				}
				resp := finalResponse(t, br)
				body := readAll(t, resp)
				want := tc.want
				if i == 1 {
					want = backend.name
				}
				if resp.StatusCode != http.StatusOK || body != want {
					t.Fatalf("request %d: %s %q, want 200 %q", i+1, resp.Status, body, want)
				}
			}
			if n := p.stats.handoffs.Load() - before; n != 1 {
				t.Errorf("connections handed to net/http = %d, want 1", n)
			}
		})
	}
}

// finalResponse reads responses from br until one that is not
// informational.
func finalResponse(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 200 {
			return resp
		}
	}
}

// TestPipelinedAndClose: requests sent together are answered in order, and
// a client's Connection: close closes the connection after its answer.
func TestPipelinedAndClose(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, backend.backend())
	conn, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "PUT /echo HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\none"+
		"GET /who HTTP/1.1\r\nHost: o\r\n\r\n"+
		"PUT /echo HTTP/1.1\r\nHost: o\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree")
	br := bufio.NewReader(conn)
	for _, want := range []string{"PUT /echo one", backend.name, "PUT /echo three"} {
		resp := finalResponse(t, br)
		if body := readAll(t, resp); body != want {
			t.Fatalf("answer %q, want %q", body, want)
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close, read %q, %v; want the connection closed", n, err)
	}
	if h := p.stats.handoffs.Load(); h != 0 {
		t.Errorf("handed to net/http: %d connections, want 0", h)
	}
}

// TestReadyBeforeTheWait: what a client sends while its request is at the
// backend is there before the proxy waits for the client again (without
// reading first: see flushWait), and is not missed: a request pipelined in
// a write of its own gets its answer, and a client that half-closes after
// its request gets its answer and then the connection closed, both without
// waiting for the idle timeout.
func TestReadyBeforeTheWait(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, backend.backend())
	for _, tc := range []struct {
		name  string
		then  func(c *net.TCPConn) error // while the first request is at the backend
		after []string                   // the answers after the first
	}{
		{"pipelined", func(c *net.TCPConn) error {
			_, err := io.WriteString(c, "GET /who HTTP/1.1\r\nHost: o\r\n\r\n")
			return err
		}, []string{backend.name}},
		{"half-close", func(c *net.TCPConn) error { return c.CloseWrite() }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, "GET /slow/300 HTTP/1.1\r\nHost: o\r\n\r\n")
			time.Sleep(100 * time.Millisecond) // read by the proxy, at the backend
			if err := tc.then(conn.(*net.TCPConn)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			conn.SetReadDeadline(start.Add(10 * time.Second))
			br := bufio.NewReader(conn)
			if resp := finalResponse(t, br); resp.StatusCode != http.StatusOK {
				t.Fatalf("first answer: %s", resp.Status)
			} else {
				readAll(t, resp)
			}
			for _, want := range tc.after {
				resp := finalResponse(t, br)
				if body := readAll(t, resp); body != want {
					t.Fatalf("answer %q, want %q", body, want)
				}
			}
			if tc.after == nil {
				if n, err := br.ReadByte(); err != io.EOF {
					t.Fatalf("after the client's end of file, read %q, %v; want the connection closed", n, err)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s after the first answer was due in 200ms: what came before the wait was missed until a timeout", d.Round(time.Millisecond))
			}
		})
	}
	if st := p.Status(); st.Failed != 0 {
		t.Errorf("%d requests failed, want 0", st.Failed)
	}
}

// TestWaitFirstBoundPassed: a goroutine not run until after its wait's bound
// (an overloaded host, a container at its CPU limit) finds the deadline past
// when RawConn.Read looks at it, before it calls back; the request and the
// answer's end it was to write there are written all the same. With the
// bound at a nanosecond every wait meets that: each request on a
// connection, and one pipelined behind a slow one that net/http must take
// (the answer before it must reach the client first).
func TestWaitFirstBoundPassed(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := newProxy(t, Config{}, backend.backend())
	p.waitFirst = time.Nanosecond
	runProxy(t, p)
	conn, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i := range 3 {
		io.WriteString(conn, "GET /who HTTP/1.1\r\nHost: o\r\n\r\n")
		if body := readAll(t, finalResponse(t, br)); body != backend.name {
			t.Fatalf("request %d: answer %q, want %q", i+1, body, backend.name)
		}
	}
	io.WriteString(conn, "GET /slow/200 HTTP/1.1\r\nHost: o\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(conn, "GET /who HTTP/1.0\r\nHost: o\r\n\r\n") // declined: handed to net/http
	for _, want := range []string{"slow done", backend.name} {
		if body := readAll(t, finalResponse(t, br)); body != want {
			t.Fatalf("answer %q, want %q: out of step", body, want)
		}
	}
}

// TestBackendClosesIdleConnections: a backend that closes idle keep-alive
// connections quickly (as many servers do after a second or two) fails no
// request, idempotent or not, and is not taken for a failing one.
func TestBackendClosesIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int32
	srv := &http.Server{
		IdleTimeout: 10 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s", r.Method, body)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				opened.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := startProxy(t, Config{}, Backend{Name: "idle-closer", URL: &url.URL{Scheme: "http", Host: ln.Addr().String()}})
	for i := range 10 {
		method := []string{http.MethodGet, http.MethodPost}[i%2]
		req, _ := http.NewRequest(method, "http://"+p.Addr().String()+"/", strings.NewReader("b"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != http.StatusOK || body != method+" b" {
			t.Fatalf("request %d: %s %q", i+1, resp.Status, body)
		}
		time.Sleep(30 * time.Millisecond) // past the backend's idle timeout
	}
	st := p.Status()
	if st.Failed != 0 || st.Retries != 0 || !st.Active.Healthy {
		t.Errorf("failed %d, retried %d, active healthy %v; want 0, 0, true", st.Failed, st.Retries, st.Active.Healthy)
	}
	if n := opened.Load(); n < 5 {
		t.Errorf("backend saw %d connections, want one per request or so: its idle timeout did not close them, and the test proved nothing", n)
	}
}

// TestBackendClosesAfterAnswering: a backend that ends each connection right
// after its answer, without saying so in the answer, either by a reset
// (SO_LINGER 0: the next request's write on the reused connection fails) or
// by closing its side only and reading on (the next request is taken and
// never answered, but the end of file was there to read first): either way
// a GET is sent again on a new connection, and nothing fails or hangs.
// (Waiting for the answer's readiness without reading first, through
// RawConn.Read, hung on the half-closed connection: the reset of the
// poller's readiness lost the end of file.)
func TestBackendClosesAfterAnswering(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *net.TCPConn, br *bufio.Reader)
	}{
		{"reset", func(c *net.TCPConn, _ *bufio.Reader) { c.SetLinger(0) }},
		{"half-close", func(c *net.TCPConn, br *bufio.Reader) {
			c.CloseWrite()
			io.Copy(io.Discard, br)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testBackendClosesAfterAnswering(t, tc.end) })
	}
}

func testBackendClosesAfterAnswering(t *testing.T, end func(c *net.TCPConn, br *bufio.Reader)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var opened atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			opened.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				end(c.(*net.TCPConn), br)
			}()
		}
	}()
	p := startProxy(t, Config{}, Backend{Name: "closer", URL: &url.URL{Scheme: "http", Host: ln.Addr().String()}})
	client := &http.Client{Timeout: 5 * time.Second}
	const n = 20
	for i := range n {
		resp, err := client.Get("http://" + p.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("request %d: %s %q", i+1, resp.Status, body)
		}
		if i%2 == 1 {
			time.Sleep(5 * time.Millisecond) // the end arrives before the next request
		}
	}
	if st := p.Status(); st.Failed != 0 {
		t.Errorf("%d requests failed, want 0", st.Failed)
	}
	if got := opened.Load(); got < n {
		t.Errorf("backend saw %d connections, want one per request (%d) at the least: the test proved nothing", got, n)
	}
}

// TestBackendResponseShapes: a backend speaking HTTP/1.0, or ending its
// body by closing, is relayed whole; one answering garbage gets the client a
// 502 that says so.
func TestBackendResponseShapes(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		status       int
		want         string
	}{
		{"HTTP/1.0 until close", "HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nbody until close", 200, "body until close"},
		{"HTTP/1.1 until close", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, "all of it"},
		{"garbage", "HTTP/2.0 200 OK\r\n\r\n", 502, "malformed status line"},
		{"smuggling attempt", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 502, "ambiguous body length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawBackend(t, tc.answer)
			p := startProxy(t, Config{}, Backend{Name: "raw", URL: &url.URL{Scheme: "http", Host: addr}})
			resp, err := http.Get("http://" + p.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %q, want %d with %q", resp.Status, body, tc.status, tc.want)
			}
		})
	}
}

// rawBackend answers every connection's first request with answer, then
// closes it.
func rawBackend(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, answer)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestHostPort(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://orders", "orders:80"},
		{"https://orders/api", "orders:443"},
		{"http://orders:8080", "orders:8080"},
		{"http://[::1]/", "[::1]:80"},
		{"https://[::1]:8443", "[::1]:8443"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostPort(u); got != tc.want {
			t.Errorf("hostPort(%s) = %s, want %s", tc.url, got, tc.want)
		}
	}
}

// TestHTTPSBackendGetsTLS: a request for an https:// backend goes out in
// TLS (its first byte is a handshake record), never as plain text.
func TestHTTPSBackendGetsTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	first := make(chan byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err == nil {
			first <- b[0]
		}
	}()
	p := startProxy(t, Config{HoldTimeout: 100 * time.Millisecond},
		Backend{Name: "tls", URL: &url.URL{Scheme: "https", Host: ln.Addr().String()}})
	go func() {
		if resp, err := http.Get("http://" + p.Addr().String() + "/secret"); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case b := <-first:
		if b != 0x16 { // TLS handshake record
			t.Fatalf("first byte to the https backend = %q, want a TLS handshake (0x16)", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the https backend got no connection")
	}
}

// TestClientLeavesSlowRequest: a client that closes its connection while
// its request is at a slow backend (answering after 3 × h1WatchAfter) has
// the backend connection cut (the backend sees its request canceled) within
// about h1WatchAfter, as ReverseProxy cancels its request, instead of at the
// backend's answer; a client that stays gets its slow answer, and its next
// request on the same connection is served.
func TestClientLeavesSlowRequest(t *testing.T) {
	const slow = 6 * time.Second
	canceled := make(chan time.Duration, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" { // the quick request, and health checks
			io.WriteString(w, "quick")
			return
		}
		began := time.Now()
		select {
		case <-r.Context().Done():
			canceled <- time.Since(began)
		case <-time.After(3 * h1WatchAfter):
			io.WriteString(w, "slow")
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	p := startProxy(t, Config{}, Backend{Name: "slow", URL: u})

	for _, method := range []string{"GET", "POST"} {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "%s /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", method)
		time.Sleep(200 * time.Millisecond)
		c.Close()
		select {
		case d := <-canceled:
			if d > h1WatchAfter+time.Second {
				t.Errorf("%s: the backend saw its request canceled after %s, want about %s", method, d, h1WatchAfter)
			}
		case <-time.After(slow):
			t.Fatalf("%s: the backend's request was not canceled when the client left", method)
		}
	}
	waitFor(t, 5*time.Second, "the canceled requests counted", func() bool { return p.Status().Canceled == 2 })
	if st := p.Status(); st.Failed != 0 || st.Retries != 0 || !st.Active.Healthy {
		t.Errorf("failed %d, retried %d, backend healthy %v; want 0, 0, true: a client that left is no fault of the backend's",
			st.Failed, st.Retries, st.Active.Healthy)
	}

	// A client that stays through the watch gets its answer, and its
	// connection serves the next request.
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, path := range []string{"/slow", "/quick"} {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if body := readAll(t, resp); resp.StatusCode != http.StatusOK || body != path[1:] {
			t.Fatalf("%s: %s %q", path, resp.Status, body)
		}
	}
}

// TestStopCutsSlowBackend: when Run's context ends, a request still waiting
// on a slow backend is cut after DrainTimeout, not waited for.
func TestStopCutsSlowBackend(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p, err := New(Config{Component: "orders", DrainTimeout: 200 * time.Millisecond}, backend.backend())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	go func() {
		if resp, err := http.Get("http://" + p.Addr().String() + "/slow/8000"); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, 5*time.Second, "the request in flight", func() bool { return p.Status().Active.InFlight == 1 })
	cancel()
	select {
	case <-ran:
	case <-time.After(4 * time.Second):
		t.Fatal("Run still waiting 4s after its context ended, with DrainTimeout 200ms: the slow backend was not cut")
	}
}

// TestClientTimeout: a client that stops taking its response is
// disconnected after ClientTimeout on both paths, and the backend
// connection it held is released.
func TestClientTimeout(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{ClientTimeout: 300 * time.Millisecond}, backend.backend())
	for _, tc := range []struct {
		name  string
		first string // a request answered and read before the stalled one, on the same connection
		proto string
	}{
		{name: "fast path", proto: "HTTP/1.1"},
		{name: "net/http", proto: "HTTP/1.0"},
		// net/http clears the write deadline after each response: the
		// next one must set ClientTimeout's again, however soon it comes.
		{name: "net/http, second request", first: "GET /who HTTP/1.0\r\nHost: orders\r\nConnection: keep-alive\r\n\r\n", proto: "HTTP/1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.first != "" {
				if _, err := io.WriteString(conn, tc.first); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				if body := readAll(t, resp); body != "orders@primary" {
					t.Fatalf("first request: %q", body)
				}
			}
			const size = 64 << 20
			if _, err := fmt.Fprintf(conn, "GET /big/64 %s\r\nHost: orders\r\nConnection: keep-alive\r\n\r\n", tc.proto); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the request to reach the backend", func() bool { return p.Status().Active.InFlight == 1 })
			// The client reads nothing; the proxy's writes stop.
			waitFor(t, 5*time.Second, "the stalled client to be disconnected and its backend released", func() bool {
				return p.Status().Active.InFlight == 0
			})
			n, err := io.Copy(io.Discard, conn)
			if n >= size {
				t.Errorf("read %d bytes (%v): the whole response, want it cut", n, err)
			}
		})
	}

	resp, err := http.Get("http://" + p.Addr().String() + "/who")
	if err != nil {
		t.Fatalf("after the cuts: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "orders@primary" {
		t.Errorf("after the cuts, /who = %s %q", resp.Status, body)
	}
}

// TestProgressWriter: a write that takes longer than the timeout goes on
// while the reader takes bytes, and fails once it stops.
func TestProgressWriter(t *testing.T) {
	client, proxy := net.Pipe()
	defer client.Close()
	w := newProgressWriter(proxy, proxy, 200*time.Millisecond)
	data := bytes.Repeat([]byte("x"), 16<<10)
	read := make(chan int)
	go func() {
		// 1 KiB every 40 ms: the 16 KiB take about 640 ms, then nothing.
		buf := make([]byte, 1<<10)
		total := 0
		for total < len(data) {
			n, err := client.Read(buf)
			total += n
			if err != nil {
				break
			}
			time.Sleep(40 * time.Millisecond)
		}
		read <- total
	}()
	if n, err := w.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write to a slow but steady reader = %d, %v; want all %d bytes", n, err, len(data))
	}
	if got := <-read; got != len(data) {
		t.Fatalf("the reader got %d bytes", got)
	}
	start := time.Now()
	if _, err := w.Write(data); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a reader that stopped = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the stalled write failed after %v, want about the 200ms timeout", d)
	}
}

// TestTETrailers: a client's TE header is hop-by-hop, but its "trailers"
// is passed on as "Te: trailers", as ReverseProxy does, on the fast path.
func TestTETrailers(t *testing.T) {
	backend := startBackend(t, "orders@primary")
	p := startProxy(t, Config{}, backend.backend())
	for _, tc := range []struct{ te, want string }{
		{"trailers", "trailers"},
		{"deflate;q=0.5, Trailers", "trailers"},
		{"deflate", ""},
		{"", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.Addr().String()+"/headers", nil)
		if tc.te != "" {
			req.Header.Set("Te", tc.te)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got["te"] != tc.want {
			t.Errorf("TE %q: the backend saw %q, want %q", tc.te, got["te"], tc.want)
		}
	}
	if n := p.stats.handoffs.Load(); n != 0 {
		t.Errorf("%d requests handed to net/http, want all on the fast path", n)
	}
}

// TestPoolSweepsIdleConnections: the fast path's pool closes connections
// idle for h1IdleTimeout and keeps the others.
func TestPoolSweepsIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closedByPeer := make(chan struct{}, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, c) // until the proxy closes it
				c.Close()
				closedByPeer <- struct{}{}
			}()
		}
	}()
	u, _ := url.Parse("http://" + ln.Addr().String())
	p := newH1Pool(u, time.Second)
	defer p.close()
	ctx := context.Background()
	var conns []*h1Backend
	for range 2 {
		b, err := p.dial(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, b)
	}
	for _, b := range conns {
		b.put()
	}
	conns[0].lastUsed = time.Now().Add(-2 * h1IdleTimeout) // put set it; age one

	p.sweep(time.Now().Add(-h1IdleTimeout))
	select {
	case <-closedByPeer:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection idle past the timeout is still open")
	}
	if n, open := len(p.idle), len(p.slots); n != 1 || open != 1 {
		t.Errorf("after the sweep: %d idle, %d open; want the recent one kept (1, 1)", n, open)
	}
	select {
	case <-closedByPeer:
		t.Error("the recently used connection was closed too")
	case <-time.After(100 * time.Millisecond):
	}
}
