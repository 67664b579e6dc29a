package main

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/phoenixsre/phoenix/depmap"
)

// memResult is the heap of a graph under the worst input.
type memResult struct {
	opts      depmap.Options
	spans     int
	maxHeapMB float64
	stats     depmap.Stats
}

// worstCaseMemory feeds spans built to fill every bounded set with the
// longest names: each request is a client span of a 64-character service
// whose parent never comes (pending) naming a new peer (a deferred virtual
// node: indexed with its peer), answered by a server span of another
// 64-character service (an edge with latencies, in windows that keep
// rotating, and a learnt alias), plus a database call to a new address (a
// new edge, refused once the graph is full), plus a span of one trace whose
// parent never comes, so that one parent has a great many waiting
// children. The clock moves 100 µs per request, 40,000 spans per
// second: fast enough for the index and the waiting set to fill within
// their TTLs, slow enough for the rate windows to rotate (so that edges
// hold both their histograms) within the run. It reports the largest heap
// in use after a collection.
func worstCaseMemory(spans int, o depmap.Options) (*memResult, error) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	g, err := depmap.NewGraph(o)
	if err != nil {
		return nil, err
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	res := &memResult{opts: o}
	const perBatch = 1000 // requests, 4 spans each
	pad := func(prefix string, i int) string {
		s := fmt.Sprintf("%s-%d-", prefix, i)
		return s + strings.Repeat("x", 64-len(s))
	}
	for req := 0; res.spans < spans; {
		td := ptrace.NewTraces()
		for range perBatch {
			req++
			var tid pcommon.TraceID
			binary.BigEndian.PutUint64(tid[8:], uint64(req))
			add := func(service string, id, parent uint64, kind ptrace.SpanKind, attrs ...string) {
				rs := td.ResourceSpans().AppendEmpty()
				rs.Resource().Attributes().PutStr("service.name", service)
				sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
				sp.SetTraceID(tid)
				var sid, pid pcommon.SpanID
				binary.BigEndian.PutUint64(sid[:], id)
				binary.BigEndian.PutUint64(pid[:], parent)
				sp.SetSpanID(sid)
				sp.SetParentSpanID(pid)
				sp.SetKind(kind)
				sp.SetStartTimestamp(1_000_000)
				sp.SetEndTimestamp(pcommon.Timestamp(1_000_000 + 1000*uint64(req%100000)))
				for i := 0; i+1 < len(attrs); i += 2 {
					sp.Attributes().PutStr(attrs[i], attrs[i+1])
				}
			}
			edge := req % (2 * max(o.MaxEdges, depmap.DefaultMaxEdges))
			add(pad("client", edge), 2, 1, ptrace.SpanKindClient, "peer.service", pad("peer", req))
			add(pad("server", edge), 3, 2, ptrace.SpanKindServer)
			add(pad("client", edge), 4, 1, ptrace.SpanKindClient, "db.system", "redis", "server.address", pad("db", req))
			// Children of one parent that never comes, all in one trace.
			tid = pcommon.TraceID{0xff}
			add(pad("client", edge), uint64(req)+100, 1, ptrace.SpanKindServer)
			now.Add(int64(100 * time.Microsecond))
		}
		res.spans += g.AddTraces(td)
		if req%(50*perBatch) == 0 || res.spans >= spans {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			res.maxHeapMB = max(res.maxHeapMB, float64(int64(m.HeapInuse)-int64(base.HeapInuse))/1e6)
		}
	}
	res.stats = g.Stats()
	runtime.KeepAlive(g)
	return res, nil
}

func (m *memResult) print() {
	fmt.Println("## Memory under the worst input")
	fmt.Println()
	fmt.Printf("%d spans, every bounded set full (indexed %d of %d, waiting %d of %d, edges %d of %d; evicted %d + %d, edges refused %d)\n\n",
		m.spans, m.stats.Indexed, cmp.Or(m.opts.MaxIndex, depmap.DefaultMaxIndex), m.stats.Pending, cmp.Or(m.opts.MaxPending, depmap.DefaultMaxPending),
		m.stats.Edges, cmp.Or(m.opts.MaxEdges, depmap.DefaultMaxEdges),
		m.stats.IndexEvicted, m.stats.PendingEvicted, m.stats.EdgesRefused)
	fmt.Printf("largest heap in use beyond the start: %.1f MB (the stated bound with the defaults: %d MB)\n", m.maxHeapMB, statedBoundMB)
}

// statedBoundMB is the bound depmap.Options documents for the defaults.
const statedBoundMB = 128
