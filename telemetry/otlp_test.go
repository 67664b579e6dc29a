package telemetry

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmetadata "google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/phoenixsre/phoenix"
)

// otlpIngestion is the OTLP path as the daemon builds it, served over
// HTTP and gRPC on real sockets.
type otlpIngestion struct {
	store    *Store
	rec      *recorder
	httpURL  string // .../v1/metrics
	grpcAddr string
}

func newOTLPIngestion(t *testing.T, lc LimitsConfig, oc OTLPConfig) *otlpIngestion {
	t.Helper()
	in := &otlpIngestion{store: openTestStore(t, StoreConfig{}), rec: &recorder{}}
	mapper, err := NewMapper(MappingConfig{OnSample: in.rec.add}, in.store)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := NewLimiter(lc, mapper)
	if err != nil {
		t.Fatal(err)
	}
	recv, err := NewOTLPReceiver(oc, lim)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/metrics", recv)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	in.httpURL = srv.URL + "/v1/metrics"

	gs := grpc.NewServer(recv.GRPCServerOptions()...)
	recv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	in.grpcAddr = ln.Addr().String()
	return in
}

// instrumented is an application instrumented with the OpenTelemetry SDK,
// exporting with exp; flush sends what was recorded.
type instrumented struct {
	mp       *sdkmetric.MeterProvider
	memory   metric.Int64Gauge
	requests metric.Int64Counter
	latency  metric.Float64Histogram
}

func newInstrumented(t *testing.T, exp sdkmetric.Exporter) *instrumented {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", "orders"), attribute.String("service.instance.id", "orders-1"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m := mp.Meter("phoenix-test")
	app := &instrumented{mp: mp}
	var err error
	if app.memory, err = m.Int64Gauge("process.resident_memory", metric.WithUnit("By")); err != nil {
		t.Fatal(err)
	}
	if app.requests, err = m.Int64Counter("http.requests"); err != nil {
		t.Fatal(err)
	}
	if app.latency, err = m.Float64Histogram("http.request.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.01, 0.1, 1)); err != nil {
		t.Fatal(err)
	}
	return app
}

func (a *instrumented) flush(t *testing.T) {
	t.Helper()
	if err := a.mp.ForceFlush(context.Background()); err != nil {
		t.Fatalf("export: %v", err)
	}
}

func TestOTLPFromSDKExporters(t *testing.T) {
	for _, tc := range []struct {
		name string
		exp  func(in *otlpIngestion) (sdkmetric.Exporter, error)
	}{
		{"http protobuf", func(in *otlpIngestion) (sdkmetric.Exporter, error) {
			return otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(in.httpURL))
		}},
		{"http gzip", func(in *otlpIngestion) (sdkmetric.Exporter, error) {
			return otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(in.httpURL), otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
		}},
		{"grpc", func(in *otlpIngestion) (sdkmetric.Exporter, error) {
			return otlpmetricgrpc.New(context.Background(), otlpmetricgrpc.WithEndpoint(in.grpcAddr), otlpmetricgrpc.WithInsecure())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newOTLPIngestion(t, LimitsConfig{}, OTLPConfig{})
			exp, err := tc.exp(in)
			if err != nil {
				t.Fatal(err)
			}
			app := newInstrumented(t, exp)
			ctx := context.Background()
			app.memory.Record(ctx, 5e6)
			app.requests.Add(ctx, 10, metric.WithAttributes(attribute.String("code", "200")))
			app.latency.Record(ctx, 0.05)
			app.flush(t)
			smp, idx := in.rec.waitSample(t, 0, "memory from the SDK", has(phoenix.SignalMemory))
			if smp.Target != (Target{Component: "orders", Environment: phoenix.Primary}) || smp.Values[phoenix.SignalMemory] != 5e6 {
				t.Errorf("component view: %+v, want orders memory 5e6", smp)
			}
			mem := seriesPoints(t, in.store, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "process_resident_memory_bytes"))
			want := `{__name__="process_resident_memory_bytes", instance="orders-1", job="orders"}`
			if pts := mem[want]; len(pts) != 1 || pts[0].V != 5e6 {
				t.Errorf("stored %v, want %s = 5e6", mem, want)
			}
			// A second export gives rates and the latency quantile. The
			// SDK stamps points in whole nanoseconds; wait for the store's
			// millisecond to move on.
			time.Sleep(2 * time.Millisecond)
			app.requests.Add(ctx, 30, metric.WithAttributes(attribute.String("code", "200")))
			for range 100 {
				app.latency.Record(ctx, 0.5)
			}
			app.flush(t)
			smp, _ = in.rec.waitSample(t, idx+1, "a request rate and latency", func(s Sample) bool {
				return has(phoenix.SignalRate)(s) && has(phoenix.SignalLatency)(s)
			})
			if l := smp.Values[phoenix.SignalLatency]; l <= 0.1 || l > 1 {
				t.Errorf("latency p99 %v, want in (0.1, 1]", l)
			}
			if r := smp.Values[phoenix.SignalRate]; !(r > 0) {
				t.Errorf("request rate %v, want > 0", r)
			}
		})
	}
}

// otlpBody is an export request with one gauge point of orders at t.
func otlpBody(t *testing.T, at time.Time, v float64, json bool) []byte {
	t.Helper()
	b, err := otlpBodyBytes(at, v, json)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func otlpBodyBytes(at time.Time, v float64, json bool) ([]byte, error) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "orders")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue.depth")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(v)
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	if json {
		return req.MarshalJSON()
	}
	return req.MarshalProto()
}

func postOTLP(t *testing.T, url, ctype string, body []byte, tenant string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if tenant != "" {
		req.Header.Set(DefaultTenantHeader, tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func TestOTLPHTTPResponses(t *testing.T) {
	now := time.Now()
	proto, json := "application/x-protobuf", "application/json"
	cases := []struct {
		name       string
		limits     LimitsConfig
		before     []byte
		ctype      string
		body       []byte
		tenant     string
		status     int
		reason     string // in the body (a google.rpc.Status or the partial success)
		retryAfter string
		stored     int // samples of queue_depth in the end
	}{
		{name: "protobuf", ctype: proto, body: otlpBody(t, now, 3, false), status: 200, stored: 1},
		{name: "json", ctype: json, body: otlpBody(t, now, 3, true), status: 200, stored: 1},
		{name: "tenant", ctype: proto, body: otlpBody(t, now, 3, false), tenant: "team-a", status: 200, stored: 1},
		{name: "content type", ctype: "text/plain", body: otlpBody(t, now, 3, false), status: 415, reason: "application/x-protobuf"},
		{name: "malformed protobuf", ctype: proto, body: []byte("\x0a\xff\xff\xff\xff\x0f"), status: 400, reason: "decode OTLP metrics request"},
		{name: "malformed json", ctype: json, body: []byte(`{"resourceMetrics": [`), status: 400, reason: "decode OTLP metrics request"},
		{name: "too large", ctype: proto, body: make([]byte, 5000), status: 413, reason: "larger than 4096 bytes"},
		{name: "bad tenant", ctype: proto, body: otlpBody(t, now, 3, false), tenant: "a b", status: 400, reason: "X-Scope-OrgID"},
		{name: "out of order point is a partial success", before: otlpBody(t, now, 1, false), ctype: proto, body: otlpBody(t, now.Add(-time.Minute), 2, false),
			status: 200, reason: "out of order", stored: 1},
		{name: "rate limit", limits: LimitsConfig{SamplesPerSecond: 0.1, Burst: 1}, before: otlpBody(t, now, 1, false), ctype: proto, body: otlpBody(t, now.Add(time.Second), 2, false),
			status: 429, reason: "rate limit", retryAfter: "10", stored: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := newOTLPIngestion(t, tc.limits, OTLPConfig{MaxBodyBytes: 4096})
			if tc.before != nil {
				if resp, body := postOTLP(t, in.httpURL, proto, tc.before, ""); resp.StatusCode != 200 {
					t.Fatalf("first request: %s %q", resp.Status, body)
				}
			}
			resp, body := postOTLP(t, in.httpURL, tc.ctype, tc.body, tc.tenant)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.reason) {
				t.Errorf("got %s %q, want %d with %q", resp.Status, body, tc.status, tc.reason)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if resp.StatusCode == 200 && tc.ctype == json && !strings.HasPrefix(resp.Header.Get("Content-Type"), json) {
				t.Errorf("answer to JSON in %q", resp.Header.Get("Content-Type"))
			}
			stored := 0
			for ls, pts := range seriesPoints(t, in.store, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "queue_depth")) {
				stored += len(pts)
				if tc.tenant != "" && !strings.Contains(ls, `tenant="`+tc.tenant+`"`) {
					t.Errorf("series %s lacks the tenant label", ls)
				}
			}
			if stored != tc.stored {
				t.Errorf("%d samples stored, want %d", stored, tc.stored)
			}
		})
	}
}

func TestOTLPGRPCRefusals(t *testing.T) {
	in := newOTLPIngestion(t, LimitsConfig{SamplesPerSecond: 0.5, Burst: 1}, OTLPConfig{MaxBodyBytes: 4096})
	conn, err := grpc.NewClient(in.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pmetricotlp.NewGRPCClient(conn)
	req := func(at time.Time) pmetricotlp.ExportRequest {
		r := pmetricotlp.NewExportRequest()
		if err := r.UnmarshalProto(otlpBody(t, at, 1, false)); err != nil {
			t.Fatal(err)
		}
		return r
	}
	now := time.Now()
	if _, err := client.Export(context.Background(), req(now)); err != nil {
		t.Fatalf("first export: %v", err)
	}
	_, err = client.Export(context.Background(), req(now.Add(time.Second)))
	st := grpcstatus.Convert(err)
	var retry *errdetails.RetryInfo
	d := func(ri *errdetails.RetryInfo) time.Duration { return ri.GetRetryDelay().AsDuration() }
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if st.Code() != codes.ResourceExhausted || retry == nil || d(retry) <= time.Second || d(retry) > 2*time.Second {
		t.Errorf("over the rate: %v with retry info %v, want RESOURCE_EXHAUSTED with a delay of about 2s", st, retry)
	}
	ctx := grpcmetadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "bad tenant")
	if _, err := client.Export(ctx, req(now)); grpcstatus.Code(err) != codes.InvalidArgument {
		t.Errorf("bad tenant: %v, want INVALID_ARGUMENT", err)
	}
	big := pmetricotlp.NewExportRequest()
	big.Metrics().ResourceMetrics().AppendEmpty().Resource().Attributes().PutStr("pad", strings.Repeat("x", 5000))
	if _, err := client.Export(context.Background(), big); grpcstatus.Code(err) != codes.ResourceExhausted {
		t.Errorf("too large: %v, want RESOURCE_EXHAUSTED", err)
	}
}
