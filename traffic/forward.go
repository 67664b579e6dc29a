package traffic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// maxAttempts bounds how often one request is sent; HoldTimeout bounds how
// long it may wait in between.
const maxAttempts = 4

// forwarder is the proxy seen as ReverseProxy's transport: it picks the
// backend per attempt and retries, while ReverseProxy handles headers,
// trailers, upgrades and copying. A response is only returned once a backend
// has answered, so nothing reaches the client before retrying is over.
type forwarder Proxy

var (
	_ http.RoundTripper   = (*forwarder)(nil)
	_ httputil.BufferPool = (*bufferPool)(nil)
)

// proxyError is an answer the proxy gives itself: status and reason.
type proxyError struct {
	status  int
	backend *target // the last backend tried; nil if none was
	reason  string
	err     error
}

func (e *proxyError) Error() string { return e.reason }
func (e *proxyError) Unwrap() error { return e.err }

func (f *forwarder) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Proxy)(f)
	body, err := takeBody(req, p.cfg.MaxRetryBody)
	if err != nil {
		return nil, &proxyError{status: http.StatusBadRequest, reason: err.Error(), err: err}
	}
	var resp *http.Response
	err = p.dispatch(attempts{
		ctx:        req.Context(),
		method:     req.Method,
		path:       req.URL.Path,
		replayable: body.buffered && idempotent(req.Method, req.Header),
		untouched:  body.untouched,
	}, func(t *target, link bool) (err error) {
		resp, err = p.send(req, t, &body, link)
		return err
	})
	return resp, err
}

// attempts describes a request to dispatch: what decides whether it may be
// sent again after a failed attempt.
type attempts struct {
	ctx          context.Context // the client's: dispatch gives up when it ends
	method, path string          // for reasons and logs
	// target is the path's bytes, when path is empty: the fast path's
	// request target, made a string only if a reason or log needs it.
	target     []byte
	replayable bool        // buffered and idempotent: may be sent again after any failure
	untouched  func() bool // no byte of the body has been consumed by an attempt
	// watch, if set, is called when the request is about to be held: it
	// returns a context that also ends if the client leaves meanwhile, and
	// a function to call when the hold is over. Without it, ctx must end
	// when the client leaves (net/http's request context does).
	watch func(context.Context) (context.Context, func())
	// left, if set, reports that the client has gone while an attempt was
	// at its backend, which cut it: nobody to answer, nor to retry for.
	left func() bool
}

// errClientLeft: the client closed its connection while its request was at
// the backend.
var errClientLeft = fmt.Errorf("client closed the connection: %w", context.Canceled)

// where is the request's path or target, for reasons and logs.
func (a *attempts) where() string {
	if a.path == "" {
		return string(a.target)
	}
	return a.path
}

// dispatch sends a request, by calls to try, until a backend answers: it
// picks the backend of each attempt (holding the request while none is
// usable), retries where that is safe, and marks a backend that failed an
// attempt suspect. try gets the backend and whether to link the attempt to
// the backend's abandonment (see send). A nil error means try succeeded;
// otherwise the error is a *proxyError to answer with, or the context's.
func (p *Proxy) dispatch(a attempts, try func(t *target, link bool) error) error {
	deadline := time.Now().Add(p.cfg.HoldTimeout)
	for attempt := 1; ; attempt++ {
		t, late, err := p.acquire(a.ctx, deadline, a.watch)
		if err != nil {
			return err
		}
		// Linking an attempt to its backend's abandonment costs a context
		// per request; only a switch abandons, so link only when one can
		// happen (a standby or fallback is registered).
		r := p.route.Load()
		link := a.replayable && (r.standby != nil || len(r.fallback) > 0 || r.switching)
		err = try(t, link)
		if err == nil {
			return nil
		}
		if a.ctx.Err() != nil {
			return a.ctx.Err() // the client left; nobody to answer
		}
		if a.left != nil && a.left() {
			return errClientLeft
		}
		abandoned := errors.Is(err, errAbandoned)
		if !abandoned && !backendFault(err) {
			return p.failure(http.StatusBadGateway, t, err, "%s: %v", t.backend.Name, err)
		}
		if !abandoned {
			p.observe(t, true)
			p.markSuspect(t, err)
		}
		switch {
		case !abandoned && !a.replayable && !(beforeWrite(err) && a.untouched()):
			return p.failure(http.StatusBadGateway, t, err,
				"%s: %v (not retried: %s %s may have been applied and is not idempotent)", t.backend.Name, err, a.method, a.where())
		case late:
			return p.failure(http.StatusBadGateway, t, err,
				"%s: %v (after holding %s for recovery or a switch)", t.backend.Name, err, p.cfg.HoldTimeout)
		case attempt >= maxAttempts:
			return p.failure(http.StatusBadGateway, t, err,
				"%s: %v (gave up after %d attempts)", t.backend.Name, err, attempt)
		}
		p.stats.retries.Add(1)
		p.metrics.retries.Inc()
		p.log.Debug("retrying request", "method", a.method, "path", a.where(), "backend", t.backend.Name, "attempt", attempt, "err", err)
	}
}

func (p *Proxy) failure(status int, t *target, err error, format string, args ...any) error {
	return &proxyError{status: status, backend: t, reason: fmt.Sprintf(format, args...), err: err}
}

// acquire returns the target to send an attempt to, counted in flight.
// While the route is not open the request is held until it opens, the client
// leaves, or deadline passes; then it goes to a serving member anyway (late),
// except during a switch, when the old set must not receive anything more.
// watch, if not nil, is called as the hold begins (see attempts.watch).
func (p *Proxy) acquire(ctx context.Context, deadline time.Time, watch func(context.Context) (context.Context, func())) (t *target, late bool, err error) {
	for r := p.route.Load(); r.open; r = p.route.Load() {
		if t := pick(r.usable); p.enter(r, t) {
			return t, false, nil
		}
	}
	began := time.Now()
	p.stats.held.Add(1)
	p.stats.holding.Add(1)
	p.metrics.heldTotal.Inc()
	p.metrics.held.Inc()
	if watch != nil {
		var stop func()
		ctx, stop = watch(ctx)
		defer stop()
	}
	defer func() {
		p.stats.holding.Add(-1)
		p.metrics.held.Dec()
		p.metrics.holdSeconds.Observe(time.Since(began).Seconds())
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		r := p.route.Load()
		switch {
		case r.stopping:
			return nil, false, &proxyError{status: http.StatusServiceUnavailable, reason: "proxy is stopping"}
		case late && r.switching:
			return nil, false, &proxyError{status: http.StatusServiceUnavailable,
				reason: fmt.Sprintf("switch from %s still in progress after holding %s", r.primary().backend.Name, p.cfg.HoldTimeout)}
		case r.open:
			if t := pick(r.usable); p.enter(r, t) {
				return t, late, nil
			}
		case late:
			if t := pick(r.fallbackServing()); p.enter(r, t) {
				return t, late, nil
			}
		}
		if late {
			continue // the route changed under enter; look again
		}
		select {
		case <-r.changed:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-timer.C:
			late = true
		}
	}
}

// fallbackServing is where a request held past HoldTimeout goes: a serving
// member, else any joined one (never empty: the first member is joined).
func (r *route) fallbackServing() []*target {
	switch {
	case len(r.serving) > 0:
		return r.serving
	case len(r.joined) > 0:
		return r.joined
	}
	return r.members[:1]
}

// enter counts an attempt in flight on t, a member of r, unless r was
// replaced in the meantime. Counting first and checking after pairs with
// Switch and RemoveBackend, which publish first and read the count after:
// one of them sees the other.
func (p *Proxy) enter(r *route, t *target) bool {
	t.inflight.Add(1)
	if p.route.Load() == r {
		return true
	}
	t.release()
	return false
}

// send makes one attempt on t. The attempt of a replayable request is linked
// to t's abandonment, so that a switch that gives up waiting for it can
// cancel it and have it sent again to the new active.
func (p *Proxy) send(req *http.Request, t *target, body *requestBody, link bool) (*http.Response, error) {
	ctx := req.Context()
	var cancel context.CancelFunc
	var unlink func() bool
	if link {
		ctx, cancel = context.WithCancel(ctx)
		unlink = context.AfterFunc(t.abandonCtx, cancel)
	}
	out := req.WithContext(ctx)
	u := *req.URL
	u.Scheme, u.Host = t.backend.URL.Scheme, t.backend.URL.Host
	if t.prefixed {
		u.Path, u.RawPath = joinPath(t.backend.URL, req.URL)
	}
	out.URL = &u
	body.attach(out)

	resp, err := p.transport.RoundTrip(out)
	if link && !unlink() {
		// Abandoned before the response could be handed on: nothing has
		// reached the client, so the request can go to the new active.
		if err == nil {
			resp.Body.Close()
			err = errAbandoned
		} else if req.Context().Err() == nil {
			err = fmt.Errorf("%w: %w", errAbandoned, err)
		}
	}
	if err != nil {
		if cancel != nil {
			cancel()
		}
		t.release()
		return nil, err
	}
	p.countAnswered(t, resp.StatusCode)
	resp.Body = wrapBody(resp, t, cancel)
	return resp, nil
}

// countAnswered counts an attempt t answered with status: a 5xx is a
// failure for outlier detection, anything else a success.
func (p *Proxy) countAnswered(t *target, status int) {
	if status >= 500 {
		t.fail5xx.Inc()
		p.observe(t, true)
	} else {
		t.ok.Inc()
		p.observe(t, false)
	}
	p.stats.served.Add(1)
}

// beforeWrite reports whether err happened before any byte of the request
// could reach the backend: the connection was never established.
func beforeWrite(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backendFault reports whether err says something about the backend or the
// network to it, rather than about the request (which no retry would fix).
func backendFault(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// idempotent reports whether sending a request twice has the effect of
// sending it once, by method or by an idempotency key the backend honours.
func idempotent(method string, h http.Header) bool {
	if idempotentMethod(method) {
		return true
	}
	if _, ok := h["Idempotency-Key"]; ok {
		return true
	}
	_, ok := h["X-Idempotency-Key"]
	return ok
}

func idempotentMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// requestBody is a request's body kept so that it can be sent again.
type requestBody struct {
	buffered bool // buf holds the whole body; empty when there is none
	buf      []byte
	stream   *countingReader // else the body, to be read by one attempt only
	length   int64           // ContentLength of stream, -1 if unknown
}

// takeBody buffers req's body when it has at most limit bytes. A larger one
// is streamed once; it can still be sent again if no attempt read from it.
func takeBody(req *http.Request, limit int64) (requestBody, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return requestBody{buffered: true}, nil
	}
	if req.ContentLength > limit {
		return requestBody{stream: &countingReader{r: req.Body}, length: req.ContentLength}, nil
	}
	if req.ContentLength >= 0 {
		buf := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			return requestBody{}, fmt.Errorf("read request body (%d bytes announced): %w", req.ContentLength, err)
		}
		return requestBody{buffered: true, buf: buf}, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return requestBody{}, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(buf)) <= limit {
		return requestBody{buffered: true, buf: buf}, nil
	}
	return requestBody{stream: &countingReader{r: io.MultiReader(bytes.NewReader(buf), req.Body)}, length: -1}, nil
}

// attach gives out a fresh reader over the body for one attempt.
func (b *requestBody) attach(out *http.Request) {
	switch {
	case b.stream != nil:
		out.Body, out.ContentLength = io.NopCloser(b.stream), b.length
	case len(b.buf) == 0:
		out.Body, out.ContentLength, out.TransferEncoding = nil, 0, nil
	default:
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b.buf)), int64(len(b.buf))
		out.TransferEncoding = nil
		// GetBody lets the transport resend on a fresh connection when a
		// pooled one turns out dead before anything was written.
		out.GetBody = b.reader
	}
}

func (b *requestBody) reader() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.buf)), nil
}

// untouched reports whether the body can be sent again from the start.
func (b *requestBody) untouched() bool {
	return b.stream == nil || b.stream.n.Load() == 0
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// trackedBody ends an attempt when ReverseProxy closes the response body:
// only then has the response been copied, so only then may a drain count the
// request as finished.
type trackedBody struct {
	io.ReadCloser
	t      *target
	cancel context.CancelFunc
	closed atomic.Bool
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closed.CompareAndSwap(false, true) {
		if b.cancel != nil {
			b.cancel()
		}
		b.t.release()
	}
	return err
}

// upgradedBody keeps a 101 response's body writable, as ReverseProxy needs
// it to be for protocol upgrades.
type upgradedBody struct {
	*trackedBody
	w io.Writer
}

func (b *upgradedBody) Write(p []byte) (int, error) { return b.w.Write(p) }

func wrapBody(resp *http.Response, t *target, cancel context.CancelFunc) io.ReadCloser {
	tb := &trackedBody{ReadCloser: resp.Body, t: t, cancel: cancel}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			return &upgradedBody{trackedBody: tb, w: rwc}
		}
	}
	return tb
}

// serveError answers a request the proxy could not get a backend answer
// for, with the reason in the body.
func (p *Proxy) serveError(w http.ResponseWriter, req *http.Request, err error) {
	if req.Context().Err() != nil {
		p.countCanceled(err)
		w.WriteHeader(http.StatusBadGateway) // nobody reads it
		return
	}
	status, msg := p.failedAnswer(err, req.Method, req.URL.Path)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// countCanceled counts a request whose client left before it was answered.
func (p *Proxy) countCanceled(err error) {
	p.stats.canceled.Add(1)
	var pe *proxyError
	if errors.As(err, &pe) && pe.backend != nil {
		pe.backend.canceled.Inc()
		return
	}
	p.metrics.requests.WithLabelValues(noBackend, outcomeCanceled).Inc()
}

// failedAnswer counts and logs a request that failed (err is dispatch's) and
// returns the status and body to answer it with: the body says why.
func (p *Proxy) failedAnswer(err error, method, path string) (status int, body string) {
	status, reason, t := http.StatusBadGateway, err.Error(), (*target)(nil)
	var pe *proxyError
	if errors.As(err, &pe) {
		status, reason, t = pe.status, pe.reason, pe.backend
	}
	p.stats.failed.Add(1)
	if t != nil {
		t.failed.Inc()
	} else {
		p.metrics.requests.WithLabelValues(noBackend, outcomeFailed).Inc()
	}
	p.log.Warn("request failed", "method", method, "path", path, "status", status, "reason", reason)
	return status, "phoenix traffic " + string(p.cfg.Component) + ": " + reason + "\n"
}

// rewrite prepares the outgoing request; the backend is chosen per attempt.
// X-Forwarded-For keeps the chain from proxies in front and appends the
// client, so a request crossing several components' proxies shows them all.
func rewrite(pr *httputil.ProxyRequest) {
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
	pr.Out.Host = "" // the Host header names the backend, as SetURL would
}

// newTransport is the transport shared by every proxied request.
func newTransport(dialTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               nil, // backends are addressed directly, never through $HTTP_PROXY
		DialContext:         d.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		// A bound on connections per backend: when requests held through a
		// failover are released together, they queue for a few hundred
		// connections instead of opening one each (a dial storm that can
		// take the new backend seconds to absorb).
		MaxConnsPerHost:       256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bodies pass through as they are; the client negotiates encoding.
		DisableCompression: true,
		// No ResponseHeaderTimeout: a backend may be slow on purpose; a hung
		// one is found by health checks and its requests are abandoned by
		// Switch after DrainTimeout.
	}
}

// newHealthTransport dials for every check, so that a check fails when a
// backend stops accepting connections even if an old one still answers.
func newHealthTransport(dialTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout}
	return &http.Transport{
		Proxy:              nil,
		DialContext:        d.DialContext,
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
}
