package traffic

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// tcpServer is the TCP data plane: each accepted connection is held while
// no backend is usable, then joined to a new connection to a backend of the
// active set. A connection that could not be dialled is dialled again, to
// another member or, after a switch, to the new set: no byte has reached a
// backend yet, so the client sees only a delay. Once joined, a connection
// belongs to its backend until it closes; a switch waits for it up to
// DrainTimeout and then cuts it, since a byte stream cannot be moved.
type tcpServer struct {
	p       *Proxy
	dialer  net.Dialer
	ctx     context.Context // ended by close: cuts every connection
	cancel  context.CancelFunc
	closing atomic.Bool
	wg      sync.WaitGroup
	// acceptDone is closed when serve's accept loop has returned: only
	// then may wg be waited for.
	acceptDone chan struct{}
}

var _ server = (*tcpServer)(nil)

func newTCPServer(p *Proxy) *tcpServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &tcpServer{p: p, dialer: net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}, ctx: ctx, cancel: cancel, acceptDone: make(chan struct{})}
}

func (s *tcpServer) serve(ln net.Listener) error {
	defer close(s.acceptDone)
	return acceptLoop(ln, &s.closing, s.p, func(c net.Conn) { s.wg.Go(func() { s.handle(c) }) })
}

func (s *tcpServer) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.p.ln.Close() // the listener serve accepts on
	done := make(chan struct{})
	go func() { <-s.acceptDone; s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *tcpServer) close() error {
	s.cancel()
	<-s.acceptDone
	s.wg.Wait()
	return nil
}

// handle joins one client connection to a backend, holding and re-dialling
// as needed, and returns when both directions are done.
func (s *tcpServer) handle(client net.Conn) {
	p := s.p
	defer client.Close()
	deadline := time.Now().Add(p.cfg.HoldTimeout)
	for attempt := 1; ; attempt++ {
		t, late, err := p.acquire(s.ctx, deadline, nil)
		if err != nil {
			p.stats.failed.Add(1)
			p.log.Warn("connection closed without a backend", "client", client.RemoteAddr().String(), "err", err)
			return
		}
		backend, err := s.dialer.DialContext(s.ctx, "tcp", t.addr)
		if err != nil {
			t.release()
			if s.ctx.Err() != nil {
				return
			}
			p.observe(t, true)
			t.failed.Inc()
			p.markSuspect(t, err)
			if late || attempt >= maxAttempts {
				p.stats.failed.Add(1)
				p.log.Warn("connection closed: backend unreachable", "backend", t.backend.Name, "err", err, "attempts", attempt)
				return
			}
			p.stats.retries.Add(1)
			p.metrics.retries.Inc()
			continue
		}
		p.observe(t, false)
		t.ok.Inc()
		p.stats.served.Add(1)
		s.pipe(client, backend, t)
		t.release()
		return
	}
}

// pipe copies both ways until both are done. A half-close is passed on; an
// error on either side, an abandonment by a switch, or close cuts both.
func (s *tcpServer) pipe(client, backend net.Conn, t *target) {
	var once sync.Once
	cut := func() {
		once.Do(func() {
			client.Close()
			backend.Close()
		})
	}
	defer cut()
	stopAbandon := context.AfterFunc(t.abandonCtx, cut)
	defer stopAbandon()
	stopClose := context.AfterFunc(s.ctx, cut)
	defer stopClose()

	done := make(chan struct{})
	go func() {
		defer close(done)
		oneWay(backend, client, cut)
	}()
	oneWay(client, backend, cut)
	<-done
}

// tcpChunk is the buffer a direction of a TCP connection is copied through
// until a read fills it.
const tcpChunk = 8 << 10

// oneWay copies src to dst, then half-closes dst; on an error it cuts both.
//
// It copies through a small buffer with read and write, and once a read
// fills the buffer (a bulk transfer, not requests and answers) hands the
// rest to io.Copy, which splices between TCP sockets: for small messages
// read and write cost less than splice's two calls through a pipe (wrk
// through the TCP proxy: a median 7% more requests/s than io.Copy alone,
// over 5 interleaved rounds here), for bulk splice moves about 40% more
// (1.3-1.6 against 0.9-1.1 GB/s over loopback), as HAProxy's splice-auto
// chooses.
func oneWay(dst, src net.Conn, cut func()) {
	err := copyAdaptive(dst, src)
	if err != nil {
		cut()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	cut()
}

// copyAdaptive copies src to dst until src's end, as io.Copy does, first
// through a buffer of tcpChunk bytes (with raw calls where it can, see
// rawIO), then, after a read filled it, by io.Copy (splice(2) between TCP
// sockets).
func copyAdaptive(dst, src net.Conn) error {
	r, w := connIO(src), connIO(dst)
	buf := make([]byte, tcpChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			_, err := io.Copy(dst, src)
			return err
		}
	}
}

// errTooManyFiles is EMFILE, on which accepting again later may succeed.
var errTooManyFiles = syscall.EMFILE
