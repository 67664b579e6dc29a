package depmap

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/phoenixsre/phoenix/depmap/depmaptest"
)

// BenchmarkAddTraces feeds batches of 100 requests through
// gateway -> orders -> inventory (5 spans each, deepest service first, as
// spans end) and reports spans per second. The trace id changes every batch
// so that no span is a duplicate.
func BenchmarkAddTraces(b *testing.B) {
	const requests = 100
	type link struct{ id, parent uint64 } // within one request; 0 is no parent
	shop := []struct {
		service string
		spans   []link
	}{
		{"inventory", []link{{5, 4}}},       // server
		{"orders", []link{{3, 2}, {4, 3}}},  // server, client
		{"gateway", []link{{1, 0}, {2, 1}}}, // server, client
	}
	td := ptrace.NewTraces()
	var all []ptrace.Span
	for _, svc := range shop {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc.service)
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for r := range uint64(requests) {
			for _, l := range svc.spans {
				sp := ss.AppendEmpty()
				sp.SetSpanID(spanID(r<<8 | l.id))
				if l.parent != 0 {
					sp.SetParentSpanID(spanID(r<<8 | l.parent))
				}
				all = append(all, sp)
			}
		}
	}

	g := newTestGraph(b, Options{})
	b.ReportAllocs()
	var tid [16]byte
	for n := uint64(1); b.Loop(); n++ {
		binary.BigEndian.PutUint64(tid[:8], n)
		for _, sp := range all {
			sp.SetTraceID(pcommon.TraceID(tid))
		}
		if got := g.AddTraces(td); got != len(all) {
			b.Fatalf("took %d spans, want %d", got, len(all))
		}
	}
	b.ReportMetric(float64(b.N*len(all))/b.Elapsed().Seconds(), "spans/s")
	if s := g.Stats(); s.Orphans != 0 || s.Pending != 0 || s.Edges != 2 {
		b.Fatalf("stats %+v, want 2 edges and nothing pending", s)
	}
}

// BenchmarkOTLPHandler decodes and ingests the generated shop's export
// requests (512 spans each) through the OTLP/HTTP handler, without the
// network, and reports spans per second.
func BenchmarkOTLPHandler(b *testing.B) {
	batches, _ := depmaptest.Shop(depmaptest.Options{Seed: 1, Requests: 4000, BatchSpans: 512, DropOrders: 0.05, Shuffle: 2})
	var bodies [][]byte
	spans := 0
	for _, td := range batches {
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
		spans += td.SpanCount()
	}
	b.ReportAllocs()
	for b.Loop() {
		// A fresh graph per pass over the stream, so that no span is a duplicate.
		b.StopTimer()
		h := NewOTLPHandler(newTestGraph(b, Options{}), HandlerOptions{})
		b.StartTimer()
		for _, body := range bodies {
			req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(body))
			req.Header.Set("Content-Type", contentTypeProto)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	}
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}
