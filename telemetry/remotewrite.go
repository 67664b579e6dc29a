package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
)

// Defaults of RemoteWriteConfig.
const (
	DefaultRemoteWriteMaxBodyBytes    = 10 << 20
	DefaultRemoteWriteMaxDecodedBytes = 64 << 20
	DefaultMaxInFlight                = 32
	// maxAheadTime refuses samples stamped further in the future than
	// this, as Prometheus's own receiver does: a wrong clock must not
	// block a series' real samples for hours.
	maxAheadTime = 10 * time.Minute
)

// RemoteWriteConfig configures the Prometheus remote-write receiver. Zero
// values take the defaults.
type RemoteWriteConfig struct {
	// MaxBodyBytes bounds the body as sent (snappy-compressed), and
	// MaxDecodedBytes once decompressed; a larger one gets 413.
	MaxBodyBytes    int64
	MaxDecodedBytes int64
	// MaxInFlight bounds the requests decoded and appended at once; one
	// more gets 429 with Retry-After. Default DefaultMaxInFlight.
	MaxInFlight int
	// TenantHeader names the header holding the tenant; default
	// DefaultTenantHeader. A request without it is the default tenant's.
	TenantHeader string
	// Logger receives refused requests at debug level; nil discards.
	Logger *slog.Logger
	// Registerer receives the receiver's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock for the future-timestamp check; nil means time.Now.
	Now func() time.Time
}

// Validate reports the fields that cannot be used as given.
func (c RemoteWriteConfig) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 || c.MaxDecodedBytes < 0 || c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("remote write limits (max body %d, max decoded %d, max in flight %d): must be positive (or 0 for the defaults)", c.MaxBodyBytes, c.MaxDecodedBytes, c.MaxInFlight))
	}
	if c.TenantHeader != "" && http.CanonicalHeaderKey(c.TenantHeader) == "" {
		errs = append(errs, fmt.Errorf("remote write tenant header %q: not a header name", c.TenantHeader))
	}
	return errors.Join(errs...)
}

func (c RemoteWriteConfig) withDefaults() RemoteWriteConfig {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultRemoteWriteMaxBodyBytes
	}
	if c.MaxDecodedBytes == 0 {
		c.MaxDecodedBytes = DefaultRemoteWriteMaxDecodedBytes
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.TenantHeader == "" {
		c.TenantHeader = DefaultTenantHeader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// remoteWrite receives Prometheus remote-write 1.0 and 2.0 requests. The
// protocol's content negotiation, response headers and status handling are
// client_golang's remote API handler; this type decodes the protobuf
// messages with Prometheus's own prompb types and appends to dst.
type remoteWrite struct {
	cfg      RemoteWriteConfig
	dst      storage.AppendableV2
	inFlight inFlight
	bufs     sync.Pool // *[]byte, request bodies
	v1s      sync.Pool // *prompb.WriteRequest

	requests *prometheus.CounterVec
	samples  prometheus.Counter
}

// NewRemoteWriteHandler returns the remote-write receiver writing into dst;
// mount it at /api/v1/write. It answers 204 when every sample was stored,
// 400 with the reason for a malformed request or refused samples (the
// others are stored), 413 for a body over the limits, 415 for a content
// type or encoding it does not speak, 429 with Retry-After when a limit of
// dst (a *Limiter) or the in-flight bound refuses, and 500 when the store
// fails (the sender should retry). It does not authenticate: wrap it.
func NewRemoteWriteHandler(cfg RemoteWriteConfig, dst storage.AppendableV2) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := &remoteWrite{
		cfg: cfg, dst: dst, inFlight: newInFlight(cfg.MaxInFlight),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_telemetry_remote_write_requests_total",
			Help: "Remote-write requests received, by HTTP status code.",
		}, []string{"code"}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_telemetry_remote_write_samples_total",
			Help: "Samples and histograms stored from remote-write requests.",
		}),
	}
	h.bufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	h.v1s.New = func() any { return &prompb.WriteRequest{} }
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{h.requests, h.samples} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register remote write metrics: %w", err)
			}
		}
	}
	inner := remoteapi.NewWriteHandler(h,
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType},
		remoteapi.WithWriteHandlerLogger(cfg.Logger),
		remoteapi.WithWriteHandlerMiddlewares(h.decode))
	return inner, nil
}

type decodedKey struct{}

// decode is the middleware before client_golang's handler: the tenant, the
// in-flight bound, the body limits, and snappy decompression into pooled
// buffers. The decoded body reaches Store through the request context.
func (h *remoteWrite) decode(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, err := h.prepare(r)
		if err != nil {
			h.refuse(w, r, err)
			return
		}
		if !h.inFlight.acquire() {
			h.refuse(w, r, errOverloaded)
			return
		}
		defer h.inFlight.release()
		raw, decoded := h.bufs.Get().(*[]byte), h.bufs.Get().(*[]byte)
		defer h.bufs.Put(raw)
		defer h.bufs.Put(decoded)
		if err := h.readSnappy(w, r, raw, decoded); err != nil {
			h.refuse(w, r, err)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), decodedKey{}, *decoded)))
		h.requests.WithLabelValues(fmt.Sprint(rec.code)).Inc()
	})
}

// prepare checks what can be checked before reading the body.
func (h *remoteWrite) prepare(r *http.Request) (*http.Request, error) {
	if r.Method != http.MethodPost {
		return r, &statusError{http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: send remote-write requests with POST", r.Method)}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != string(remoteapi.SnappyBlockCompression) {
		return r, &statusError{http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q not supported: remote write uses snappy", enc)}
	}
	tr, err := requestTenant(r, h.cfg.TenantHeader)
	if err != nil {
		return r, badRequest("%v", err)
	}
	return tr, nil
}

// readSnappy reads the body into *raw and decompresses it into *decoded,
// both within the configured limits.
func (h *remoteWrite) readSnappy(w http.ResponseWriter, r *http.Request, raw, decoded *[]byte) error {
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return tooLarge("body of %d bytes exceeds the %d-byte limit", r.ContentLength, h.cfg.MaxBodyBytes)
	}
	buf := bytes.NewBuffer((*raw)[:0])
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge("body exceeds the %d-byte limit", h.cfg.MaxBodyBytes)
		}
		return badRequest("read body: %v", err)
	}
	*raw = buf.Bytes()
	n, err := snappy.DecodedLen(*raw)
	if err != nil {
		return badRequest("body is not snappy-compressed: %v", err)
	}
	if int64(n) > h.cfg.MaxDecodedBytes {
		return tooLarge("body decompresses to %d bytes, over the %d-byte limit", n, h.cfg.MaxDecodedBytes)
	}
	if cap(*decoded) < n {
		*decoded = make([]byte, n)
	}
	out, err := snappy.Decode((*decoded)[:n], *raw)
	if err != nil {
		return badRequest("body is not snappy-compressed: %v", err)
	}
	*decoded = out
	return nil
}

func (h *remoteWrite) refuse(w http.ResponseWriter, r *http.Request, err error) {
	code := httpStatus(err)
	h.cfg.Logger.Debug("remote write refused", "remote", r.RemoteAddr, "status", code, "err", err)
	h.requests.WithLabelValues(fmt.Sprint(code)).Inc()
	setRetryAfter(w.Header(), err)
	http.Error(w, err.Error(), code)
}

// statusRecorder remembers the status written, for the request metric.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Store implements client_golang's remote write storage: it decodes the
// request and appends it. Refusals carry their status in the response.
func (h *remoteWrite) Store(r *http.Request, msgType remoteapi.WriteMessageType) (*remoteapi.WriteResponse, error) {
	body, _ := r.Context().Value(decodedKey{}).([]byte)
	resp := remoteapi.NewWriteResponse()
	var res appendResult
	var err error
	switch msgType {
	case remoteapi.WriteV1MessageType:
		res, err = h.storeV1(r.Context(), body)
	default:
		res, err = h.storeV2(r.Context(), body)
	}
	resp.Samples, resp.Histograms = res.samples, res.histograms
	h.samples.Add(float64(res.samples + res.histograms))
	if err == nil {
		err = res.err()
	}
	if err != nil {
		h.cfg.Logger.Debug("remote write refused", "remote", r.RemoteAddr, "tenant", TenantFrom(r.Context()), "err", err)
		resp.SetStatusCode(httpStatus(err))
		if re, ok := errors.AsType[*RetryableError](err); ok {
			resp.SetExtraHeader("Retry-After", fmt.Sprint(retryAfterSeconds(re.After)))
		}
	}
	return resp, err
}

func (h *remoteWrite) storeV1(ctx context.Context, body []byte) (appendResult, error) {
	req := h.v1s.Get().(*prompb.WriteRequest)
	defer func() {
		clear(req.Timeseries)
		req.Timeseries, req.Metadata = req.Timeseries[:0], req.Metadata[:0]
		h.v1s.Put(req)
	}()
	if err := req.Unmarshal(body); err != nil {
		return appendResult{}, badRequest("decode remote-write 1.0 request (prometheus.WriteRequest): %v", err)
	}
	n := 0
	for _, ts := range req.Timeseries {
		n += len(ts.Samples) + len(ts.Histograms)
	}
	if err := admit(ctx, h.dst, n); err != nil {
		return appendResult{}, err
	}
	a := newRecordingAppender(h.dst.AppenderV2(ctx), h.cfg.Now().Add(maxAheadTime))
	b := labels.NewScratchBuilder(8)
	for _, ts := range req.Timeseries {
		ls := ts.ToLabels(&b, nil)
		if err := validSeries(ls); err != nil {
			a.res.refuse(len(ts.Samples)+len(ts.Histograms), err)
			continue
		}
		var ref storage.SeriesRef
		for _, s := range ts.Samples {
			ref, _ = a.Append(ref, ls, 0, s.Timestamp, s.Value, nil, nil, storage.AOptions{})
		}
		for _, hp := range ts.Histograms {
			if hp.IsFloatHistogram() {
				ref, _ = a.Append(ref, ls, 0, hp.Timestamp, 0, nil, hp.ToFloatHistogram(), storage.AOptions{})
			} else {
				ref, _ = a.Append(ref, ls, 0, hp.Timestamp, 0, hp.ToIntHistogram(), nil, storage.AOptions{})
			}
		}
	}
	return a.commit()
}

func (h *remoteWrite) storeV2(ctx context.Context, body []byte) (appendResult, error) {
	var req writev2.Request
	if err := req.Unmarshal(body); err != nil {
		return appendResult{}, badRequest("decode remote-write 2.0 request (io.prometheus.write.v2.Request): %v", err)
	}
	n := 0
	for _, ts := range req.Timeseries {
		n += len(ts.Samples) + len(ts.Histograms)
	}
	if err := admit(ctx, h.dst, n); err != nil {
		return appendResult{}, err
	}
	a := newRecordingAppender(h.dst.AppenderV2(ctx), h.cfg.Now().Add(maxAheadTime))
	b := labels.NewScratchBuilder(8)
	for _, ts := range req.Timeseries {
		ls, err := ts.ToLabels(&b, req.Symbols)
		if err == nil {
			err = validSeries(ls)
		}
		if err != nil {
			a.res.refuse(len(ts.Samples)+len(ts.Histograms), badRequest("series labels: %v", err))
			continue
		}
		var ref storage.SeriesRef
		for _, s := range ts.Samples {
			ref, _ = a.Append(ref, ls, s.StartTimestamp, s.Timestamp, s.Value, nil, nil, storage.AOptions{})
		}
		for _, hp := range ts.Histograms {
			if hp.IsFloatHistogram() {
				ref, _ = a.Append(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, nil, hp.ToFloatHistogram(), storage.AOptions{})
			} else {
				ref, _ = a.Append(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, hp.ToIntHistogram(), nil, storage.AOptions{})
			}
		}
	}
	return a.commit()
}

// validSeries is Prometheus's receiver's check of a series' labels.
func validSeries(ls labels.Labels) error {
	if !ls.Has(labels.MetricName) {
		return badRequest("series %s has no metric name", ls.String())
	}
	if !ls.IsValid(model.UTF8Validation) {
		return badRequest("series %s has an invalid label name or value", ls.String())
	}
	if dup, ok := ls.HasDuplicateLabelNames(); ok {
		return badRequest("series %s has label %q twice", ls.String(), dup)
	}
	return nil
}
