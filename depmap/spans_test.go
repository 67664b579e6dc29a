package depmap

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// postTraces sends td to an OTLP/HTTP receiver as protobuf, as an exporter would.
func postTraces(t *testing.T, url string, td ptrace.Traces) {
	t.Helper()
	if err := sendTraces(url, td); err != nil {
		t.Fatal(err)
	}
}

func sendTraces(url string, td ptrace.Traces) error {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return err
	}
	resp, err := http.Post(url+"/v1/traces", contentTypeProto, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /v1/traces: %s", resp.Status)
	}
	return nil
}

func TestOutOfOrderAcrossRequests(t *testing.T) {
	g := newTestGraph(t, Options{})
	srv := httptest.NewServer(NewOTLPHandler(g, HandlerOptions{}))
	defer srv.Close()

	// The deepest spans end, and so are exported, first.
	postTraces(t, srv.URL, traces(span{service: "inventory", trace: 9, id: 3, parent: 2, failed: true}))
	postTraces(t, srv.URL, traces(span{service: "orders", trace: 9, id: 2, parent: 1}))
	if got := pairs(g.Edges()); !cmp.Equal(got, []string{"orders->inventory"}) {
		t.Fatalf("edges before the root arrived = %v, want [orders->inventory]", got)
	}
	if s := g.Stats(); s.Pending != 1 {
		t.Errorf("pending = %d, want 1 (orders waits for gateway)", s.Pending)
	}
	postTraces(t, srv.URL, traces(span{service: "gateway", trace: 9, id: 1}))

	want := []Edge{
		{From: "gateway", To: "orders", Calls: 1, Sources: []string{SourceTrace}},
		{From: "orders", To: "inventory", Calls: 1, Errors: 1, Sources: []string{SourceTrace}},
	}
	if diff := cmp.Diff(want, g.Edges(), cmpIgnoreLastSeen); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if s := g.Stats(); s.Pending != 0 || s.Orphans != 0 || s.Spans != 3 {
		t.Errorf("stats = %+v, want 3 spans, none pending or orphaned", s)
	}
}

// cmpIgnoreLastSeen ignores the time-dependent fields of Edge, and
// cmpIgnoreMeasured the measured ones only; window_test.go checks those.
var (
	cmpIgnoreLastSeen = cmp.FilterPath(func(p cmp.Path) bool {
		switch p.Last().String() {
		case ".LastSeen", ".Rate", ".ErrorRate", ".P50", ".P95", ".P99":
			return true
		}
		return false
	}, cmp.Ignore())
	cmpIgnoreMeasured = cmp.FilterPath(func(p cmp.Path) bool {
		switch p.Last().String() {
		case ".Rate", ".ErrorRate", ".P50", ".P95", ".P99":
			return true
		}
		return false
	}, cmp.Ignore())
)

func TestChildAfterParent(t *testing.T) {
	g := newTestGraph(t, Options{})
	g.AddTraces(traces(span{service: "gateway", trace: 1, id: 1}))
	g.AddTraces(traces(span{service: "orders", trace: 1, id: 2, parent: 1}))
	g.AddTraces(traces(span{service: "orders", trace: 1, id: 3, parent: 2})) // same service: no edge
	if got := pairs(g.Edges()); !cmp.Equal(got, []string{"gateway->orders"}) {
		t.Errorf("edges = %v", got)
	}
}

func TestSpanIDsAreScopedToTraces(t *testing.T) {
	g := newTestGraph(t, Options{})
	g.AddTraces(traces(span{service: "gateway", trace: 1, id: 1}))
	// Same parent span id, other trace: must not pair with trace 1's span.
	g.AddTraces(traces(span{service: "orders", trace: 2, id: 2, parent: 1}))
	if got := g.Edges(); len(got) != 0 {
		t.Errorf("edges = %v, want none", pairs(got))
	}
}

func TestOrphans(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{PendingTTL: 30 * time.Second, Now: clk.Now})
	g.AddTraces(traces(
		span{service: "orders", trace: 1, id: 2, parent: 1},
		span{service: "inventory", trace: 1, id: 4, parent: 3},
	))
	clk.Advance(29 * time.Second)
	if s := g.Stats(); s.Orphans != 0 || s.Pending != 2 {
		t.Fatalf("at 29s: %+v, want 2 pending, 0 orphans", s)
	}
	g.AddTraces(traces(span{service: "gateway", trace: 1, id: 1})) // in time for orders
	clk.Advance(time.Second)
	s := g.Stats()
	if s.Orphans != 1 || s.Pending != 0 {
		t.Errorf("at 30s: %+v, want 1 orphan, 0 pending", s)
	}
	// The parent arriving after expiry makes no edge: the child is gone.
	g.AddTraces(traces(span{service: "orders", trace: 1, id: 3}))
	if got := pairs(g.Edges()); !cmp.Equal(got, []string{"gateway->orders"}) {
		t.Errorf("edges = %v, want only gateway->orders", got)
	}
}

func TestIndexExpiry(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{IndexTTL: 10 * time.Second, PendingTTL: 5 * time.Second, Now: clk.Now})
	g.AddTraces(traces(span{service: "gateway", trace: 1, id: 1}))
	clk.Advance(10 * time.Second) // gateway's span is forgotten
	g.AddTraces(traces(span{service: "orders", trace: 1, id: 2, parent: 1}))
	clk.Advance(5 * time.Second)
	if s := g.Stats(); s.Orphans != 1 || s.Indexed != 1 {
		t.Errorf("stats = %+v, want 1 orphan and only orders' span indexed", s)
	}
	if got := g.Edges(); len(got) != 0 {
		t.Errorf("edges = %v, want none", pairs(got))
	}
}

func TestSkippedSpans(t *testing.T) {
	g := newTestGraph(t, Options{})
	taken := g.AddTraces(traces(
		span{service: "gateway", trace: 1, id: 1},
		span{service: "%%", trace: 1, id: 2, parent: 1},          // no usable name
		span{service: "inventory", trace: 1, id: 3, parent: 2},   // parent known, not a component
		span{trace: 1, id: 4, parent: 1},                         // no service.name
		span{serviceNotStr: true, trace: 1, id: 5, parent: 1},    // service.name not a string
		span{service: "billing", trace: 1, id: 6, parent: 4},     // parent without service
		span{service: "gateway", trace: 0, id: 7},                // empty trace id
		span{service: "gateway", trace: 1, id: 0},                // empty span id
		span{service: "gateway", trace: 1, id: 1},                // duplicate (exporter retry)
		span{service: "inventory", trace: 1, id: 8, parent: 1},   // real edge
		span{service: "inventory", trace: 1, id: 8, parent: 1},   // duplicate, not counted twice
		span{service: "inventory", trace: 1, id: 9, parent: 999}, // waits
	))
	if taken != 5 {
		t.Errorf("taken = %d, want 5", taken)
	}
	want := Stats{Spans: 5, NoService: 2, InvalidService: 1, InvalidSpan: 2, Duplicates: 2, Pending: 1, Indexed: 8, Edges: 1}
	if diff := cmp.Diff(want, g.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Edge{{From: "gateway", To: "inventory", Calls: 1, Sources: []string{SourceTrace}}}, g.Edges(), cmpIgnoreLastSeen); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
}

func TestPendingBound(t *testing.T) {
	g := newTestGraph(t, Options{MaxPending: 3})
	for i := uint64(1); i <= 5; i++ {
		g.AddTraces(traces(span{service: "orders", trace: i, id: 100 + i, parent: i}))
	}
	if s := g.Stats(); s.Pending != 3 || s.PendingEvicted != 2 {
		t.Fatalf("stats = %+v, want 3 pending, 2 evicted", s)
	}
	// The two oldest were evicted: their parents make no edge; the newest do.
	g.AddTraces(traces(span{service: "gateway", trace: 1, id: 1}, span{service: "gateway", trace: 2, id: 2}))
	if got := g.Edges(); len(got) != 0 {
		t.Fatalf("edges from evicted children: %v", pairs(got))
	}
	g.AddTraces(traces(span{service: "gateway", trace: 5, id: 5}))
	if got := g.Edges(); len(got) != 1 || got[0].Calls != 1 {
		t.Errorf("edges = %+v, want gateway->orders with 1 call", got)
	}
}

func TestPendingQueueStaysBounded(t *testing.T) {
	g := newTestGraph(t, Options{MaxPending: 10})
	// Each child waits, then its parent adopts it: the queue item goes stale.
	for i := uint64(1); i <= 5000; i++ {
		g.AddTraces(traces(
			span{service: "orders", trace: i, id: 2, parent: 1},
			span{service: "gateway", trace: i, id: 1},
		))
	}
	g.mu.Lock()
	qlen := g.spans.pendingQ.len()
	g.mu.Unlock()
	if limit := 2*10 + 1024 + 1; qlen > limit {
		t.Errorf("pending queue holds %d items, want at most %d", qlen, limit)
	}
	if e := g.Edges(); len(e) != 1 || e[0].Calls != 5000 {
		t.Errorf("edges = %+v, want gateway->orders with 5000 calls", e)
	}
	if s := g.Stats(); s.PendingEvicted != 0 {
		t.Errorf("evicted %d, want 0", s.PendingEvicted)
	}
}

func TestIndexBound(t *testing.T) {
	g := newTestGraph(t, Options{MaxIndex: 2})
	g.AddTraces(traces(
		span{service: "gateway", trace: 1, id: 1},
		span{service: "gateway", trace: 2, id: 1},
		span{service: "gateway", trace: 3, id: 1},
	))
	if s := g.Stats(); s.Indexed != 2 || s.IndexEvicted != 1 {
		t.Fatalf("stats = %+v, want 2 indexed, 1 evicted", s)
	}
	// Each new span evicts the oldest: trace 3's parent is still known when
	// its child arrives (evicting trace 2's); trace 1's was forgotten.
	g.AddTraces(traces(
		span{service: "orders", trace: 3, id: 2, parent: 1},
		span{service: "orders", trace: 1, id: 2, parent: 1},
	))
	if e := g.Edges(); len(e) != 1 || e[0].Calls != 1 {
		t.Errorf("edges = %+v, want gateway->orders with 1 call", e)
	}
	if s := g.Stats(); s.Pending != 1 || s.IndexEvicted != 3 {
		t.Errorf("stats = %+v, want trace 1's child pending and 3 evicted", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	g := newTestGraph(t, Options{})
	srv := httptest.NewServer(NewOTLPHandler(g, HandlerOptions{}))
	defer srv.Close()
	const writers, perWriter = 4, 50
	var wg sync.WaitGroup
	for w := range uint64(writers) {
		wg.Go(func() {
			for i := range uint64(perWriter) {
				trace := w*1000 + i + 1
				// Child and parent in separate requests, child first.
				for _, td := range []ptrace.Traces{
					traces(span{service: "orders", trace: trace, id: 2, parent: 1}),
					traces(span{service: "gateway", trace: trace, id: 1}),
				} {
					if err := sendTraces(srv.URL, td); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() { // a reader racing the writers
		for range 200 {
			g.Closure("gateway")
			g.Dependents("orders")
			g.Stats()
		}
	})
	wg.Wait()
	if e := g.Edges(); len(e) != 1 || e[0].Calls != writers*perWriter {
		t.Errorf("edges = %+v, want gateway->orders with %d calls", e, writers*perWriter)
	}
}
