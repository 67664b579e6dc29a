package depmap

import (
	"context"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const testToken = "0123456789abcdef-test-token"

// startGRPCReceiver serves the OTLP/gRPC trace service for g on loopback
// and returns its address.
func startGRPCReceiver(t *testing.T, sink TraceSink) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	RegisterOTLPGRPC(s, sink, GRPCOptions{Token: testToken})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// TestOTLPGRPC has four services traced by the OpenTelemetry SDK export
// over OTLP/gRPC with the token: checkout calls payments (client and
// server spans across providers, the context passed as a propagator
// would), payments queries PostgreSQL, checkout publishes to Kafka and
// mailer consumes in a trace of its own linked to the publish span.
func TestOTLPGRPC(t *testing.T) {
	g := newTestGraph(t, Options{})
	addr := startGRPCReceiver(t, g)
	ctx := t.Context()
	provider := func(service string) *sdktrace.TracerProvider {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + testToken}))
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp
	}
	checkout, payments, mailer := provider("checkout"), provider("payments"), provider("mailer")

	for i := range 4 {
		root, rootSpan := checkout.Tracer("t").Start(ctx, "POST /checkout", trace.WithSpanKind(trace.SpanKindServer))
		cctx, call := checkout.Tracer("t").Start(root, "charge", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("peer.service", "payments-api"), attribute.String("server.address", "payments.internal")))
		// What a propagator does: payments continues the remote context.
		remote := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx))
		pctx, srv := payments.Tracer("t").Start(remote, "charge", trace.WithSpanKind(trace.SpanKindServer))
		_, q := payments.Tracer("t").Start(pctx, "INSERT", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("server.address", "pay-db")))
		q.End()
		if i == 0 {
			srv.SetStatus(codes.Error, "card declined")
		}
		srv.End()
		call.End()
		_, pub := checkout.Tracer("t").Start(root, "publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka")))
		pub.End()
		_, recv := mailer.Tracer("t").Start(ctx, "process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: pub.SpanContext()}),
			trace.WithAttributes(attribute.String("messaging.system", "kafka")))
		recv.End()
		rootSpan.End()
	}
	for _, tp := range []*sdktrace.TracerProvider{checkout, payments, mailer} {
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	want := []string{"checkout->kafka", "checkout->mailer=>", "checkout->payments", "mailer->kafka", "payments->pay-db"}
	edges := g.Edges()
	if diff := cmp.Diff(want, arrows(edges)); diff != "" {
		t.Fatalf("edges (-want +got):\n%s", diff)
	}
	if e := edges[2]; e.Calls != 4 || e.Errors != 1 || e.ErrorRate != 0.25 {
		t.Errorf("checkout -> payments: %d calls, %d errors, error rate %v; want 4, 1, 0.25", e.Calls, e.Errors, e.ErrorRate)
	}
	if got := g.Closure("checkout"); !cmp.Equal(got, ids("kafka", "pay-db", "payments")) {
		t.Errorf("Closure(checkout) = %v, want [kafka pay-db payments]: the consumer is not needed", got)
	}
}

// TestOTLPGRPCToken checks that an export without the right token is
// refused with Unauthenticated and changes nothing.
func TestOTLPGRPCToken(t *testing.T) {
	g := newTestGraph(t, Options{})
	addr := startGRPCReceiver(t, g)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, sp := tp.Tracer("t").Start(t.Context(), "x")
	sp.End()
	for _, headers := range []map[string]string{nil, {"authorization": "Bearer wrong"}} {
		exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithHeaders(headers), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		err = exp.ExportSpans(t.Context(), rec.Ended())
		if status.Code(err) != grpccodes.Unauthenticated {
			t.Errorf("headers %v: export error %v, want Unauthenticated", headers, err)
		}
		_ = exp.Shutdown(t.Context())
	}
	if s := g.Stats(); s.Spans != 0 {
		t.Errorf("%d spans taken without a token", s.Spans)
	}
}
