package telemetry

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage"
	otlpconv "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultOTLPMaxBodyBytes bounds an OTLP request (HTTP body as sent and
// once gunzipped; gRPC message) unless OTLPConfig says otherwise.
const DefaultOTLPMaxBodyBytes = 8 << 20

// OTLPConfig configures the OTLP metrics receiver. Zero values take the
// defaults.
type OTLPConfig struct {
	// MaxBodyBytes bounds a request; a larger one gets 413 (gRPC:
	// RESOURCE_EXHAUSTED from the server's receive limit).
	MaxBodyBytes int64
	// MaxInFlight bounds the requests converted at once; default
	// DefaultMaxInFlight.
	MaxInFlight int
	// TenantHeader names the HTTP header (gRPC metadata key, lower-cased)
	// holding the tenant; default DefaultTenantHeader.
	TenantHeader string
	// NoMetricSuffixes turns off the unit and _total suffixes Prometheus
	// adds to OTLP metric names by default (http.server.duration in
	// seconds becomes http_server_duration_seconds).
	NoMetricSuffixes bool
	// PromoteResourceAttributes are resource attributes made labels of
	// every series of the resource (service.name is always the job label,
	// service.instance.id the instance label).
	PromoteResourceAttributes []string
	// Logger receives refused requests at debug level; nil discards.
	Logger *slog.Logger
	// Registerer receives the receiver's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock for the future-timestamp check; nil means time.Now.
	Now func() time.Time
}

// Validate reports the fields that cannot be used as given.
func (c OTLPConfig) Validate() error {
	if c.MaxBodyBytes < 0 || c.MaxInFlight < 0 {
		return fmt.Errorf("otlp limits (max body %d, max in flight %d): must be positive (or 0 for the defaults)", c.MaxBodyBytes, c.MaxInFlight)
	}
	return nil
}

// OTLPReceiver receives OTLP metrics over HTTP (ServeHTTP, protobuf or
// JSON, optionally gzip) and gRPC (RegisterGRPC), converts them with
// Prometheus's own OTLP translator (the one behind Prometheus's
// --web.enable-otlp-receiver) and appends the series to its storage.
//
// Refusals follow the OTLP specification: a malformed request is 400 (gRPC
// INVALID_ARGUMENT); data points the store refuses are reported as a
// partial success, with the others stored; a limit is 429 with Retry-After
// (gRPC RESOURCE_EXHAUSTED with RetryInfo); a store failure is 503 (gRPC
// UNAVAILABLE), for the sender to retry. It does not authenticate: wrap
// the handler, and give the gRPC server an interceptor.
type OTLPReceiver struct {
	cfg      OTLPConfig
	dst      storage.AppendableV2
	settings otlpconv.Settings
	inFlight inFlight
	convs    sync.Pool // *otlpconv.PrometheusConverter

	requests *prometheus.CounterVec
	points   prometheus.Counter
}

var _ http.Handler = (*OTLPReceiver)(nil)

// NewOTLPReceiver returns a receiver writing into dst.
func NewOTLPReceiver(cfg OTLPConfig, dst storage.AppendableV2) (*OTLPReceiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultOTLPMaxBodyBytes
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.TenantHeader == "" {
		cfg.TenantHeader = DefaultTenantHeader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &OTLPReceiver{
		cfg: cfg, dst: dst, inFlight: newInFlight(cfg.MaxInFlight),
		settings: otlpconv.Settings{
			AddMetricSuffixes:         !cfg.NoMetricSuffixes,
			PromoteResourceAttributes: otlpconv.NewPromoteResourceAttributes(promconfig.OTLPConfig{PromoteResourceAttributes: cfg.PromoteResourceAttributes}),
			LookbackDelta:             5 * time.Minute,
		},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_telemetry_otlp_requests_total",
			Help: "OTLP metrics requests received, by transport and outcome.",
		}, []string{"transport", "outcome"}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_telemetry_otlp_samples_total",
			Help: "Samples stored from OTLP metrics data points.",
		}),
	}
	o.convs.New = func() any { return otlpconv.NewPrometheusConverter(nil) }
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{o.requests, o.points} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register otlp metrics: %w", err)
			}
		}
	}
	return o, nil
}

// consume converts and stores one request's metrics. The result says what
// was refused; the error is a refusal of the whole request (a limit) or a
// store failure.
func (o *OTLPReceiver) consume(ctx context.Context, md pmetric.Metrics) (appendResult, error) {
	if !o.inFlight.acquire() {
		return appendResult{}, errOverloaded
	}
	defer o.inFlight.release()
	if err := admit(ctx, o.dst, md.DataPointCount()); err != nil {
		if _, ok := errors.AsType[*RetryableError](err); ok {
			return appendResult{}, err
		}
		return appendResult{}, tooLarge("%v", err)
	}
	rec := newRecordingAppender(o.dst.AppenderV2(ctx), o.cfg.Now().Add(maxAheadTime))
	convErr := o.convert(ctx, md, rec)
	if _, ok := errors.AsType[*statusError](convErr); ok {
		_ = rec.Rollback()
		return appendResult{}, convErr
	}
	res, err := rec.commit()
	if err != nil {
		return appendResult{}, err
	}
	if convErr != nil && rec.failed == nil {
		res.refuse(0, fmt.Errorf("metrics not converted: %w", convErr))
	}
	o.points.Add(float64(res.samples + res.histograms))
	if res.limitFirst != nil {
		return res, res.err()
	}
	return res, nil
}

// convert runs Prometheus's OTLP translator into app. The translator is
// large third-party code fed with what the network sends: a panic in it
// becomes a 400 for this request instead of the end of the daemon.
func (o *OTLPReceiver) convert(ctx context.Context, md pmetric.Metrics, app storage.AppenderV2) (err error) {
	conv := o.convs.Get().(*otlpconv.PrometheusConverter)
	defer func() {
		if r := recover(); r != nil {
			err = badRequest("OTLP metrics could not be converted: %v", r)
			return // the converter's state is unknown: not reused
		}
		conv.Reset(nil)
		o.convs.Put(conv)
	}()
	conv.Reset(app)
	_, err = conv.FromMetrics(ctx, md, o.settings)
	return err
}

// partialSuccess fills resp with what res refused, if anything.
func partialSuccess(resp pmetricotlp.ExportResponse, res appendResult) {
	if res.refuseFirst == nil {
		return
	}
	ps := resp.PartialSuccess()
	ps.SetRejectedDataPoints(int64(res.refused))
	ps.SetErrorMessage(res.err().Error())
}

// otlpEncoding is one of the two OTLP/HTTP payload encodings.
type otlpEncoding int

const (
	otlpUnknown otlpEncoding = iota
	otlpProto
	otlpJSON
)

func otlpEncodingOf(contentType string) otlpEncoding {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return otlpUnknown
	}
	switch mt {
	case "application/x-protobuf":
		return otlpProto
	case "application/json":
		return otlpJSON
	}
	return otlpUnknown
}

func (e otlpEncoding) contentType() string {
	if e == otlpJSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// ServeHTTP is the OTLP/HTTP metrics endpoint; mount it at /v1/metrics.
func (o *OTLPReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	enc := otlpEncodingOf(r.Header.Get("Content-Type"))
	err := o.serveHTTP(w, r, enc)
	outcome := "ok"
	if err != nil {
		outcome = fmt.Sprint(httpStatus(err))
		o.cfg.Logger.Debug("otlp metrics refused", "remote", r.RemoteAddr, "err", err)
		o.fail(w, enc, err)
	}
	o.requests.WithLabelValues("http", outcome).Inc()
}

func (o *OTLPReceiver) serveHTTP(w http.ResponseWriter, r *http.Request, enc otlpEncoding) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &statusError{http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: send OTLP metrics with POST", r.Method)}
	}
	if enc == otlpUnknown {
		return &statusError{http.StatusUnsupportedMediaType, fmt.Errorf("content type %q not supported: use application/x-protobuf or application/json", r.Header.Get("Content-Type"))}
	}
	r, err := requestTenant(r, o.cfg.TenantHeader)
	if err != nil {
		return badRequest("%v", err)
	}
	body, err := readOTLPBody(w, r, o.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	req := pmetricotlp.NewExportRequest()
	if enc == otlpProto {
		err = req.UnmarshalProto(body)
	} else {
		err = req.UnmarshalJSON(body)
	}
	if err != nil {
		return badRequest("decode OTLP metrics request: %v", err)
	}
	res, err := o.consume(r.Context(), req.Metrics())
	if err != nil {
		if httpStatus(err) == http.StatusInternalServerError {
			return &statusError{http.StatusServiceUnavailable, err} // retryable in OTLP
		}
		return err
	}
	resp := pmetricotlp.NewExportResponse()
	partialSuccess(resp, res)
	var out []byte
	if enc == otlpProto {
		out, err = resp.MarshalProto()
	} else {
		out, err = resp.MarshalJSON()
	}
	if err != nil {
		return fmt.Errorf("encode OTLP response: %w", err)
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// readOTLPBody reads the body within max bytes, as sent and once gunzipped.
func readOTLPBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, max)
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, readError("gzip header", err, max)
		}
		defer zr.Close()
		rd = io.LimitReader(zr, max+1) // one byte past tells "max" from "more"
	default:
		return nil, &statusError{http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q not supported: use gzip or none", ce)}
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		return nil, readError("read body", err, max)
	}
	if int64(len(body)) > max {
		return nil, tooLarge("body expands beyond %d bytes once decompressed", max)
	}
	return body, nil
}

func readError(op string, err error, max int64) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge("body larger than %d bytes", max)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("%s: body truncated", op)
	}
	return badRequest("%s: %v", op, err)
}

// fail answers err as a google.rpc.Status in the request's encoding, as
// OTLP/HTTP asks (plain text when the encoding is unknown), with
// Retry-After when the refusal may lift.
func (o *OTLPReceiver) fail(w http.ResponseWriter, enc otlpEncoding, err error) {
	status := httpStatus(err)
	setRetryAfter(w.Header(), err)
	st := &rpcstatus.Status{Code: int32(rpcCodeOf(status)), Message: err.Error()}
	var (
		out  []byte
		merr error
	)
	switch enc {
	case otlpProto:
		out, merr = proto.Marshal(st)
	case otlpJSON:
		out, merr = protojson.Marshal(st)
	}
	if enc == otlpUnknown || merr != nil {
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func rpcCodeOf(httpStatus int) code.Code {
	switch httpStatus {
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return code.Code_RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable, http.StatusInternalServerError:
		return code.Code_UNAVAILABLE
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return code.Code_UNIMPLEMENTED
	}
	return code.Code_INVALID_ARGUMENT
}

// RegisterGRPC registers the receiver as the OTLP MetricsService of s.
// Create s with GRPCServerOptions so that its receive limit is the
// receiver's.
func (o *OTLPReceiver) RegisterGRPC(s *grpc.Server) {
	pmetricotlp.RegisterGRPCServer(s, &otlpGRPC{o: o})
}

// GRPCServerOptions are the options a gRPC server for this receiver needs:
// its message size limit.
func (o *OTLPReceiver) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(int(o.cfg.MaxBodyBytes))}
}

type otlpGRPC struct {
	pmetricotlp.UnimplementedGRPCServer
	o *OTLPReceiver
}

// Export is the gRPC MetricsService's Export.
func (g *otlpGRPC) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	o := g.o
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ids := md.Get(strings.ToLower(o.cfg.TenantHeader)); len(ids) > 0 && ids[0] != "" {
			if err := ValidateTenant(ids[0]); err != nil {
				o.requests.WithLabelValues("grpc", "400").Inc()
				return pmetricotlp.NewExportResponse(), grpcstatus.Error(codes.InvalidArgument, err.Error())
			}
			ctx = WithTenant(ctx, ids[0])
		}
	}
	res, err := o.consume(ctx, req.Metrics())
	if err != nil {
		o.requests.WithLabelValues("grpc", fmt.Sprint(httpStatus(err))).Inc()
		o.cfg.Logger.Debug("otlp metrics refused", "transport", "grpc", "err", err)
		return pmetricotlp.NewExportResponse(), grpcError(err)
	}
	o.requests.WithLabelValues("grpc", "ok").Inc()
	resp := pmetricotlp.NewExportResponse()
	partialSuccess(resp, res)
	return resp, nil
}

// grpcError is err as a gRPC status: RESOURCE_EXHAUSTED with RetryInfo for
// a limit (the OTLP exporters retry only then), UNAVAILABLE for a store
// failure, INVALID_ARGUMENT otherwise.
func grpcError(err error) error {
	if re, ok := errors.AsType[*RetryableError](err); ok {
		st := grpcstatus.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(re.After)}); derr == nil {
			st = d
		}
		return st.Err()
	}
	switch httpStatus(err) {
	case http.StatusInternalServerError:
		return grpcstatus.Error(codes.Unavailable, err.Error())
	case http.StatusRequestEntityTooLarge:
		return grpcstatus.Error(codes.ResourceExhausted, err.Error())
	}
	return grpcstatus.Error(codes.InvalidArgument, err.Error())
}
