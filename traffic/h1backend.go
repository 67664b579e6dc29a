package traffic

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of a backend's connection pool. The bound on connections matters
// after a failover: requests held through it are released together, and
// queue for a few hundred connections instead of opening one each (a dial
// storm that can take the new backend seconds to absorb).
const (
	h1MaxConns = 256
	// h1CheckIdle: a connection idle longer than this is checked before
	// it is reused, in case the backend closed it meanwhile (servers close
	// idle connections after as little as a second or two). Under load
	// connections are reused sooner and the check costs nothing.
	h1CheckIdle = 50 * time.Millisecond
	// h1IdleTimeout: a connection idle this long is closed, as
	// http.Transport's IdleConnTimeout closes the other path's (see
	// newTransport), so that the connections a burst opened do not stay
	// open to the backend, nor sit in CLOSE_WAIT once it closes them.
	h1IdleTimeout = 90 * time.Second
)

// h1Pool holds the fast path's keep-alive connections to one backend.
type h1Pool struct {
	addr   string // host:port, the scheme's port when the URL has none
	dialer net.Dialer
	tls    *tls.Config     // for https backends: HTTP/1.1 over TLS, verified as http.Transport does
	idle   chan *h1Backend // LIFO would be nicer; a channel is lock-free enough
	slots  chan struct{}   // one per open connection
	closed atomic.Bool
	// sweeper closes the connections idle for h1IdleTimeout, every third
	// of it, while some are idle (armed).
	sweeper *time.Timer
	armed   atomic.Bool
}

func newH1Pool(u *url.URL, dialTimeout time.Duration) *h1Pool {
	p := &h1Pool{
		addr:   hostPort(u),
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		idle:   make(chan *h1Backend, h1MaxConns),
		slots:  make(chan struct{}, h1MaxConns),
	}
	if u.Scheme == "https" {
		p.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	p.sweeper = time.AfterFunc(time.Hour, p.sweepTick)
	p.sweeper.Stop() // armed by the first connection put idle
	return p
}

// arm starts the sweeps if they are not running.
func (p *h1Pool) arm() {
	if p.armed.CompareAndSwap(false, true) {
		p.sweeper.Reset(h1IdleTimeout / 3)
	}
}

// sweepTick sweeps, and goes on every third of h1IdleTimeout while
// connections are idle; a pool with none (or closed) holds no timer.
func (p *h1Pool) sweepTick() {
	if p.closed.Load() {
		return
	}
	p.sweep(time.Now().Add(-h1IdleTimeout))
	if len(p.idle) > 0 {
		p.sweeper.Reset(h1IdleTimeout / 3)
		return
	}
	p.armed.Store(false)
	if len(p.idle) > 0 { // put between the check and the store
		p.arm()
	}
}

// sweep closes the idle connections last used before the given time and
// puts the others back.
func (p *h1Pool) sweep(before time.Time) {
sweep:
	for range len(p.idle) {
		select {
		case b := <-p.idle:
			if b.lastUsed.Before(before) {
				b.close()
				continue
			}
			select {
			case p.idle <- b:
			default: // never: the channel holds every connection the pool may open
				b.close()
			}
		default:
			break sweep
		}
	}
	if p.closed.Load() {
		p.close() // closed while the sweep held connections it put back
	}
}

// hostPort is u's host with its port, or the scheme's default one.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// errPoolFull: every connection the pool may open is in use, for longer
// than a request may wait.
var errPoolFull = fmt.Errorf("all %d connections to the backend in use", h1MaxConns)

// get returns an idle connection that is still open, or a new one, waiting
// up to wait while the pool is at its bound. For a request that must not be
// sent twice (!replayable) every idle connection is checked first, since
// the usual remedy, sending it again on a new connection when the backend
// turns out to have closed the old one, is not open to it.
func (p *h1Pool) get(ctx context.Context, replayable bool, wait time.Duration) (*h1Backend, error) {
	return p.take(ctx, p.idle, replayable, wait)
}

// dial returns a new connection, waiting up to wait while the pool is at
// its bound.
func (p *h1Pool) dial(ctx context.Context, wait time.Duration) (*h1Backend, error) {
	return p.take(ctx, nil, false, wait) // a nil channel is never ready
}

func (p *h1Pool) take(ctx context.Context, idle chan *h1Backend, replayable bool, wait time.Duration) (*h1Backend, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case b := <-idle:
			if b.usable(replayable) {
				return b, nil
			}
			b.close()
			continue
		default:
		}
		select {
		case p.slots <- struct{}{}:
			return p.open(ctx)
		default:
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case b := <-idle:
			if b.usable(replayable) {
				return b, nil
			}
			b.close()
		case p.slots <- struct{}{}:
			return p.open(ctx)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, fmt.Errorf("%w after waiting %s", errPoolFull, wait)
		}
	}
}

// open dials a connection for a slot taken by the caller.
func (p *h1Pool) open(ctx context.Context) (*h1Backend, error) {
	var c net.Conn
	var err error
	if p.tls != nil {
		d := tls.Dialer{NetDialer: &p.dialer, Config: p.tls}
		c, err = d.DialContext(ctx, "tcp", p.addr)
	} else {
		c, err = p.dialer.DialContext(ctx, "tcp", p.addr)
	}
	if err != nil {
		<-p.slots
		return nil, err
	}
	return newH1Backend(c, p), nil
}

// close closes the idle connections and those returned from now on.
func (p *h1Pool) close() {
	p.closed.Store(true)
	p.sweeper.Stop()
	for {
		select {
		case b := <-p.idle:
			b.close()
		default:
			return
		}
	}
}

// h1Backend is a connection to a backend.
type h1Backend struct {
	conn     net.Conn
	br       *bufio.Reader
	pool     *h1Pool
	reused   bool      // has carried a request before this one
	lastUsed time.Time // when it was put back idle
	wrote    int64     // bytes of the current request written
	got      bool      // a byte of the current response had been read when it failed
	bufs     [2][]byte
	head     []byte // the current response head, copied out of br
	closed   bool
	// out is the request being written: a field, so that writing it
	// allocates nothing.
	out net.Buffers
	// rio reads and writes a plain TCP connection (on Linux).
	rio *rawIO
	// cutOff: cut was called; a deadline set since must not undo it.
	cutOff atomic.Bool

	// raw, for a plain TCP connection, sends a request and waits for its
	// answer without a read that finds nothing (see send); sendStep is
	// its callback, made once, and sent and sendErr its state.
	raw      syscall.RawConn
	sendStep func(uintptr) bool
	sent     bool
	sendErr  error
}

func newH1Backend(c net.Conn, p *h1Pool) *h1Backend {
	b := &h1Backend{conn: c, pool: p, rio: newRawIO(c)}
	if b.rio != nil {
		b.br = bufio.NewReaderSize(b.rio, h1RespBuffer)
	} else {
		b.br = bufio.NewReaderSize(c, h1RespBuffer)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			b.raw, b.sendStep = raw, b.step
		}
	}
	return b
}

// roundTrip sends a request (its head and body) and reads the response head
// into resp, leaving the body in br. Informational (1xx) responses are
// passed over.
func (b *h1Backend) roundTrip(head, body, method []byte, resp *h1Response, wait time.Duration) error {
	b.wrote, b.got = 0, false
	b.out = append(net.Buffers(b.bufs[:0]), head)
	if len(body) > 0 {
		b.out = append(b.out, body)
	}
	if err := b.send(wait); err != nil {
		return err
	}
	for {
		h, err := peekHead(b.br, func() {})
		if err != nil {
			b.got = b.br.Buffered() > 0
			if errors.Is(err, errHeadTooLarge) {
				return fmt.Errorf("backend response: head larger than %d bytes", b.br.Size())
			}
			return err
		}
		b.head = append(b.head[:0], h...)
		_, _ = b.br.Discard(len(h))
		if err := parseResponseHead(b.head, method, resp); err != nil {
			return fmt.Errorf("backend response: %w", err)
		}
		switch {
		case resp.status == 101:
			return errors.New("backend response: 101 Switching Protocols to a request that asked for no upgrade")
		case resp.status >= 200:
			return nil
		}
	}
}

// h1WaitFirst bounds a wait for readiness that does not read first: the
// fast path's wait for an answer (see send) and for a client's next request
// (see flushWait). A wait that reaches it ends with nothing lost: the reads
// that follow are Go's usual ones, which read first and wait for as long as
// it takes. It is what a readiness that came before the wait costs (a
// backend's end of file on an idle connection, a client's pipelined
// request), and a wake-up more for an answer or a request slower than it.
const h1WaitFirst = 50 * time.Millisecond

// send writes b.out and, on a plain TCP connection, returns once the
// backend's answer can be read, or after wait (h1WaitFirst).
//
// Go's poller reads first and waits for readiness only when that read finds
// nothing, and a backend has never answered yet when a request has just been
// written: that read is a system call wasted per request (1.5 µs here, a
// twentieth of the proxy's CPU per request, measured with perf). So the
// request is written from inside a RawConn.Read callback, which resets the
// poller's read readiness before it calls back, and the callback asks to
// wait: nothing the backend sends in answer can come before the reset and be
// lost to it. What came before it can be: the end of file of a backend that
// half-closed the connection while it was idle in the pool, and will never
// answer. The wait is bounded for that case (h1WaitFirst), after which the
// usual read finds the end of file and the request is sent again on a new
// connection, as for any stale one.
func (b *h1Backend) send(wait time.Duration) error {
	if b.raw == nil || b.br.Buffered() > 0 {
		n, err := b.writeOut()
		b.wrote = n
		return err
	}
	b.setReadDeadline(time.Now().Add(wait))
	b.sent, b.sendErr = false, nil
	err := b.raw.Read(b.sendStep)
	b.setReadDeadline(time.Time{})
	if !b.sent && !b.cutOff.Load() {
		// The bound had passed when RawRead looked at the deadline, which
		// it does before calling back (the goroutine was not run for that
		// long): nothing was written.
		n, err := b.writeOut()
		b.wrote = n
		return err
	}
	switch {
	case b.sendErr != nil:
		return b.sendErr
	case errors.Is(err, os.ErrDeadlineExceeded) && !b.cutOff.Load():
		return nil // no answer yet: the reads that follow wait for it
	}
	return err
}

// step is send's callback: the first call writes the request and asks to
// wait for the answer, unless the write failed; the next, made once the
// socket is readable, ends the wait.
func (b *h1Backend) step(uintptr) bool {
	if b.sent {
		return true
	}
	b.sent = true
	n, err := b.writeOut()
	b.wrote, b.sendErr = n, err
	return err != nil
}

// writeOut writes b.out.
func (b *h1Backend) writeOut() (int64, error) {
	if b.rio != nil {
		return b.rio.WriteBuffers(&b.out)
	}
	return b.out.WriteTo(b.conn)
}

// setReadDeadline sets the read deadline, unless the connection was cut: a
// cut that came first is not undone.
func (b *h1Backend) setReadDeadline(t time.Time) {
	_ = b.conn.SetReadDeadline(t)
	if b.cutOff.Load() {
		_ = b.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// stale reports whether err shows the connection had been closed by the
// backend before this request: it was reused, and the backend closed it
// without answering a byte.
func (b *h1Backend) stale(err error) bool {
	return b.reused && !b.got && isConnGone(err)
}

// usable reports whether an idle connection can carry a request: recently
// used, or checked to be still open with nothing unread.
func (b *h1Backend) usable(replayable bool) bool {
	if b.br.Buffered() > 0 {
		return false
	}
	return replayable && time.Since(b.lastUsed) < h1CheckIdle || stillOpen(rawConn(b.conn))
}

// put returns the connection to its pool for another request.
func (b *h1Backend) put() {
	if b.br.Buffered() > 0 || b.pool.closed.Load() {
		b.close() // bytes nobody asked for: the connection is out of step
		return
	}
	b.reused, b.lastUsed = true, time.Now()
	select {
	case b.pool.idle <- b:
		if b.pool.closed.Load() {
			b.pool.close()
		}
		b.pool.arm()
	default:
		b.close()
	}
}

// cut makes the connection's pending and future reads and writes fail at
// once; the owner still closes it.
func (b *h1Backend) cut() {
	b.cutOff.Store(true)
	_ = b.conn.SetDeadline(aLongTimeAgo)
}

// close closes the connection and frees its slot; once only, by its owner.
func (b *h1Backend) close() {
	if b.closed {
		return
	}
	b.closed = true
	b.conn.Close()
	<-b.pool.slots
}

// rawConn is the TCP connection under c: a peek there sees the backend
// close a TLS connection as it sees it close a plain one.
func rawConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}
