package shop

import (
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	s := startShop(t, nil)
	if code, _ := do(t, http.MethodPut, s.gateway.url+"/orders/m1", "v"); code != 204 {
		t.Fatalf("PUT = %d", code)
	}
	do(t, http.MethodGet, s.gateway.url+"/orders/m1", "")
	routes := map[*proc]string{s.gateway: "PUT /orders/{id}", s.orders: "PUT /orders/{id}", s.inventory: "GET /stock/{sku}"}
	for p, route := range routes {
		fams := scrape(t, p.url)
		for _, name := range []string{
			"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines",
			"http_requests_total", "http_request_errors_total", "http_request_duration_seconds", "shop_disk_used_bytes",
		} {
			if _, ok := fams[name]; !ok {
				t.Errorf("%s /metrics lacks %s", p.name, name)
			}
		}
		if v, ok := metricValue(fams, "http_requests_total", "route", route); !ok || v < 1 {
			t.Errorf("%s http_requests_total{route=%q} = %v, %v", p.name, route, v, ok)
		}
		var bounds []float64
		for _, b := range fams["http_request_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				bounds = append(bounds, b.GetUpperBound())
			}
		}
		if len(bounds) < 2 || bounds[0] != 0.001 || bounds[len(bounds)-1] != 10 {
			t.Errorf("%s duration buckets %v, want 1ms..10s", p.name, bounds)
		}
	}
	if v := scrapeValue(t, s.orders.url, "shop_disk_used_bytes"); v <= 0 {
		t.Errorf("orders shop_disk_used_bytes = %v, want the log's size", v)
	}
	if v := scrapeValue(t, s.gateway.url, "shop_disk_used_bytes"); v != 0 {
		t.Errorf("gateway shop_disk_used_bytes = %v, want 0 without --data", v)
	}
}

// otlpSink is an OTLP/HTTP trace receiver.
type otlpSink struct {
	mu     sync.Mutex
	traces []ptrace.Traces
	auth   []string
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" {
		http.Error(w, "no such path", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := ptraceotlp.NewExportRequest()
	if strings.Contains(r.Header.Get("Content-Type"), "json") {
		err = req.UnmarshalJSON(b)
	} else {
		err = req.UnmarshalProto(b)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.traces = append(s.traces, req.Traces())
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
	resp, _ := ptraceotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// span is a received span with its resource's attributes.
type span struct {
	service, instance, environment string
	name                           string
	kind                           ptrace.SpanKind
	traceID                        pcommon.TraceID
	id, parent                     pcommon.SpanID
}

func (s *otlpSink) spans() []span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []span
	for _, td := range s.traces {
		for _, rs := range td.ResourceSpans().All() {
			attr := func(k string) string {
				v, _ := rs.Resource().Attributes().Get(k)
				return v.AsString()
			}
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					out = append(out, span{
						service: attr("service.name"), instance: attr("service.instance.id"), environment: attr("deployment.environment"),
						name: sp.Name(), kind: sp.Kind(), traceID: sp.TraceID(), id: sp.SpanID(), parent: sp.ParentSpanID(),
					})
				}
			}
		}
	}
	return out
}

func TestSpansReachOTLPLinkedInOneTrace(t *testing.T) {
	t.Parallel()
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	env := []string{"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer otlp-secret"}
	s := startShop(t, env, "--otlp", srv.URL, "--environment", "secondary")
	if code, body := do(t, http.MethodPut, s.gateway.url+"/orders/traced", "v"); code != 204 {
		t.Fatalf("PUT = %d %q", code, body)
	}
	for _, p := range []*proc{s.gateway, s.orders, s.inventory} {
		do(t, http.MethodGet, p.url+"/healthz", "")
		do(t, http.MethodGet, p.url+"/metrics", "")
	}
	// A graceful stop flushes the batched spans.
	s.gateway.stop()
	s.orders.stop()
	s.inventory.stop()

	spans := sink.spans()
	byID := map[pcommon.SpanID]span{}
	for _, sp := range spans {
		byID[sp.id] = sp
		if strings.Contains(sp.name, "healthz") || strings.Contains(sp.name, "metrics") || strings.Contains(sp.name, "admin") {
			t.Errorf("operational route traced: %+v", sp)
		}
		if sp.instance == "" || sp.environment != "secondary" {
			t.Errorf("span %q of %s lacks resource attributes: instance %q, environment %q", sp.name, sp.service, sp.instance, sp.environment)
		}
	}
	find := func(service string, kind ptrace.SpanKind) span {
		for _, sp := range spans {
			if sp.service == service && sp.kind == kind {
				return sp
			}
		}
		t.Fatalf("no %v span from %s among %d spans", kind, service, len(spans))
		return span{}
	}
	gwServer := find("gateway", ptrace.SpanKindServer)
	gwClient := find("gateway", ptrace.SpanKindClient)
	ordServer := find("orders", ptrace.SpanKindServer)
	ordClient := find("orders", ptrace.SpanKindClient)
	invServer := find("inventory", ptrace.SpanKindServer)
	for _, sp := range []span{gwClient, ordServer, ordClient, invServer} {
		if sp.traceID != gwServer.traceID {
			t.Errorf("%s %v span is in trace %v, want the gateway's %v", sp.service, sp.kind, sp.traceID, gwServer.traceID)
		}
	}
	links := []struct{ child, parent span }{{gwClient, gwServer}, {ordServer, gwClient}, {ordClient, ordServer}, {invServer, ordClient}}
	for _, l := range links {
		if l.child.parent != l.parent.id {
			t.Errorf("%s %v span's parent is %v (%q), want %s %v span %v", l.child.service, l.child.kind,
				l.child.parent, byID[l.child.parent].name, l.parent.service, l.parent.kind, l.parent.id)
		}
	}
	if gwServer.name != "PUT /orders/{id}" || invServer.name != "GET /stock/{sku}" {
		t.Errorf("server span names %q, %q; want the route patterns", gwServer.name, invServer.name)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, a := range sink.auth {
		if a != "Bearer otlp-secret" {
			t.Errorf("export carried Authorization %q, want the one from OTEL_EXPORTER_OTLP_HEADERS", a)
		}
	}
}
