package depmap

import (
	"encoding/binary"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
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
