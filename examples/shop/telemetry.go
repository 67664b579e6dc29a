package shop

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// httpMetrics are the per-route request metrics of the application routes.
type httpMetrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newHTTPMetrics registers the request metrics and shop_disk_used_bytes,
// measured under dataDir at scrape time (0 when dataDir is empty).
func newHTTPMetrics(reg prometheus.Registerer, dataDir string) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "Requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_request_errors_total",
			Help: "Requests answered with a 5xx status, by route pattern.",
		}, []string{"route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer a request, injected latency included, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	disk := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shop_disk_used_bytes",
		Help: "Bytes of the files under the data directory (0 without one).",
	}, func() float64 { return float64(diskUsed(dataDir)) })
	if reg != nil {
		reg.MustRegister(m.requests, m.errors, m.duration, disk)
	}
	return m
}

// diskUsed sums the sizes of the regular files under dir. Files that vanish
// during the walk are skipped: the figure is a gauge, not an inventory.
func diskUsed(dir string) int64 {
	if dir == "" {
		return 0
	}
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += info.Size()
		}
		return nil
	})
	return total
}

// instrument measures next under the route label. The label children are
// created up front so that the series exist (at 0) before the first error.
func (m *httpMetrics) instrument(route string, next http.Handler) http.Handler {
	errs := m.errors.WithLabelValues(route)
	dur := m.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timer := prometheus.NewTimer(dur)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		timer.ObserveDuration()
		m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		if rec.status >= 500 {
			errs.Inc()
		}
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// tracing holds the tracer provider of one service and builds the traced
// handlers and transports. Without --otlp the provider is a no-op.
type tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
}

// newTracing builds an OTLP/HTTP batching exporter to base/v1/traces. It
// sets nothing global: the provider and the W3C propagator are handed to
// otelhttp explicitly, so two services in one process cannot interfere.
// Headers come from OTEL_EXPORTER_OTLP_HEADERS, read by the exporter.
func newTracing(ctx context.Context, cfg config) (*tracing, error) {
	if cfg.otlp == "" {
		return &tracing{provider: tracenoop.NewTracerProvider(), shutdown: func(context.Context) error { return nil }}, nil
	}
	u, err := url.Parse(cfg.otlp)
	if err != nil {
		return nil, fmt.Errorf("otlp endpoint %q: %w", cfg.otlp, err)
	}
	u.Path = path.Join("/", u.Path, "v1/traces")
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", u, err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.serviceName),
		attribute.String("service.instance.id", cfg.instance),
		// deployment.environment is what Phoenix reads; newer semantic
		// conventions renamed it, so both are set.
		attribute.String("deployment.environment", cfg.environment),
		attribute.String("deployment.environment.name", cfg.environment),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &tracing{provider: tp, shutdown: tp.Shutdown}, nil
}

func (t *tracing) options() []otelhttp.Option {
	return []otelhttp.Option{
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	}
}

// handler wraps next in a server span named after the route pattern,
// continuing the caller's trace from its traceparent header.
func (t *tracing) handler(route string, next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, route, t.options()...)
}

// transport wraps base so each outbound call gets a client span and
// carries its traceparent.
func (t *tracing) transport(base http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(base, t.options()...)
}
