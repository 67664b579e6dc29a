package replicate

import (
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Agent roles. A source agent only ever reads its directory; a target agent
// only ever writes into its own. One process never does both, so a wrong
// request cannot overwrite a primary's data.
const (
	RoleSource = "source"
	RoleTarget = "target"
)

// AgentConfig configures an Agent.
type AgentConfig struct {
	Role  string // RoleSource or RoleTarget
	Dir   string // the data directory served (source) or written (target)
	Token string // bearer token every /v1/ request must carry
	// Throttle caps, in bytes per second, what a source agent reads from
	// Dir, whatever a push asks; 0 means no cap.
	Throttle int64
	// Hooks run around a consistent snapshot on a source agent: Pre
	// (quiesce) before the first pass, Post (resume) after the last.
	// Command is not used. They come from the agent's own configuration,
	// never from a request.
	Hooks Hooks
	// Client makes a source agent's requests to targets (TLS settings
	// live there); nil means a default client.
	Client     *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics
}

// Agent serves one data directory to the controller over HTTP: as a source
// it runs rounds from it into a target agent (POST /v1/push); as a target
// it is the remote Sink those rounds write to. Every /v1/ request needs the
// bearer token; GET /healthz does not.
type Agent struct {
	cfg  AgentConfig
	log  *slog.Logger
	sink *DirSink // target role
	mux  *http.ServeMux

	mu     sync.Mutex
	caches map[string]*agentTarget // source role: per target URL

	requests *prometheus.CounterVec
	received prometheus.Counter
}

// agentTarget is a source agent's state for one target: its chunk cache,
// and a lock so that pushes to it run one at a time.
type agentTarget struct {
	mu    sync.Mutex
	cache *ChunkCache
}

// NewAgent checks cfg and prepares the agent; a target agent opens (and
// creates) its directory, sweeping debris but keeping resumable partials.
// Close releases it.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Token == "" {
		return nil, errors.New("agent: empty token: give the agent the controller's token")
	}
	if cfg.Dir == "" {
		return nil, errors.New("agent: no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), caches: make(map[string]*agentTarget),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_agent_requests_total", Help: "Agent requests, by operation and status code.",
		}, []string{"op", "code"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_agent_received_bytes_total", Help: "Bytes of transfer bodies a target agent read.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{a.requests, a.received} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("agent: register metrics: %w", err)
			}
		}
	}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"role": cfg.Role})
	})
	switch cfg.Role {
	case RoleTarget:
		d, err := OpenDir(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		d.cacheManifests(a.log)
		a.sink = d
		a.targetRoutes()
	case RoleSource:
		info, err := statDir(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("agent: source directory: %w", err)
		}
		_ = info
		a.handle("POST /v1/push", "push", a.push)
	default:
		return nil, fmt.Errorf("agent: role %q: write %q or %q", cfg.Role, RoleSource, RoleTarget)
	}
	return a, nil
}

// Close releases the target directory.
func (a *Agent) Close() error {
	if a.sink != nil {
		return a.sink.Close()
	}
	return nil
}

// Handler returns the agent's HTTP handler.
func (a *Agent) Handler() http.Handler { return a.mux }

// Serve serves the agent on ln until ctx ends, then shuts down gracefully
// (in-flight transfers get a few seconds; a resumable one is cut and its
// partial kept).
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("agent shutdown: %w", err)
	}
	return nil
}

func (a *Agent) targetRoutes() {
	a.handle("GET /v1/list", "list", a.list)
	a.handle("GET /v1/stat", "stat", a.stat)
	a.handle("GET /v1/sum", "sum", a.sum)
	a.handle("GET /v1/partial", "partial", a.partial)
	a.handle("PUT /v1/file", "replace", a.replace)
	a.handle("POST /v1/append", "append", a.appendTo)
	a.handle("POST /v1/patch", "patch", a.patch)
	a.handle("GET /v1/manifest", "manifest", a.manifest)
	a.handle("POST /v1/blocks", "blocks", a.blocks)
	a.handle("POST /v1/mkdir", "mkdir", a.mkdir)
	a.handle("POST /v1/remove", "remove", a.remove)
	a.handle("POST /v1/flush", "flush", a.flush)
}

// handle registers an authenticated handler that reports its error as JSON.
func (a *Agent) handle(pattern, op string, h func(w http.ResponseWriter, r *http.Request) error) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			a.requests.WithLabelValues(op, "401").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="phoenix-agent"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or wrong bearer token", Kind: "auth"})
			return
		}
		err := h(w, r)
		if err == nil {
			a.requests.WithLabelValues(op, "200").Inc()
			return
		}
		code, kind := errorStatus(err)
		a.requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
		if code >= 500 && code != http.StatusInsufficientStorage {
			a.log.Warn("agent request failed", "op", op, "err", err)
		} else {
			a.log.Info("agent request refused", "op", op, "err", err)
		}
		writeJSON(w, code, apiError{Error: err.Error(), Kind: kind})
	})
}

func (a *Agent) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) == 1
}

// apiError is the body of every failed agent request.
type apiError struct {
	Error string `json:"error"`
	// Kind lets a client restore the sentinel: full, changed, transient,
	// verify, unsafe, bad, auth, internal.
	Kind  string `json:"kind"`
	Stats *Stats `json:"stats,omitempty"`
}

// errorStatus maps an error to an HTTP status and an apiError kind.
func errorStatus(err error) (int, string) {
	var bad *badRequest
	switch {
	case errors.Is(err, ErrDestinationFull):
		return http.StatusInsufficientStorage, "full"
	case errors.Is(err, ErrUnsafePath):
		return http.StatusBadRequest, "unsafe"
	case errors.As(err, &bad):
		return http.StatusBadRequest, "bad"
	case errors.Is(err, errAborted):
		return http.StatusBadRequest, "aborted"
	case errors.Is(err, errNotInPlace):
		return http.StatusConflict, "notinplace"
	case errors.Is(err, ErrChanged):
		return http.StatusConflict, "changed"
	case errors.Is(err, ErrVerify):
		return http.StatusUnprocessableEntity, "verify"
	case errors.Is(err, ErrTransient):
		return http.StatusUnprocessableEntity, "transient"
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound, "missing"
	}
	return http.StatusInternalServerError, "internal"
}

// bodyIdleTimeout is how long a transfer body may send nothing.
const bodyIdleTimeout = time.Minute

// errAborted means the source ended a transfer with an abort frame.
var errAborted = errors.New("transfer aborted by the source")

// badRequest is a request the agent cannot make sense of.
type badRequest struct{ msg string }

func (b *badRequest) Error() string { return b.msg }

func badf(format string, args ...any) error { return &badRequest{msg: fmt.Sprintf(format, args...)} }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// queryInt reads a non-negative integer parameter.
func queryInt(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, badf("parameter %s=%q: want a non-negative integer", name, s)
	}
	return n, nil
}

// queryPath reads the path parameter, which the sink checks further.
func queryPath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if err := checkPath(p); err != nil {
		return "", err
	}
	return p, nil
}

func (a *Agent) list(w http.ResponseWriter, r *http.Request) error {
	entries, err := a.sink.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]wireEntry, len(entries))
	for i, e := range entries {
		out[i] = toWire(e)
	}
	w.Header().Set("Content-Type", "application/json")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		return json.NewEncoder(w).Encode(out)
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err := json.NewEncoder(zw).Encode(out); err != nil {
		return err
	}
	return zw.Close()
}

func (a *Agent) stat(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	e, ok, err := a.sink.Stat(r.Context(), p)
	if err != nil {
		return err
	}
	if !ok {
		writeJSON(w, http.StatusOK, map[string]any{"exists": false})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"exists": true, "entry": toWire(e)})
	return nil
}

func (a *Agent) sum(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	off, err := queryInt(r, "off")
	if err != nil {
		return err
	}
	n, err := queryInt(r, "n")
	if err != nil {
		return err
	}
	s, err := a.sink.Sum(r.Context(), p, off, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]byte{"sum": s[:]})
	return nil
}

func (a *Agent) partial(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	n, err := a.sink.partialSize(p, r.URL.Query().Get("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"size": n})
	return nil
}

// replace and patch share the resumable build; patch also takes copies.
func (a *Agent) replace(w http.ResponseWriter, r *http.Request) error { return a.build(w, r, false) }
func (a *Agent) patch(w http.ResponseWriter, r *http.Request) error   { return a.build(w, r, true) }

func (a *Agent) build(w http.ResponseWriter, r *http.Request, copies bool) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	from, err := queryInt(r, "from")
	if err != nil {
		return err
	}
	ctx := r.Context()
	var b fileWriter
	if copies && r.URL.Query().Get("inplace") == "1" {
		var base Ref
		base.Path = p
		if base.Size, err = queryInt(r, "bsize"); err != nil {
			return err
		}
		var mt int64
		if mt, err = queryInt(r, "bmtime"); err != nil {
			return err
		}
		base.ModTime = time.Unix(0, mt)
		b, err = a.sink.startInPlace(p, base)
	} else {
		b, err = a.sink.startBuild(ctx, p, r.URL.Query().Get("id"), from, copies)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	a.log.Debug("receiving", "path", p, "from", from, "copies", copies)
	fr := newFrameReader(&countingReader{r: r.Body, c: a.received})
	rc := http.NewResponseController(w)
	for {
		// A source that stops sending without closing must not hold the
		// partial copy forever.
		_ = rc.SetReadDeadline(time.Now().Add(bodyIdleTimeout))
		f, err := fr.next()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("transfer ended before its end frame: %w", errBadFrame)
		}
		if err == nil {
			switch {
			case f.kind == frameData && f.summed:
				err = b.writeSummed(f.data, f.crc)
			case f.kind == frameData:
				err = b.write(f.data)
			case f.kind == frameCopy && copies:
				err = b.copyRange(ctx, f.ref, f.off, f.n)
			case f.kind == frameAbort:
				b.abort(false)
				return fmt.Errorf("write %s: the source gave up: %.200s: %w", p, f.data, errAborted)
			case f.kind == frameEnd:
				if err := b.commit(f.meta); err != nil {
					return fmt.Errorf("write %s: %w", p, err)
				}
				writeJSON(w, http.StatusOK, map[string]int64{"size": b.size()})
				return nil
			default:
				err = badf("frame %q not allowed here", f.kind)
			}
		}
		if err != nil {
			b.abort(keepAfter(err))
			return fmt.Errorf("write %s at %d: %w", p, b.size(), err)
		}
	}
}

func (a *Agent) appendTo(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	at, err := queryInt(r, "at")
	if err != nil {
		return err
	}
	c := &frameContent{fr: newFrameReader(&countingReader{r: r.Body, c: a.received})}
	n, err := a.sink.Append(r.Context(), p, at, c)
	if err != nil {
		return err
	}
	if !c.ended {
		return fmt.Errorf("append %s: %d bytes appended, then the transfer ended before its end frame: %w", p, n, errBadFrame)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"written": n})
	return nil
}

func (a *Agent) manifest(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	var params ChunkParams
	for name, dst := range map[string]*int{"min": &params.Min, "avg": &params.Avg, "max": &params.Max} {
		n, err := queryInt(r, name)
		if err != nil {
			return err
		}
		*dst = int(n)
	}
	if err := params.Validate(); err != nil {
		return badf("%v", err)
	}
	key, keyName, err := keyFor(w, r)
	if err != nil {
		return err
	}
	m, err := a.sink.manifest(r.Context(), p, params, key, keyName)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Phoenix-Size", strconv.FormatInt(m.Size, 10))
	w.Header().Set("Phoenix-Mtime", strconv.FormatInt(m.ModTime.UnixNano(), 10))
	_, err = w.Write(encodeManifest(m.Chunks))
	return err
}

// chunkKeyHeader names, in a manifest or block sums answer, the function
// that keyed them; the request names it in its "key" parameter.
const chunkKeyHeader = "Phoenix-Chunk-Key"

// keyFor is the key function a request for chunk or block keys names (none:
// a source agent of an earlier release, keyed as that release did), set in
// the answer's header; a name this release does not know is refused.
func keyFor(w http.ResponseWriter, r *http.Request) (func([]byte) uint64, string, error) {
	key, name, ok := keyFunc(r.URL.Query().Get("key"))
	if !ok {
		return nil, "", badf("key %q: this agent keys chunks with %s or %s; run the source and target agents from compatible releases", r.URL.Query().Get("key"), chunkKeyName, legacyKeyName)
	}
	w.Header().Set(chunkKeyHeader, name)
	return key, name, nil
}

func (a *Agent) blocks(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	var nums [3]int64
	for i, name := range []string{"size", "mtime", "bs"} {
		if nums[i], err = queryInt(r, name); err != nil {
			return err
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16*maxBlockSpans+1))
	if err != nil {
		return fmt.Errorf("read spans: %w: %w", err, ErrTransient)
	}
	spans, err := decodeSpans(body)
	if err != nil {
		return badf("%v", err)
	}
	if nums[2] > maxChunkMax {
		return badf("block size %d over %d", nums[2], maxChunkMax)
	}
	key, _, err := keyFor(w, r)
	if err != nil {
		return err
	}
	sums, err := a.sink.blockSums(r.Context(), Ref{Path: p, Size: nums[0], ModTime: time.Unix(0, nums[1])}, int(nums[2]), spans, key)
	if err != nil {
		return err
	}
	out := make([]byte, 0, 8*len(sums))
	for _, s := range sums {
		out = binary.LittleEndian.AppendUint64(out, s)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = w.Write(out)
	return err
}

func (a *Agent) mkdir(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	perm, err := strconv.ParseUint(r.URL.Query().Get("perm"), 8, 32)
	if err != nil || perm > uint64(fs.ModePerm) {
		return badf("perm %q: want octal permission bits", r.URL.Query().Get("perm"))
	}
	if err := a.sink.Mkdir(r.Context(), p, fs.FileMode(perm)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *Agent) remove(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	if err := a.sink.Remove(r.Context(), p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *Agent) flush(w http.ResponseWriter, r *http.Request) error {
	if err := a.sink.Flush(r.Context()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// frameContent is a Content read from 'D' frames up to an 'E' frame.
type frameContent struct {
	fr    *frameReader
	rest  []byte
	meta  FileMeta
	ended bool
}

func (c *frameContent) Read(p []byte) (int, error) {
	for len(c.rest) == 0 {
		if c.ended {
			return 0, io.EOF
		}
		f, err := c.fr.next()
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("transfer ended before its end frame: %w", errBadFrame)
		}
		if err != nil {
			return 0, err
		}
		switch f.kind {
		case frameData:
			c.rest = f.data
		case frameEnd:
			c.meta, c.ended = f.meta, true
		case frameAbort:
			return 0, fmt.Errorf("the source gave up: %.200s: %w", f.data, errAborted)
		default:
			return 0, badf("frame %q not allowed in an append", f.kind)
		}
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

func (c *frameContent) Meta() FileMeta { return c.meta }

// countingReader counts what it reads into c.
type countingReader struct {
	r io.Reader
	c prometheus.Counter
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.Add(float64(n))
	return n, err
}

// wireEntry is an Entry in JSON.
type wireEntry struct {
	Path    string `json:"p"`
	Kind    Kind   `json:"k"`
	Size    int64  `json:"s,omitempty"`
	ModTime int64  `json:"m"` // ns since the epoch
	Perm    uint32 `json:"perm"`
}

func toWire(e Entry) wireEntry {
	return wireEntry{Path: e.Path, Kind: e.Kind, Size: e.Size, ModTime: e.ModTime.UnixNano(), Perm: uint32(e.Perm)}
}

func (w wireEntry) entry() (Entry, error) {
	if err := checkPath(w.Path); err != nil {
		return Entry{}, err
	}
	if w.Kind < KindFile || w.Kind > KindOther || w.Size < 0 || w.Perm&^uint32(fs.ModePerm) != 0 {
		return Entry{}, fmt.Errorf("entry %q: kind %d, size %d, perm %o out of range", w.Path, w.Kind, w.Size, w.Perm)
	}
	return Entry{Path: w.Path, Kind: w.Kind, Size: w.Size, ModTime: time.Unix(0, w.ModTime), Perm: fs.FileMode(w.Perm)}, nil
}
