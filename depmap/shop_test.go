package depmap

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestShopTraces runs gateway -> orders -> inventory as three real HTTP
// servers instrumented with otelhttp, each with its own tracer provider
// exporting over OTLP/HTTP (gzip protobuf, JSON, plain protobuf) to the
// receiver, and checks the graph that results.
func TestShopTraces(t *testing.T) {
	g := newTestGraph(t, Options{})
	var (
		mu   sync.Mutex
		seen = map[string]bool{} // content type + encoding of each export
	)
	otlp := NewOTLPHandler(g, HandlerOptions{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Content-Type")+" "+r.Header.Get("Content-Encoding")] = true
		mu.Unlock()
		otlp.ServeHTTP(w, r)
	}))
	t.Cleanup(receiver.Close) // after the providers' shutdown: cleanups run last-in first-out
	gatewayURL, providers := startShop(t, receiver.URL+"/v1/traces")

	for _, tc := range []struct {
		path   string
		status int
	}{{"/buy", http.StatusOK}, {"/buy?fail=1", http.StatusInternalServerError}} {
		resp, err := http.Get(gatewayURL + tc.path) // untraced client: gateway's span is the root
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("GET %s: %s, want %d", tc.path, resp.Status, tc.status)
		}
	}
	// Server spans end just after their response is written, so flush
	// until all 10 spans (5 per request) have arrived.
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Spans < 10 && time.Now().Before(deadline) {
		for _, tp := range providers {
			if err := tp.ForceFlush(t.Context()); err != nil {
				t.Fatalf("flush: %v", err)
			}
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}

	want := []Edge{
		{From: "gateway", To: "orders", Calls: 2, Errors: 1, Sources: []string{SourceTrace}},
		{From: "orders", To: "inventory", Calls: 2, Errors: 1, Sources: []string{SourceTrace}},
	}
	if diff := cmp.Diff(want, g.Edges(), cmpIgnoreLastSeen); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if s := g.Stats(); s.Spans != 10 || s.Pending != 0 || s.Orphans != 0 || s.Duplicates != 0 {
		t.Errorf("stats = %+v, want 10 spans, none pending", s)
	}
	mu.Lock()
	wantSeen := map[string]bool{"application/x-protobuf gzip": true, "application/json ": true, "application/x-protobuf ": true}
	if diff := cmp.Diff(wantSeen, seen); diff != "" {
		t.Errorf("exports seen (-want +got):\n%s", diff)
	}
	mu.Unlock()
	if got := g.Closure("gateway"); !cmp.Equal(got, ids("inventory", "orders")) {
		t.Errorf("Closure(gateway) = %v, want [inventory orders]", got)
	}
	if got := g.Closure("orders"); !cmp.Equal(got, ids("inventory")) {
		t.Errorf("Closure(orders) = %v, want [inventory]", got)
	}
	if got := g.Dependents("inventory"); !cmp.Equal(got, ids("orders")) {
		t.Errorf("Dependents(inventory) = %v, want [orders]", got)
	}
}

// startShop starts gateway -> orders -> inventory, each traced by its own
// provider exporting to endpoint (gateway: gzip protobuf, orders: JSON,
// inventory: protobuf). Inventory fails with 500 when the query has "fail";
// gateway and orders relay the status. It returns gateway's URL and the
// providers, deepest service first.
func startShop(t *testing.T, endpoint string) (string, []*sdktrace.TracerProvider) {
	newProvider := func(service string, opts ...otlptracehttp.Option) *sdktrace.TracerProvider {
		exp, err := otlptracehttp.New(t.Context(), append(opts, otlptracehttp.WithEndpointURL(endpoint))...)
		if err != nil {
			t.Fatalf("exporter for %s: %v", service, err)
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		)
		t.Cleanup(func() {
			if err := tp.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown %s provider: %v", service, err)
			}
		})
		return tp
	}
	prop := propagation.TraceContext{}
	serve := func(tp *sdktrace.TracerProvider, name string, h http.HandlerFunc) *httptest.Server {
		srv := httptest.NewServer(otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop)))
		t.Cleanup(srv.Close)
		return srv
	}
	// forward calls next with a client traced by tp and relays its answer.
	forward := func(tp *sdktrace.TracerProvider, next string) http.HandlerFunc {
		client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop))}
		return func(w http.ResponseWriter, r *http.Request) {
			req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, next+r.URL.RequestURI(), nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		}
	}

	inventoryTP := newProvider("inventory")
	ordersTP := newProvider("orders", otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
	gatewayTP := newProvider("gateway", otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	inventory := serve(inventoryTP, "inventory", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("fail") {
			http.Error(w, "stock database unreachable", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "3 left")
	})
	orders := serve(ordersTP, "orders", forward(ordersTP, inventory.URL))
	gateway := serve(gatewayTP, "gateway", forward(gatewayTP, orders.URL))
	return gateway.URL, []*sdktrace.TracerProvider{inventoryTP, ordersTP, gatewayTP}
}
