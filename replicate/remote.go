package replicate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxResponse bounds the JSON a client reads from an agent.
const maxResponse = 64 << 20

// RemoteSink is a Sink on a target agent, over HTTP(S). Transfers are
// streamed as checked frames and resumable: after ErrTransient the round
// sends the file again and the agent continues from its partial copy.
// Idempotent requests (list, stat, sum, mkdir, remove, flush, manifest) are
// retried here on transient failures.
type RemoteSink struct {
	base   *url.URL
	token  string
	client *http.Client
}

var (
	_ Sink        = (*RemoteSink)(nil)
	_ Flusher     = (*RemoteSink)(nil)
	_ Patcher     = (*RemoteSink)(nil)
	_ Stater      = (*RemoteSink)(nil)
	_ BlockSummer = (*RemoteSink)(nil)
)

// NewRemoteSink returns a sink on the target agent at baseURL. client may
// be nil.
func NewRemoteSink(baseURL, token string, client *http.Client) (*RemoteSink, error) {
	u, err := parseAgentURL(baseURL)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("remote sink: empty token")
	}
	if client == nil {
		client = &http.Client{}
	}
	return &RemoteSink{base: u, token: token, client: client}, nil
}

func (s *RemoteSink) url(op string, q url.Values) string {
	u := s.base.JoinPath("v1", op)
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends one request and returns the response of a 2xx; otherwise the
// error carries the agent's reason and the matching sentinel.
func (s *RemoteSink) do(ctx context.Context, method, u string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("agent %s: %w: %w", s.base.Host, err, ErrTransient)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, agentError(s.base.Host, resp)
}

// agentError turns a failed response into an error with its sentinel.
func agentError(host string, resp *http.Response) error {
	var ae apiError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
		ae.Error = fmt.Sprintf("%s: %.200s", resp.Status, bytes.TrimSpace(b))
	}
	var sentinel error
	switch ae.Kind {
	case "full":
		sentinel = ErrDestinationFull
	case "changed":
		sentinel = ErrChanged
	case "notinplace":
		sentinel = errNotInPlace
	case "verify":
		sentinel = ErrVerify
	case "unsafe":
		sentinel = ErrUnsafePath
	case "transient":
		sentinel = ErrTransient
	case "missing":
		sentinel = fs.ErrNotExist
	}
	if sentinel == nil && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout) {
		sentinel = ErrTransient
	}
	if sentinel == nil {
		return fmt.Errorf("agent %s: %s", host, ae.Error)
	}
	return fmt.Errorf("agent %s: %s: %w", host, ae.Error, sentinel)
}

// retry runs an idempotent request until it succeeds, fails otherwise
// than transiently, or runs out of attempts.
func retry(ctx context.Context, fn func() error) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !errors.Is(err, ErrTransient) || attempt == maxAttempts {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// getJSON retries an idempotent request and decodes its JSON answer.
func (s *RemoteSink) getJSON(ctx context.Context, method, op string, q url.Values, v any) error {
	return retry(ctx, func() error {
		resp, err := s.do(ctx, method, s.url(op, q), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if v == nil {
			return nil
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(v); err != nil {
			return fmt.Errorf("agent %s: %s answer: %w: %w", s.base.Host, op, err, ErrTransient)
		}
		return nil
	})
}

// List implements Sink.
func (s *RemoteSink) List(ctx context.Context) ([]Entry, error) {
	var ws []wireEntry
	if err := s.getJSON(ctx, http.MethodGet, "list", nil, &ws); err != nil {
		return nil, fmt.Errorf("list destination: %w", err)
	}
	out := make([]Entry, len(ws))
	for i, w := range ws {
		e, err := w.entry()
		if err != nil {
			return nil, fmt.Errorf("list destination: %w", err)
		}
		out[i] = e
	}
	return out, nil
}

// Stat implements Stater.
func (s *RemoteSink) Stat(ctx context.Context, p string) (Entry, bool, error) {
	var ans struct {
		Exists bool      `json:"exists"`
		Entry  wireEntry `json:"entry"`
	}
	if err := s.getJSON(ctx, http.MethodGet, "stat", url.Values{"path": {p}}, &ans); err != nil {
		return Entry{}, false, fmt.Errorf("stat %s: %w", p, err)
	}
	if !ans.Exists {
		return Entry{}, false, nil
	}
	e, err := ans.Entry.entry()
	return e, err == nil, err
}

// Sum implements Sink.
func (s *RemoteSink) Sum(ctx context.Context, p string, off, n int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	var ans struct {
		Sum []byte `json:"sum"`
	}
	q := url.Values{"path": {p}, "off": {strconv.FormatInt(off, 10)}, "n": {strconv.FormatInt(n, 10)}}
	if err := s.getJSON(ctx, http.MethodGet, "sum", q, &ans); err != nil {
		return sum, fmt.Errorf("sum %s: %w", p, err)
	}
	if len(ans.Sum) != sha256.Size {
		return sum, fmt.Errorf("sum %s: agent answered %d bytes", p, len(ans.Sum))
	}
	copy(sum[:], ans.Sum)
	return sum, nil
}

// Mkdir implements Sink.
func (s *RemoteSink) Mkdir(ctx context.Context, p string, perm fs.FileMode) error {
	q := url.Values{"path": {p}, "perm": {strconv.FormatUint(uint64(perm.Perm()), 8)}}
	if err := s.getJSON(ctx, http.MethodPost, "mkdir", q, nil); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

// Remove implements Sink.
func (s *RemoteSink) Remove(ctx context.Context, p string) error {
	if err := s.getJSON(ctx, http.MethodPost, "remove", url.Values{"path": {p}}, nil); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// Flush implements Flusher.
func (s *RemoteSink) Flush(ctx context.Context) error {
	if err := s.getJSON(ctx, http.MethodPost, "flush", nil, nil); err != nil {
		return fmt.Errorf("flush destination: %w", err)
	}
	return nil
}

// Manifest implements Patcher.
func (s *RemoteSink) Manifest(ctx context.Context, p string, params ChunkParams) (Manifest, error) {
	q := url.Values{"path": {p}, "min": {strconv.Itoa(params.Min)}, "avg": {strconv.Itoa(params.Avg)}, "max": {strconv.Itoa(params.Max)}, "key": {chunkKeyName}}
	var m Manifest
	err := retry(ctx, func() error {
		resp, err := s.do(ctx, http.MethodGet, s.url("manifest", q), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := keyedBy(resp); err != nil {
			return err
		}
		size, err1 := strconv.ParseInt(resp.Header.Get("Phoenix-Size"), 10, 64)
		mtime, err2 := strconv.ParseInt(resp.Header.Get("Phoenix-Mtime"), 10, 64)
		if err1 != nil || err2 != nil || size < 0 {
			return fmt.Errorf("bad size or mtime header: %w", ErrTransient)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		if err != nil {
			return fmt.Errorf("read chunk list: %w: %w", err, ErrTransient)
		}
		chunks, err := decodeManifest(b, size, params.Max)
		if err != nil {
			return fmt.Errorf("chunk list: %w: %w", err, ErrTransient)
		}
		m = Manifest{Size: size, ModTime: time.Unix(0, mtime), Chunks: chunks}
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	return m, nil
}

// BlockSums implements BlockSummer.
func (s *RemoteSink) BlockSums(ctx context.Context, ref Ref, bs int, spans []Span) ([]uint64, error) {
	q := url.Values{"path": {ref.Path}, "size": {strconv.FormatInt(ref.Size, 10)},
		"mtime": {strconv.FormatInt(ref.ModTime.UnixNano(), 10)}, "bs": {strconv.Itoa(bs)}, "key": {chunkKeyName}}
	want := spanBlocks(spans, bs)
	body := encodeSpans(spans)
	var sums []uint64
	err := retry(ctx, func() error {
		resp, err := s.do(ctx, http.MethodPost, s.url("blocks", q), bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := keyedBy(resp); err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8*want+1))
		if err != nil {
			return fmt.Errorf("read block sums: %w: %w", err, ErrTransient)
		}
		if int64(len(b)) != 8*want {
			return fmt.Errorf("%d bytes of block sums, want %d: %w", len(b), 8*want, ErrTransient)
		}
		sums = make([]uint64, want)
		for i := range sums {
			sums[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("block sums of %s: %w", ref.Path, err)
	}
	return sums, nil
}

// keyedBy checks that the target agent keyed the chunks or blocks it
// answered with as this source does: an agent of an earlier release keys
// them otherwise (and says nothing), and a patch against its keys would
// find no chunk in common.
func keyedBy(resp *http.Response) error {
	if got := resp.Header.Get(chunkKeyHeader); got != chunkKeyName {
		return fmt.Errorf("the target agent keys chunks with %q, this source with %q (an agent of an earlier release): %w", got, chunkKeyName, errKeyMismatch)
	}
	return nil
}

// errKeyMismatch: the target keyed chunks otherwise than this source; its
// files go whole until both agents run this release.
var errKeyMismatch = errors.New("chunk keys differ")

// resumeAt asks the agent how much of (p, id) it already holds.
func (s *RemoteSink) resumeAt(ctx context.Context, p, id string) (int64, error) {
	if id == "" {
		return 0, nil
	}
	var ans struct {
		Size int64 `json:"size"`
	}
	if err := s.getJSON(ctx, http.MethodGet, "partial", url.Values{"path": {p}, "id": {id}}, &ans); err != nil {
		return 0, err
	}
	return ans.Size, nil
}

// send streams frames produced by write as the body of one request and
// returns the answer's size field.
func (s *RemoteSink) send(ctx context.Context, method, u string, write func(w io.Writer) error) (int64, error) {
	body := newStreamBody(write)
	resp, err := s.do(ctx, method, u, body)
	var ans struct {
		Size    int64 `json:"size"`
		Written int64 `json:"written"`
	}
	if err == nil {
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ans)
		resp.Body.Close()
		if err != nil {
			err = fmt.Errorf("answer: %w: %w", err, ErrTransient)
		}
	}
	if local := body.wait(); local != nil {
		// Reading the source failed: the agent was told (an abort
		// frame), dropped the temp file and answered; the source's error
		// is the one that matters.
		return 0, local
	}
	if err != nil {
		return 0, err
	}
	return max(ans.Size, ans.Written), nil
}

// streamBody is a request body made by a function that writes it. An
// HTTP/1 transport copies a body with its WriteTo when it has one, so the
// frames go to the connection whole, as they are made: no pipe, no 32 KiB
// copy buffer cutting every frame into eight chunks and eight writes. Read
// serves a transport that reads bodies instead, through a pipe.
//
// When the function fails otherwise than by writing (the source could not
// be read), the body ends with an abort frame, so that the agent drops its
// temp file before it answers; wait then returns that failure.
type streamBody struct {
	write func(w io.Writer) error

	mu      sync.Mutex
	started bool // write was called (or is being)
	closed  bool // too late to start
	pr      *io.PipeReader
	done    chan struct{} // closed when write has returned
	local   error         // the source's own failure; set before done is closed
}

func newStreamBody(write func(w io.Writer) error) *streamBody {
	return &streamBody{write: write, done: make(chan struct{})}
}

// errBodyUsed is a second attempt to read a body made on the fly.
var errBodyUsed = errors.New("request body already sent")

// start claims the body for one writer.
func (b *streamBody) start() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return false
	}
	b.started = true
	return true
}

func (b *streamBody) run(w io.Writer) error {
	defer close(b.done)
	err := b.write(pipeWriter{w})
	var we *pipeWriteError
	if err != nil && !errors.As(err, &we) {
		b.local = err
		_, err = w.Write(appendFrame(nil, frameAbort, []byte(err.Error())))
	}
	return err
}

// WriteTo implements io.WriterTo.
func (b *streamBody) WriteTo(w io.Writer) (int64, error) {
	if !b.start() {
		return 0, errBodyUsed
	}
	cw := &countingWriter{w: w}
	err := b.run(cw)
	return cw.n, err
}

// Read implements io.Reader.
func (b *streamBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.pr == nil {
		if b.started || b.closed {
			b.mu.Unlock()
			return 0, errBodyUsed
		}
		b.started = true
		pr, pw := io.Pipe()
		b.pr = pr
		go func() { pw.CloseWithError(b.run(pw)) }()
	}
	pr := b.pr
	b.mu.Unlock()
	return pr.Read(p)
}

// Close implements io.Closer: a body not started by now never will be, and
// a pipe being read is closed, which stops its writer.
func (b *streamBody) Close() error {
	b.mu.Lock()
	b.closed = true
	pr := b.pr
	b.mu.Unlock()
	if pr != nil {
		pr.CloseWithError(errors.New("request finished"))
	}
	return nil
}

// wait closes the body, waits for its writer if it started, and returns the
// source's own failure, if any. Call it once the response is closed: a
// transport that got its answer before the whole body was sent closes the
// connection then, which ends a write blocked on it.
func (b *streamBody) wait() error {
	_ = b.Close()
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if started {
		<-b.done
	}
	return b.local
}

// pipeWriteError is a failure to hand bytes to the request: the connection
// is gone, not the source.
type pipeWriteError struct{ err error }

func (e *pipeWriteError) Error() string { return e.err.Error() }
func (e *pipeWriteError) Unwrap() error { return e.err }

// pipeWriter marks its write errors as pipeWriteError.
type pipeWriter struct{ w io.Writer }

func (p pipeWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if err != nil {
		err = &pipeWriteError{err}
	}
	return n, err
}

// countingWriter counts the bytes w took.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Replace implements Sink. When c is Identified, a transfer the agent
// already holds part of resumes after that part: those bytes are read
// from c (so its digest covers them) but not sent.
func (s *RemoteSink) Replace(ctx context.Context, p string, c Content) (int64, error) {
	id := ""
	if ic, ok := c.(Identified); ok {
		id = ic.Identity()
	}
	from, err := s.resumeAt(ctx, p, id)
	if err != nil {
		return 0, fmt.Errorf("replace %s: %w", p, err)
	}
	if from > 0 {
		if n, err := io.CopyN(io.Discard, c, from); err != nil || n != from {
			return 0, fmt.Errorf("replace %s: source shorter than the partial copy: %w", p, ErrChanged)
		}
	}
	q := url.Values{"path": {p}, "id": {id}, "from": {strconv.FormatInt(from, 10)}}
	var sent atomic.Int64
	_, err = s.send(ctx, http.MethodPut, s.url("file", q), func(w io.Writer) error {
		if err := writeDataFrames(w, c, &sent); err != nil {
			return err
		}
		_, err := w.Write(appendFrame(nil, frameEnd, endBody(c.Meta())))
		return err
	})
	if err != nil {
		return sent.Load(), fmt.Errorf("replace %s: %w", p, err)
	}
	return sent.Load(), nil
}

// writeDataFrames sends r as 'D' frames, counting the bytes taken by w.
// Each frame is read into place, between room for its header and its
// trailer, so it goes out without being copied. When r keeps a CRC-32C of
// what it hands out (a whole file's Checksum), the CRC of each frame of
// crcCombineMin bytes or more is derived from it rather than computed
// again.
func writeDataFrames(w io.Writer, r io.Reader, sent *atomic.Int64) error {
	buf := make([]byte, frameHeader+copyChunk+frameTrailer)
	keeper, _ := r.(crcKeeper)
	for {
		var before uint32
		summed := false
		if keeper != nil {
			before, summed = keeper.crcSoFar()
		}
		m, err := io.ReadFull(r, buf[frameHeader:frameHeader+copyChunk])
		if m > 0 {
			frame := buf[:frameHeader+m+frameTrailer]
			if summed && m >= crcCombineMin {
				after, _ := keeper.crcSoFar()
				frame = sealSummedFrame(frame, frameData, crcSplit(after, before, int64(m)))
			} else {
				frame = sealFrame(frame, frameData)
			}
			if _, werr := w.Write(frame); werr != nil {
				return werr
			}
			sent.Add(int64(m))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// crcKeeper is a reader that keeps the CRC-32C of all it has handed out.
type crcKeeper interface {
	// crcSoFar returns that CRC; false if the reader keeps none.
	crcSoFar() (uint32, bool)
}

// Append implements Sink.
func (s *RemoteSink) Append(ctx context.Context, p string, at int64, c Content) (int64, error) {
	q := url.Values{"path": {p}, "at": {strconv.FormatInt(at, 10)}}
	var sent atomic.Int64
	n, err := s.send(ctx, http.MethodPost, s.url("append", q), func(w io.Writer) error {
		if err := writeDataFrames(w, c, &sent); err != nil {
			return err
		}
		_, err := w.Write(appendFrame(nil, frameEnd, endBody(c.Meta())))
		return err
	})
	if err != nil {
		return sent.Load(), fmt.Errorf("append %s at %d: %w", p, at, err)
	}
	return n, nil
}

// Patch implements Patcher, resuming like Replace.
func (s *RemoteSink) Patch(ctx context.Context, p string, d Delta) (int64, error) {
	id := ""
	if ic, ok := d.(Identified); ok {
		id = ic.Identity()
	}
	base, inPlace := inPlaceBase(d)
	var from int64
	if !inPlace { // an in-place patch is journaled whole, never resumed
		var err error
		if from, err = s.resumeAt(ctx, p, id); err != nil {
			return 0, fmt.Errorf("patch %s: %w", p, err)
		}
	}
	q := url.Values{"path": {p}, "id": {id}, "from": {strconv.FormatInt(from, 10)}}
	if inPlace {
		q.Set("inplace", "1")
		q.Set("bsize", strconv.FormatInt(base.Size, 10))
		q.Set("bmtime", strconv.FormatInt(base.ModTime.UnixNano(), 10))
	}
	var err error
	var literal atomic.Int64
	_, err = s.send(ctx, http.MethodPost, s.url("patch", q), func(w io.Writer) error {
		var pos int64 // offset in the result of the next piece
		var out []byte
		for {
			pc, err := d.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			size := pc.Size()
			if pos+size <= from {
				pos += size
				continue
			}
			if skip := from - pos; skip > 0 { // the piece straddles the resume point
				if pc.Data != nil {
					pc.Data = pc.Data[skip:]
				} else {
					pc.Off, pc.Len = pc.Off+skip, pc.Len-skip
				}
			}
			pos += size
			if pc.Data != nil {
				out = appendFrame(out[:0], frameData, pc.Data)
			} else {
				out = appendFrame(out[:0], frameCopy, copyBody(pc.From, pc.Off, pc.Len))
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
			if pc.Data != nil {
				literal.Add(int64(len(pc.Data)))
			}
		}
		_, err := w.Write(appendFrame(nil, frameEnd, endBody(d.Meta())))
		return err
	})
	if err != nil {
		return literal.Load(), fmt.Errorf("patch %s: %w", p, err)
	}
	return literal.Load(), nil
}

// pushRequest asks a source agent to run a round into a target agent.
type pushRequest struct {
	Target    string      `json:"target"`
	Mode      string      `json:"mode"` // snapshot, plain or delta
	Throttle  int64       `json:"throttle,omitempty"`
	MaxPasses int         `json:"max_passes,omitempty"`
	Chunking  ChunkParams `json:"chunking"`
}

// Push modes.
const (
	pushSnapshot = "snapshot"
	pushPlain    = "plain"
	pushDelta    = "delta"
)

// agentMethod drives a source agent, which runs the rounds next to the
// data and pushes to the target agent.
type agentMethod struct {
	cfg MethodConfig
}

func (m *agentMethod) Full(ctx context.Context) (Stats, error) {
	return m.push(ctx, pushSnapshot)
}

func (m *agentMethod) Incremental(ctx context.Context) (Stats, error) {
	if m.cfg.Kind == MethodIncremental {
		return m.push(ctx, pushDelta)
	}
	return m.push(ctx, pushPlain)
}

func (m *agentMethod) push(ctx context.Context, mode string) (Stats, error) {
	body, _ := json.Marshal(pushRequest{Target: m.cfg.Dst.Agent, Mode: mode, Throttle: m.cfg.Throttle,
		MaxPasses: m.cfg.MaxPasses, Chunking: m.cfg.Chunking})
	src, _ := parseAgentURL(m.cfg.Src.Agent)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, src.JoinPath("v1", "push").String(), bytes.NewReader(body))
	if err != nil {
		return Stats{}, err
	}
	req.Header.Set("Authorization", "Bearer "+m.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Stats{}, ctx.Err()
		}
		return Stats{}, fmt.Errorf("source agent %s: %w: %w", src.Host, err, ErrTransient)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return Stats{}, fmt.Errorf("push from %s to %s: %w", src.Host, m.cfg.Dst.Agent, agentError(src.Host, resp))
	}
	var st Stats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return Stats{}, fmt.Errorf("source agent %s: answer: %w", src.Host, err)
	}
	return st, nil
}

// push is a source agent's handler: one round (or a consistent snapshot)
// from its directory into the target agent named in the request.
func (a *Agent) push(w http.ResponseWriter, r *http.Request) error {
	var req pushRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return badf("push request: %v", err)
	}
	if _, err := parseAgentURL(req.Target); err != nil {
		return badf("push request: target: %v", err)
	}
	if req.Chunking == (ChunkParams{}) {
		req.Chunking = DefaultChunkParams
	}
	if err := req.Chunking.Validate(); err != nil {
		return badf("push request: %v", err)
	}
	if req.MaxPasses <= 0 || req.MaxPasses > 100 {
		req.MaxPasses = DefaultMaxPasses
	}
	throttle := req.Throttle
	if a.cfg.Throttle > 0 && (throttle <= 0 || throttle > a.cfg.Throttle) {
		throttle = a.cfg.Throttle
	}
	sink, err := NewRemoteSink(req.Target, a.cfg.Token, a.cfg.Client)
	if err != nil {
		return badf("push request: %v", err)
	}
	t := a.target(req.Target, req.Chunking)
	t.mu.Lock()
	defer t.mu.Unlock()
	rc := roundConfig{lim: NewThrottle(throttle), log: a.log.With("target", req.Target)}
	ctx := r.Context()
	var st Stats
	switch req.Mode {
	case pushSnapshot:
		vars := map[string]string{"src": a.cfg.Dir, "dst": req.Target, "mode": "full"}
		st, err = a.cfg.Hooks.around(ctx, vars, func() (Stats, error) {
			return snapshotPasses(ctx, a.cfg.Dir, sink, rc, req.MaxPasses)
		})
	case pushPlain:
		st, err = runRound(ctx, a.cfg.Dir, sink, rc)
	case pushDelta:
		if t.cache.params != req.Chunking {
			t.cache, _ = NewChunkCache(req.Chunking)
		}
		rc.cache = t.cache
		st, err = runRound(ctx, a.cfg.Dir, sink, rc)
	default:
		return badf("push request: mode %q: want %s, %s or %s", req.Mode, pushSnapshot, pushPlain, pushDelta)
	}
	if err != nil {
		code, kind := errorStatus(err)
		if code == http.StatusBadRequest || code == http.StatusNotFound {
			code = http.StatusBadGateway // the target refused: not this request's fault
		}
		writeJSON(w, code, apiError{Error: err.Error(), Kind: kind, Stats: &st})
		return nil
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// target returns the state kept for pushes to the target at u.
func (a *Agent) target(u string, p ChunkParams) *agentTarget {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.caches[u]
	if !ok {
		c, _ := NewChunkCache(p)
		t = &agentTarget{cache: c}
		a.caches[u] = t
	}
	return t
}
