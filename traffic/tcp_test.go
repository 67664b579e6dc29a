package traffic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

// tcpBackend is the child's address as a TCP backend.
func (c *child) tcpBackend() Backend {
	return Backend{Name: c.name, URL: &url.URL{Scheme: "tcp", Host: c.url.Host}}
}

// startConnLoad is startLoad with a new connection per request, so that
// every request through a TCP proxy is a new connection the proxy routes.
func startConnLoad(t testing.TB, p *Proxy) *load {
	l := startLoad(t, p)
	l.halt()
	l.stop = make(chan struct{})
	l.results = nil
	l.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	for w := range loadWorkers {
		l.wg.Go(func() { l.worker(w) })
	}
	return l
}

func tcpPair(t *testing.T, cfg Config) (p *Proxy, primary, standby *child, events *healthEvents) {
	t.Helper()
	primary = startBackend(t, "db@primary")
	standby = startBackend(t, "db@standby")
	events = &healthEvents{}
	cfg.OnHealth = events.record
	cfg.Protocol = TCP
	p = startProxy(t, cfg, primary.tcpBackend())
	sb := standby.tcpBackend()
	if err := p.SetStandby(&sb); err != nil {
		t.Fatal(err)
	}
	return p, primary, standby, events
}

// TestTCPSwitch: a TCP proxy moves new connections to the standby. A
// pre-emptive switch drains the connections open on the primary and fails
// none; after kill -9 of the primary, only connections already open on it
// can fail: every connection opened after the kill reaches the standby.
func TestTCPSwitch(t *testing.T) {
	t.Run("preemptive", func(t *testing.T) {
		p, primary, standby, _ := tcpPair(t, Config{})
		l := startConnLoad(t, p)
		l.awaitServed(t, primary.name, time.Time{}, 100)
		if err := p.Switch(context.Background(), func(ctx context.Context) error { return copyState(ctx, primary, standby) }); err != nil {
			t.Fatal(err)
		}
		switched := time.Now()
		l.awaitServed(t, standby.name, switched, 100)
		l.halt()
		l.checkNoFailures(t)
		if n := l.served(primary.name, switched); n > 0 {
			t.Errorf("%d connections opened after the switch reached the primary", n)
		}
	})
	t.Run("kill -9", func(t *testing.T) {
		p, primary, standby, events := tcpPair(t, Config{HealthTimeout: 200 * time.Millisecond})
		l := startConnLoad(t, p)
		l.awaitServed(t, primary.name, time.Time{}, 100)
		primary.signal(t, syscall.SIGKILL)
		_, _ = primary.cmd.Process.Wait() // dead and its sockets closed
		killed := time.Now()
		if reason := events.await(t, primary.name, false); !strings.Contains(reason, "connection refused") {
			t.Errorf("unhealthy reason %q, want connection refused", reason)
		}
		if err := p.Switch(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		l.awaitServed(t, standby.name, time.Now(), 100)
		l.halt()
		l.mu.Lock()
		defer l.mu.Unlock()
		before, after := 0, 0
		for _, r := range l.results {
			switch {
			case r.err == "":
			case r.start.Before(killed): // open when it died, or opened while it was dying
				before++
			default:
				after++
				t.Errorf("connection opened %s after the kill failed: %s", r.start.Sub(killed), r.err)
			}
		}
		t.Logf("%d connections, %d open on the primary when it was killed failed, %d opened after failed", len(l.results), before, after)
	})
}

func TestTCPPool(t *testing.T) {
	b1 := startBackend(t, "db-1")
	b2 := startBackend(t, "db-2")
	p := startProxy(t, Config{Protocol: TCP}, b1.tcpBackend())
	if err := p.AddBackend(b2.backend()); err == nil {
		t.Errorf("AddBackend(http://...) on a TCP proxy succeeded, want an error")
	}
	if err := p.AddBackend(b2.tcpBackend()); err != nil {
		t.Fatal(err)
	}
	l := startConnLoad(t, p)
	l.awaitServed(t, b1.name, time.Time{}, 50)
	l.awaitServed(t, b2.name, time.Time{}, 50)
	removing := time.Now()
	if err := p.RemoveBackend(context.Background(), b1.name); err != nil {
		t.Fatal(err)
	}
	b1.signal(t, syscall.SIGKILL)
	l.awaitServed(t, b2.name, time.Now(), 100)
	l.halt()
	l.checkNoFailures(t)
	if n := l.served(b1.name, removing); n > 0 {
		t.Errorf("%d connections opened after RemoveBackend reached %s", n, b1.name)
	}
}

// TestOnConnection: the hook hears of each accepted client connection with
// the client's address, for HTTP and TCP proxies alike.
func TestOnConnection(t *testing.T) {
	for _, proto := range []Protocol{HTTP, TCP} {
		t.Run(string(proto), func(t *testing.T) {
			b := startBackend(t, "orders@primary")
			be := b.backend()
			if proto == TCP {
				be = b.tcpBackend()
			}
			seen := make(chan netip.AddrPort, 4)
			p := startProxy(t, Config{Protocol: proto, OnConnection: func(c phoenix.ComponentID, remote netip.AddrPort) {
				if c != "orders" {
					t.Errorf("OnConnection component = %q", c)
				}
				seen <- remote
			}}, be)
			conn, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			want := conn.LocalAddr().(*net.TCPAddr).AddrPort()
			select {
			case got := <-seen:
				if got != want {
					t.Errorf("OnConnection remote = %s, want the client's %s", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("OnConnection was not called")
			}
		})
	}
}

// connPair returns the two ends of a loopback TCP connection, with small
// socket buffers if asked (a few KiB fill them).
func connPair(t *testing.T, small bool) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	a, b = c.(*net.TCPConn), s.(*net.TCPConn)
	for _, c := range []*net.TCPConn{a, b} {
		if small {
			_ = c.SetReadBuffer(8 << 10)
			_ = c.SetWriteBuffer(8 << 10)
		}
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestCopyAdaptive: small messages one at a time, then rounds of bursts
// (each burst's messages coming while the copy writes the first ones), then
// a bulk transfer (which switches the copy to splice), then the end of the
// stream, all arrive intact and in order between real TCP sockets. Each
// burst must arrive whole before the next is sent: a readiness lost while
// the copy writes would leave the end of a burst unread, for nothing more
// comes to wake the copy, and the round's deadline would pass.
func TestCopyAdaptive(t *testing.T) {
	srcW, src := connPair(t, false) // the test writes srcW; copyAdaptive reads src
	dst, dstR := connPair(t, false) // copyAdaptive writes dst; the test reads dstR
	copied := make(chan error, 1)
	go func() {
		err := copyAdaptive(dst, src)
		dst.CloseWrite()
		copied <- err
	}()
	expect := func(want []byte, what string) {
		t.Helper()
		got := make([]byte, len(want))
		_ = dstR.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.ReadFull(dstR, got); err != nil {
			t.Fatalf("%s: %d of %d bytes arrived, then %v", what, n, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %q arrived, want %q", what, clip(got), clip(want))
		}
	}
	for i := range 3 {
		msg := fmt.Sprintf("message %d\n", i)
		if _, err := io.WriteString(srcW, msg); err != nil {
			t.Fatal(err)
		}
		expect([]byte(msg), "a message")
	}
	for round := range 300 {
		var burst bytes.Buffer
		sent := make(chan error, 1)
		go func() {
			for i := range 20 {
				msg := fmt.Sprintf("round %d message %d\n", round, i)
				burst.WriteString(msg)
				if _, err := io.WriteString(srcW, msg); err != nil { // a write each
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		expect(burst.Bytes(), fmt.Sprintf("burst %d", round))
	}
	bulk := bytes.Repeat([]byte("0123456789abcdef"), (4<<20)/16)
	go func() {
		srcW.Write(bulk)
		srcW.Close()
	}()
	expect(bulk, "the bulk transfer")
	_ = dstR.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := dstR.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the bulk transfer: %d bytes, %v; want the end of the stream", n, err)
	}
	if err := <-copied; err != nil {
		t.Fatalf("copyAdaptive: %v", err)
	}
}

// TestCopyAdaptiveEnds: the end of a stream is passed on when it came with
// the last data (one read takes both, and no readiness follows), whether
// before the copy began or while it waited; urgent data (a read stops at
// its mark) does not hold back what follows it; and closing both
// connections, as pipe's cut does, returns while the copy waits for a
// destination that reads nothing. Each failed on a copy that, after a
// short read, waited for readiness instead of reading until EAGAIN, with
// its write inside the read (found in review).
func TestCopyAdaptiveEnds(t *testing.T) {
	copyAll := func(dst, src *net.TCPConn) {
		go func() {
			_ = copyAdaptive(dst, src)
			dst.CloseWrite()
		}()
	}
	readAll := func(t *testing.T, c *net.TCPConn, want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != want {
			t.Fatalf("received %q, %v; want %q and the end of the stream", got, err, want)
		}
	}
	t.Run("data and end before the copy", func(t *testing.T) {
		srcW, src := connPair(t, false)
		dst, dstR := connPair(t, false)
		if _, err := srcW.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		srcW.CloseWrite()
		time.Sleep(50 * time.Millisecond) // both queued at src
		copyAll(dst, src)
		readAll(t, dstR, "request")
	})
	t.Run("data and end while the copy waits", func(t *testing.T) {
		for range 20 {
			srcW, src := connPair(t, false)
			dst, dstR := connPair(t, false)
			copyAll(dst, src)
			time.Sleep(5 * time.Millisecond)
			if _, err := srcW.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			srcW.CloseWrite()
			readAll(t, dstR, "request")
		}
	})
	t.Run("urgent data", func(t *testing.T) {
		srcW, src := connPair(t, false)
		dst, dstR := connPair(t, false)
		rc, err := srcW.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var werr error
		_ = rc.Write(func(fd uintptr) bool {
			_, werr = syscall.Write(int(fd), []byte("abc"))
			werr = errors.Join(werr, syscall.Sendto(int(fd), []byte("X"), syscall.MSG_OOB, nil))
			_, err := syscall.Write(int(fd), []byte("def"))
			werr = errors.Join(werr, err)
			return true
		})
		if werr != nil {
			t.Fatal(werr)
		}
		time.Sleep(50 * time.Millisecond)
		copyAll(dst, src)
		got := make([]byte, 6)
		_ = dstR.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.ReadFull(dstR, got); err != nil {
			t.Fatalf("received %q, then %v; want abcdef (the urgent byte is not in the stream)", got[:n], err)
		}
		if string(got) != "abcdef" {
			t.Fatalf("received %q, want abcdef", got)
		}
	})
	t.Run("cut while the destination stalls", func(t *testing.T) {
		clientW, client := connPair(t, true)
		backend, _ := connPair(t, true) // nobody reads the backend
		go func() { _ = copyAdaptive(backend, client) }()
		msg := make([]byte, 2000) // less than a read takes: read by read, not spliced
		for range 200 {           // until the buffers are full
			_ = clientW.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := clientW.Write(msg); err != nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		closed := make(chan struct{})
		go func() {
			client.Close() // as pipe's cut
			backend.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("closing the connections blocked while the copy waited for the destination")
		}
	})
}
