package traffic

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Timeouts of the HTTP data plane, the same for both of its paths.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// h1Server is the HTTP data plane. It serves plain HTTP/1.1 keep-alive
// traffic itself, a connection per goroutine, with a request's whole
// exchange on that goroutine: a head parsed in place, one write to the
// backend, the response copied through. That is what makes the proxy's
// throughput comparable to HAProxy's; net/http's server with
// httputil.ReverseProxy over http.Transport costs about twice as much CPU
// per request (a Request and Header maps per hop, and two goroutines per
// backend connection handing each request over channels).
//
// At the first request the fast path does not take (see parseRequestHead:
// HTTP/1.0, upgrades, Expect, chunked or large request bodies, anything
// unusual), the connection is handed, with the bytes already read, to a
// net/http server whose handler is the ReverseProxy, for the rest of its
// life. Both paths share the proxy's dispatch: the same routing, holding,
// retries, draining and accounting.
type h1Server struct {
	p       *Proxy
	std     *http.Server
	handoff *handoffListener
	ctx     context.Context // ended by close: cuts every exchange
	cancel  context.CancelFunc
	closing atomic.Bool

	mu    sync.Mutex
	conns map[*h1Conn]struct{}
	wg    sync.WaitGroup
	// acceptDone is closed when serve's accept loop has returned: only
	// then may the connections' WaitGroup be waited for.
	acceptDone chan struct{}
}

var _ server = (*h1Server)(nil)

func (p *Proxy) newHTTPServer() server {
	ctx, cancel := context.WithCancel(context.Background())
	return &h1Server{
		p: p,
		std: &http.Server{
			Handler:           p.rp,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          p.rp.ErrorLog,
		},
		handoff:    newHandoffListener(p.ln.Addr()),
		ctx:        ctx,
		cancel:     cancel,
		conns:      map[*h1Conn]struct{}{},
		acceptDone: make(chan struct{}),
	}
}

func (s *h1Server) serve(ln net.Listener) error {
	// std serves until shutdown or close closes the hand-off listener.
	go func() { _ = s.std.Serve(s.handoff) }()
	defer close(s.acceptDone)
	return acceptLoop(ln, &s.closing, s.p, func(c net.Conn) {
		hc := newH1Conn(s, c)
		s.mu.Lock()
		s.conns[hc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(hc.serve)
	})
}

// shutdown stops accepting, closes idle connections as they become idle,
// and waits for the rest, like net/http's Shutdown.
func (s *h1Server) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.p.ln.Close()
	stdDone := make(chan error, 1)
	go func() { stdDone <- s.std.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	select {
	case <-s.acceptDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		if s.closeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.wg.Wait()
	return <-stdDone
}

// closeIdle wakes the connections waiting for a request, so that they close,
// and returns how many connections are left.
func (s *h1Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			_ = c.conn.SetReadDeadline(aLongTimeAgo)
		}
	}
	return len(s.conns)
}

func (s *h1Server) close() error {
	s.closing.Store(true)
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.conn.Close()
		if bc := c.cur.Load(); bc != nil {
			bc.cut() // a backend still answering, or streaming, is not waited for
		}
	}
	s.mu.Unlock()
	err := s.std.Close()
	<-s.acceptDone
	s.wg.Wait()
	return err
}

var aLongTimeAgo = time.Unix(1, 0)

// h1Conn is a client connection on the fast path.
type h1Conn struct {
	s    *h1Server
	p    *Proxy
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	idle atomic.Bool // waiting for a request: shutdown may close it
	// idleRenew is when the wait for the next request next moves the read
	// deadline to idleTimeout ahead: once an eighth of it has passed, so an
	// idle client is closed after seven eighths of idleTimeout at the
	// least. Zero when the deadline was set to something else since, as
	// flushWait's bound sets it at every request on a plain TCP connection
	// (a timer update each, 0.13 µs, against the 1.5 µs read it saves).
	idleRenew time.Time
	clientIP  string

	head []byte // the request head, copied out of br
	req  h1Request
	body []byte // the request body
	// replayable: idempotent, so it may be sent again after any failure
	// (the body is always buffered on this path)
	replayable bool
	// gone: the client closed its connection while its request was held
	// or at the backend (set by the watching goroutines)
	gone atomic.Bool
	out  []byte // the head sent to the backend

	// slow watches the client of a request at its backend for longer than
	// h1WatchAfter (see watchSlow): a timer made once per connection,
	// stopping tells its function to return, and watched is where the
	// function says it has.
	slow     *time.Timer
	watching bool // armed and not yet stopped (the connection's goroutine's)
	stopping atomic.Bool
	watched  chan struct{}

	// watch, try and left are watchClient, attempt and gone.Load, as
	// values made once.
	watch func(context.Context) (context.Context, func())
	try   func(*target, bool) error
	left  func() bool

	// raw, for a plain TCP client, writes the end of a response and waits
	// for the next request without a read that finds nothing (see
	// flushWait); flushStep is its callback, made once, and flushed and
	// flushErr its state.
	raw       syscall.RawConn
	flushStep func(uintptr) bool
	flushed   bool
	flushErr  error

	// cur is the backend connection of the exchange in progress, for close
	// (and a switch's abandonment) to cut.
	cur atomic.Pointer[h1Backend]

	// The answered attempt: its backend, connection and response.
	t    *target
	bc   *h1Backend
	resp h1Response
}

func newH1Conn(s *h1Server, c net.Conn) *h1Conn {
	ip := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	rw := connIO(c)
	hc := &h1Conn{
		s: s, p: s.p, conn: c, clientIP: ip,
		br: bufio.NewReaderSize(rw, h1ReadBuffer),
		bw: bufio.NewWriterSize(newProgressWriter(c, rw, s.p.cfg.ClientTimeout), h1WriteBuffer),
	}
	hc.watch, hc.try, hc.left = hc.watchClient, hc.attempt, hc.gone.Load
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			hc.raw, hc.flushStep = raw, hc.flushOnce
		}
	}
	hc.watched = make(chan struct{}, 1)
	hc.slow = time.AfterFunc(time.Hour, hc.watchSlowClient)
	hc.slow.Stop()
	return hc
}

// bodyBuffered is the fast path's attempts.untouched: its request bodies
// are read whole before the first attempt.
func bodyBuffered() bool { return true }

// progressWriter writes to a client connection with a deadline renewed as
// the client takes bytes: it may take its response as slowly as it likes,
// but not stop taking it for Config.ClientTimeout (HAProxy's timeout client
// on the sending side). The deadline is moved only once an eighth of it has
// passed, not at every write (a timer update each), so a stalled client is
// cut after seven eighths of the timeout at the least; a write that times
// out having sent some bytes renews it and goes on. Both paths write
// through one.
type progressWriter struct {
	conn    net.Conn  // whose deadline is set
	w       io.Writer // conn, or what writes to it
	timeout time.Duration
	// renew is when the deadline is next moved, in Unix nanoseconds; 0 when
	// someone else (net/http) has set or cleared the deadline since.
	renew atomic.Int64
}

func newProgressWriter(c net.Conn, w io.Writer, timeout time.Duration) *progressWriter {
	return &progressWriter{conn: c, w: w, timeout: timeout}
}

func (w *progressWriter) Write(b []byte) (int, error) {
	written := 0
	for {
		if now := time.Now(); now.UnixNano() >= w.renew.Load() {
			_ = w.conn.SetWriteDeadline(now.Add(w.timeout))
			w.renew.Store(now.Add(w.timeout / 8).UnixNano())
		}
		n, err := w.w.Write(b[written:])
		written += n
		if err != nil && n > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			w.renew.Store(0) // the client took bytes: it has another timeout
			continue
		}
		return written, err
	}
}

// deadlineMoved tells the writer that the connection's write deadline was
// set by someone else: its next write sets its own.
func (w *progressWriter) deadlineMoved() { w.renew.Store(0) }

func (c *h1Conn) forget() {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
}

// serve runs the connection's requests one after the other until the
// client or the proxy closes it, or a request is for net/http.
func (c *h1Conn) serve() {
	handed := false
	defer func() {
		c.forget()
		if !handed {
			_ = c.bw.Flush() // the end of the last response (see relay)
			c.conn.Close()
		}
		if v := recover(); v != nil {
			// As net/http does: a bug met on one connection costs that
			// connection, not the proxy.
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.p.log.Error("panic serving a connection", "client", c.conn.RemoteAddr().String(), "panic", fmt.Sprint(v), "stack", string(buf))
		}
	}()
	for {
		c.idle.Store(true)
		if c.s.closing.Load() {
			return
		}
		if c.bw.Buffered() > 0 && !c.flushWait() {
			return
		}
		if now := time.Now(); !now.Before(c.idleRenew) {
			_ = c.conn.SetReadDeadline(now.Add(idleTimeout))
			c.idleRenew = now.Add(idleTimeout / 8)
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		c.idle.Store(false)
		err := c.readRequest()
		if errors.Is(err, errDecline) {
			handed = c.handOff()
			return
		}
		if err != nil {
			return
		}
		if !c.exchange() || c.req.close || c.s.closing.Load() {
			return
		}
	}
}

// flushWait writes the end of the last response, which relay leaves in the
// writer, and on a plain TCP connection returns once the next request can be
// read, or after Proxy.waitFirst. It reports whether the write succeeded.
//
// As for a backend's answer (see h1Backend.send): Go's poller reads first,
// and a client has never sent its next request when its answer has just been
// written, so the answer is written from inside a RawConn.Read callback,
// after the poller's read readiness is reset, and the callback asks to wait.
// A request sent in reply to the answer cannot come before the reset. A
// request pipelined behind the last one can, as can a client's end of file,
// if nothing read them yet: the wait is bounded for those (h1WaitFirst),
// after which the usual read finds them.
func (c *h1Conn) flushWait() bool {
	if c.raw == nil || c.br.Buffered() > 0 {
		return c.bw.Flush() == nil
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(c.p.waitFirst))
	c.idleRenew = time.Time{} // the next wait sets idleTimeout again
	c.flushed, c.flushErr = false, nil
	// An error here (the bound reached, closeIdle's deadline, the
	// connection closed) is met again, or not, by the read that follows.
	_ = c.raw.Read(c.flushStep)
	if !c.flushed {
		// The bound (or closeIdle's deadline) had passed when RawRead
		// looked at the deadline, which it does before calling back:
		// nothing was written.
		return c.bw.Flush() == nil
	}
	return c.flushErr == nil
}

// flushOnce is flushWait's callback: the first call writes and asks to wait
// for the next request, unless the write failed; the next, made once the
// connection is readable, ends the wait.
func (c *h1Conn) flushOnce(uintptr) bool {
	if c.flushed {
		return true
	}
	c.flushed = true
	c.flushErr = c.bw.Flush()
	return c.flushErr != nil
}

// readRequest reads a request head and its body, if the fast path takes it.
func (c *h1Conn) readRequest() error {
	timed := false
	head, err := peekHead(c.br, func() {
		if !timed {
			_ = c.conn.SetReadDeadline(time.Now().Add(readHeaderTimeout))
			c.idleRenew = time.Time{}
			timed = true
		}
	})
	switch {
	case errors.Is(err, errHeadTooLarge):
		return declinef("head larger than %d bytes", c.br.Size())
	case errors.Is(err, errBareLF):
		return declinef("bare LF") // net/http reads it as HTTP/1.1 allows
	case errors.Is(err, io.EOF) && c.br.Buffered() > 0:
		return declinef("incomplete head") // net/http answers it
	case err != nil:
		return err
	}
	// Parse a copy: the parsed slices point into it, and reading the body
	// may reuse the reader's buffer.
	c.head = append(c.head[:0], head...)
	if err := parseRequestHead(c.head, c.p.cfg.MaxRetryBody, &c.req); err != nil {
		return err
	}
	_, _ = c.br.Discard(len(head))
	n := int(c.req.contentLength)
	if cap(c.body) < n {
		c.body = make([]byte, n)
	}
	c.body = c.body[:n]
	_, err = io.ReadFull(c.br, c.body)
	return err
}

// errHeadTooLarge: a head does not fit in the reader's buffer.
var errHeadTooLarge = errors.New("head larger than the buffer")

// errBareLF: a head has a line ended by LF alone, which the fast path
// leaves to net/http.
var errBareLF = errors.New("line ended by a bare LF")

// peekHead waits until br holds a whole head, through its blank line, and
// returns it unconsumed. wait is called before each read it has to make. A
// line ended by a bare LF is errBareLF.
func peekHead(br *bufio.Reader, wait func()) ([]byte, error) {
	for scanned := 0; ; {
		buf, _ := br.Peek(br.Buffered())
		for i := scanned; ; {
			j := bytes.IndexByte(buf[i:], '\n')
			if j < 0 {
				break
			}
			k := i + j
			if k == 0 || buf[k-1] != '\r' {
				return nil, errBareLF
			}
			if k >= 3 && buf[k-2] == '\n' && buf[k-3] == '\r' {
				return buf[:k+1], nil
			}
			i = k + 1
		}
		scanned = len(buf)
		if len(buf) == br.Size() {
			return nil, errHeadTooLarge
		}
		wait()
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// handOff gives the connection, with what was read of it, to net/http.
func (c *h1Conn) handOff() bool {
	_ = c.conn.SetReadDeadline(time.Time{})
	c.p.stats.handoffs.Add(1)
	return c.s.handoff.push(&handedConn{Conn: c.conn, r: c.br, w: newProgressWriter(c.conn, c.conn, c.p.cfg.ClientTimeout)})
}

// exchange forwards the request read and answers the client. It reports
// whether the connection may serve another request.
func (c *h1Conn) exchange() bool {
	p := c.p
	method := methodName(c.req.method)
	c.replayable = idempotentMethod(method) || c.req.idempotencyKey
	err := p.dispatch(attempts{
		ctx:        c.s.ctx,
		method:     method,
		target:     c.req.target,
		replayable: c.replayable,
		untouched:  bodyBuffered,
		watch:      c.watch,
		left:       c.left,
	}, c.try)
	if err != nil {
		if c.s.ctx.Err() != nil || c.gone.Load() {
			p.countCanceled(err)
			return false
		}
		return c.answerError(err, method)
	}
	ok := c.relay()
	c.cur.Store(nil)
	c.t.release()
	c.t, c.bc = nil, nil
	if cap(c.body) > 64<<10 {
		c.body = nil // a large body's buffer is not kept for the connection's life
	}
	return ok
}

// attempt sends the request to t and reads the response head: on success
// c.t, c.bc and c.resp hold the answer, and t stays counted in flight until
// relay has copied it.
func (c *h1Conn) attempt(t *target, link bool) error {
	p := c.p
	if err := c.buildHead(t); err != nil {
		t.release()
		return &proxyError{status: http.StatusBadRequest, backend: t, reason: err.Error(), err: err}
	}
	// A switch that gives up waiting for t abandons the attempt, and close
	// ends it, by cutting its connection, whichever it is by then; an
	// attempt still waiting for a connection (the pool at its bound, a dial
	// to a backend cut off) stops waiting.
	ctx := c.s.ctx
	var unlink func() bool
	if link {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		unlink = context.AfterFunc(t.abandonCtx, func() {
			cancel()
			if bc := c.cur.Load(); bc != nil {
				bc.cut()
			}
		})
	}
	send := func(bc *h1Backend) error {
		c.cur.Store(bc)
		if link && t.abandonCtx.Err() != nil || c.s.ctx.Err() != nil || c.gone.Load() {
			bc.cut()
		}
		c.watchSlow()
		defer c.stopSlowWatch() // if roundTrip panics
		err := bc.roundTrip(c.out, c.body, c.req.method, &c.resp, c.p.waitFirst)
		c.stopSlowWatch()
		if err == nil && c.gone.Load() {
			// Answered as the client left: the watch may have cut the
			// connection after its head was read, and it must not go back
			// to the pool.
			return errClientLeft
		}
		return err
	}
	wait := c.p.cfg.HoldTimeout
	bc, err := t.pool.get(ctx, c.replayable, wait)
	if err == nil {
		err = send(bc)
		if err != nil && bc.stale(err) && (bc.wrote == 0 || c.replayable) {
			// The backend had closed the idle connection it was sent on:
			// it never reached the backend. Send it once on a new
			// connection, as http.Transport does.
			bc.close()
			if bc, err = t.pool.dial(ctx, wait); err == nil {
				err = send(bc)
			}
		}
	}
	if link && !unlink() {
		// Abandoned before the response could be handed on: nothing has
		// reached the client, so the request can go to the new active.
		if err == nil {
			err = errAbandoned
		} else {
			err = fmt.Errorf("%w: %w", errAbandoned, err)
		}
	}
	if err != nil {
		c.cur.Store(nil)
		if bc != nil {
			bc.close()
		}
		t.release()
		return err
	}
	p.countAnswered(t, c.resp.status)
	c.t, c.bc = t, bc
	return nil
}

// watchClient returns a context that ends when the client closes its
// connection, and a function that stops watching. While a request is held
// nothing else reads the connection, so a read can tell: end of file or an
// error means the client left; a byte (a pipelined request) means it did not.
func (c *h1Conn) watchClient(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	_ = c.conn.SetReadDeadline(time.Time{}) // the hold, not a read timeout, bounds the watch
	go func() {
		defer close(done)
		if _, err := c.br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.gone.Store(true)
			cancel()
		}
	}()
	return ctx, func() {
		_ = c.conn.SetReadDeadline(aLongTimeAgo)
		<-done
		c.idleRenew = time.Time{} // the next wait sets idleTimeout again
		cancel()
	}
}

// h1WatchAfter is how long a request may be at its backend before its
// client is watched, so that a client that leaves meanwhile cuts the
// backend connection (the backend sees it close, and the pool gets its slot
// back) instead of holding it until the answer, as ReverseProxy cancels its
// request when net/http sees the client go. Watching costs a read on the
// client connection that a pipelined request or the answer's end stops;
// waiting a second first keeps it off every quick request.
const h1WatchAfter = time.Second

// watchSlow starts the timer that watches the client of the request being
// sent, and stopSlowWatch stops it (once; later calls do nothing): both on
// the connection's goroutine, around a request's time at its backend.
func (c *h1Conn) watchSlow() {
	c.stopping.Store(false)
	c.watching = true
	c.slow.Reset(h1WatchAfter)
}

func (c *h1Conn) stopSlowWatch() {
	if !c.watching {
		return
	}
	c.watching = false
	if c.slow.Stop() {
		return // it never fired
	}
	// Fired: its function has started. Tell it to stop, end a read it may
	// be in, and wait for it to be done with the connection.
	c.stopping.Store(true)
	_ = c.conn.SetReadDeadline(aLongTimeAgo)
	<-c.watched
	c.idleRenew = time.Time{} // the next wait sets idleTimeout again
}

// watchSlowClient is the slow request timer's function: it reads from the
// client, which nothing else does while the request is at its backend,
// until the client closes (gone: the backend connection is cut) or sends
// a byte, or stopSlowWatch ends the read.
func (c *h1Conn) watchSlowClient() {
	defer func() { c.watched <- struct{}{} }()
	// The read deadline is cleared before stopping is looked at, and
	// stopSlowWatch sets stopping before the deadline: either this sees
	// stopping, or the deadline it sets comes after the clearing and ends
	// the read.
	_ = c.conn.SetReadDeadline(time.Time{})
	if c.stopping.Load() {
		return
	}
	if _, err := c.br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.gone.Store(true)
		if bc := c.cur.Load(); bc != nil {
			bc.cut()
		}
	}
}

// buildHead writes the request head for t into c.out: the request line,
// Host naming the backend, the client's headers but the hop-by-hop ones, and
// X-Forwarded-For, -Host and -Proto as ReverseProxy's SetXForwarded sets
// them.
func (c *h1Conn) buildHead(t *target) error {
	r := &c.req
	target := r.target
	if t.prefixed {
		u, err := url.ParseRequestURI(string(target))
		if err != nil {
			return err
		}
		out := url.URL{RawQuery: u.RawQuery}
		out.Path, out.RawPath = joinPath(t.backend.URL, u)
		target = []byte(out.RequestURI())
	}
	b := append(c.out[:0], r.method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.addr...)
	b = append(b, "\r\n"...)
	for _, h := range r.headers {
		b = append(b, h.name...)
		b = append(b, ": "...)
		b = append(b, h.value...)
		b = append(b, "\r\n"...)
	}
	if r.teTrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	b = append(b, "X-Forwarded-For: "...)
	if r.xffs > 0 {
		b = append(b, r.xff...)
		b = append(b, ", "...)
	}
	b = append(b, c.clientIP...)
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, r.host...)
	b = append(b, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	c.out = b
	return nil
}

// relay writes the answered response to the client and copies its body. It
// reports whether the client connection may serve another request.
func (c *h1Conn) relay() bool {
	r, bc := &c.resp, c.bc
	closeAfter := c.req.close || r.close && r.length < 0 && !r.chunked || c.s.closing.Load()
	w := c.bw
	writeStatusLine(w, r.status, r.reason)
	for _, h := range r.headers {
		w.Write(h.name)
		w.WriteString(": ")
		w.Write(h.value)
		w.WriteString("\r\n")
	}
	if closeAfter {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	var err error
	switch {
	case r.chunked:
		err = copyChunked(w, bc.br)
	case r.length >= 0:
		err = copyN(w, bc.br, r.length)
	default:
		err = copyN(w, bc.br, -1)
	}
	if err == nil && (closeAfter || c.raw == nil) {
		err = w.Flush()
	}
	// Otherwise the end of the response stays in w until the next wait for
	// a request (flushWait), or until the connection ends.
	if err == nil && !r.close {
		bc.put()
	} else {
		bc.close()
	}
	return err == nil && !closeAfter
}

// answerError answers a request dispatch could not get a backend answer
// for. It reports whether the connection may serve another request.
func (c *h1Conn) answerError(err error, method string) bool {
	status, msg := c.p.failedAnswer(err, method, string(c.req.target))
	w := c.bw
	writeStatusLine(w, status, []byte(http.StatusText(status)))
	w.WriteString("Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n")
	if status == http.StatusServiceUnavailable {
		w.WriteString("Retry-After: 1\r\n")
	}
	closeAfter := c.req.close || c.s.closing.Load()
	if closeAfter {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("Content-Length: ")
	w.WriteString(strconv.Itoa(len(msg)))
	w.WriteString("\r\n\r\n")
	w.WriteString(msg)
	return w.Flush() == nil && !closeAfter
}

// writeStatusLine writes an HTTP/1.1 status line; the client always gets
// HTTP/1.1, whatever the backend spoke.
func writeStatusLine(w *bufio.Writer, status int, reason []byte) {
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(status), 10))
	w.WriteByte(' ')
	w.Write(reason)
	w.WriteString("\r\n")
}

// copyN copies n bytes (until EOF if n < 0) from a backend to the client,
// flushing what it has before it waits for the backend, so that a streamed
// response streams.
func copyN(w *bufio.Writer, r *bufio.Reader, n int64) error {
	for n != 0 {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			if _, err := r.Peek(1); err != nil {
				if n < 0 && errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
		k := r.Buffered()
		if n > 0 {
			k = int(min(int64(k), n))
			n -= int64(k)
		}
		b, _ := r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = r.Discard(k)
	}
	return nil
}

// copyChunked copies a chunked body, framing included, to its last chunk
// and trailers, checking the framing as it goes.
func copyChunked(w *bufio.Writer, r *bufio.Reader) error {
	line := func() ([]byte, error) {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return nil, err
			}
		}
		l, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(l) > h1MaxChunkLine {
			return nil, errors.New("chunk line too long")
		}
		return l, err
	}
	for {
		l, err := line()
		if err != nil {
			return err
		}
		size, err := parseChunkSize(l)
		if err != nil {
			return err
		}
		if _, err := w.Write(l); err != nil {
			return err
		}
		if size == 0 {
			break
		}
		if err := copyN(w, r, size); err != nil {
			return err
		}
		if l, err = line(); err != nil {
			return err
		}
		if string(l) != "\r\n" {
			return errors.New("chunk not followed by CRLF")
		}
		if _, err := w.Write(l); err != nil {
			return err
		}
	}
	for { // trailers, then the final CRLF
		l, err := line()
		if err != nil {
			return err
		}
		t, _, ok := cutLine(l)
		if !ok {
			return errors.New("malformed trailer")
		}
		if len(t) > 0 {
			if _, _, err := parseHeaderLine(t); err != nil {
				return fmt.Errorf("malformed trailer %q", clip(t))
			}
		}
		if _, err := w.Write(l); err != nil {
			return err
		}
		if string(l) == "\r\n" {
			return nil
		}
	}
}

// methodName returns m as a string, without allocating for common methods.
func methodName(m []byte) string {
	for _, s := range [...]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodHead,
		http.MethodDelete, http.MethodPatch, http.MethodOptions, http.MethodTrace} {
		if string(m) == s {
			return s
		}
	}
	return string(m)
}

// acceptLoop accepts connections on ln and hands each to handle, until ln
// fails: then it returns net.ErrClosed if closing is set, else the error.
// Temporary failures (timeouts, out of file descriptors) are retried with
// backoff.
func acceptLoop(ln net.Listener, closing *atomic.Bool, p *Proxy, handle func(net.Conn)) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if closing.Load() {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.Warn("accept failed, retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		handle(c)
	}
}

// handedConn is a connection handed to net/http with what the fast path had
// read of it.
type handedConn struct {
	net.Conn
	r *bufio.Reader
	w *progressWriter
}

func (c *handedConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *handedConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// SetDeadline and SetWriteDeadline pass net/http's deadlines on (it clears
// the write deadline after each response, and at a hijack) and make the
// next write set ClientTimeout's again.
func (c *handedConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.w.deadlineMoved()
	return err
}

func (c *handedConn) SetWriteDeadline(t time.Time) error {
	err := c.Conn.SetWriteDeadline(t)
	c.w.deadlineMoved()
	return err
}

// handoffListener is the listener net/http serves handed-off connections from.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (q *handoffListener) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *handoffListener) Close() error {
	q.closed.Do(func() { close(q.done) })
	return nil
}

func (q *handoffListener) Addr() net.Addr { return q.addr }

// isConnGone reports whether err says the peer closed the connection.
func isConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
