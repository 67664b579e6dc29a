package depmap

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// otelSpan describes a test span with a kind and attributes.
type otelSpan struct {
	span
	kind  ptrace.SpanKind
	attrs map[string]string
}

func otelTraces(spans ...otelSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		one := traces(s.span)
		sp := one.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		sp.SetKind(s.kind)
		for k, v := range s.attrs {
			sp.Attributes().PutStr(k, v)
		}
		one.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	return td
}

// TestPeers checks the virtual nodes: a database at once, an unanswered
// client call once its span retires, no virtual node for a call another
// service answered, a sampled-out answer credited to the service that
// answered that address before, and an address several services answer to
// (one host, "localhost") dropped rather than guessed.
func TestPeers(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{Now: clk.Now, IndexTTL: 10 * time.Second, PendingTTL: 10 * time.Second})
	client := ptrace.SpanKindClient
	server := ptrace.SpanKindServer
	g.AddTraces(otelTraces(
		otelSpan{span{service: "orders", trace: 1, id: 1}, server, nil},
		otelSpan{span{service: "orders", trace: 1, id: 2, parent: 1}, client, map[string]string{"db.system": "postgresql", "server.address": "orders-db"}},
		otelSpan{span{service: "orders", trace: 1, id: 3, parent: 1}, client, map[string]string{"server.address": "api.stripe.com"}},
		otelSpan{span{service: "orders", trace: 1, id: 4, parent: 1}, client, map[string]string{"server.address": "inventory.internal"}},
		otelSpan{span{service: "inventory", trace: 1, id: 5, parent: 4}, server, nil},
		otelSpan{span{service: "orders", trace: 1, id: 6, parent: 1}, client, map[string]string{"server.address": "localhost"}},
		otelSpan{span{service: "billing", trace: 1, id: 7, parent: 6}, server, nil},
		otelSpan{span{service: "orders", trace: 1, id: 8, parent: 1}, client, map[string]string{"server.address": "localhost"}},
		otelSpan{span{service: "mailer", trace: 1, id: 9, parent: 8}, server, nil},
	))
	if got := arrows(g.Edges()); !cmp.Equal(got, []string{"orders->billing", "orders->inventory", "orders->mailer", "orders->orders-db"}) {
		t.Errorf("before retirement: %v", got)
	}
	// Trace 2: inventory and localhost answers were sampled out.
	g.AddTraces(otelTraces(
		otelSpan{span{service: "orders", trace: 2, id: 1}, server, nil},
		otelSpan{span{service: "orders", trace: 2, id: 2, parent: 1}, client, map[string]string{"server.address": "inventory.internal"}},
		otelSpan{span{service: "orders", trace: 2, id: 3, parent: 1}, client, map[string]string{"server.address": "localhost"}},
	))
	clk.Advance(10 * time.Second)
	want := []string{"orders->api.stripe.com", "orders->billing", "orders->inventory", "orders->mailer", "orders->orders-db"}
	edges := g.Edges()
	if got := arrows(edges); !cmp.Equal(got, want) {
		t.Errorf("after retirement: %v, want %v", got, want)
	}
	if e := edges[2]; e.Calls != 2 {
		t.Errorf("orders -> inventory: %d calls, want 2 (one answered, one credited by address)", e.Calls)
	}
	s := g.Stats()
	if s.PeerAmbiguous != 1 || s.PeerCalls != 2 {
		t.Errorf("stats %+v, want 1 ambiguous (localhost), 2 peer calls (db, stripe)", s)
	}
	kinds := map[string]NodeKind{}
	for _, n := range g.Snapshot().Nodes {
		kinds[string(n.Name)] = n.Kind
	}
	if kinds["orders-db"] != NodeDatabase || kinds["api.stripe.com"] != NodeExternal || kinds["inventory"] != NodeService {
		t.Errorf("node kinds %v", kinds)
	}
}

// TestMissingKind checks Jaeger's rule: spans without a kind still make an
// edge wherever the child's service differs from its parent's.
func TestMissingKind(t *testing.T) {
	g := newTestGraph(t, Options{})
	none := ptrace.SpanKindUnspecified
	g.AddTraces(otelTraces(
		otelSpan{span{service: "inventory", trace: 1, id: 3, parent: 2, failed: true}, none, nil},
		otelSpan{span{service: "api", trace: 1, id: 2, parent: 1}, none, map[string]string{"peer.service": "inventory"}},
		otelSpan{span{service: "api", trace: 1, id: 1}, none, nil},
	))
	want := []Edge{{From: "api", To: "inventory", Calls: 1, Errors: 1, Sources: []string{SourceTrace}}}
	if diff := cmp.Diff(want, g.Edges(), cmpIgnoreLastSeen); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
}

// TestZipkinArrivalOrder feeds real traces with shared spans one span at a
// time in many orders: edges and call counts must not depend on the order.
func TestZipkinArrivalOrder(t *testing.T) {
	for _, file := range []string{"skew.json", "ascend.json", "messaging.json", "yelp.json"} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(zipkinData(t), file))
			if err != nil {
				t.Fatal(err)
			}
			var spans []*model.SpanModel
			if err := json.Unmarshal(b, &spans); err != nil {
				t.Fatal(err)
			}
			run := func(order []int) []string {
				clk := newClock()
				g := newTestGraph(t, Options{Now: clk.Now})
				for _, i := range order {
					g.AddZipkinSpans(spans[i : i+1])
					clk.Advance(time.Millisecond)
				}
				clk.Advance(DefaultIndexTTL + DefaultPendingTTL)
				var out []string
				for _, e := range g.Edges() {
					out = append(out, fmt.Sprintf("%s->%s async=%v calls=%d errors=%d", e.From, e.To, e.Async, e.Calls, e.Errors))
				}
				return out
			}
			order := make([]int, len(spans))
			for i := range order {
				order[i] = i
			}
			want := run(order)
			rng := rand.New(rand.NewPCG(1, 2))
			for range 200 {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				if got := run(order); !cmp.Equal(got, want) {
					t.Fatalf("order %v:\n%s", order, cmp.Diff(want, got))
				}
			}
		})
	}
}

// TestBounds feeds spans that never pair, each from a new service with a
// new peer, and checks that every set stays within its bound.
func TestBounds(t *testing.T) {
	const maxIndex, maxPending, maxEdges = 500, 300, 100
	g := newTestGraph(t, Options{MaxIndex: maxIndex, MaxPending: maxPending, MaxEdges: maxEdges})
	for i := range uint64(5000) {
		g.AddTraces(otelTraces(
			otelSpan{span{service: fmt.Sprintf("svc-%d", i), trace: i + 1, id: 2, parent: 1}, ptrace.SpanKindClient,
				map[string]string{"db.system": "redis", "server.address": fmt.Sprintf("cache-%d", i)}},
			otelSpan{span{service: fmt.Sprintf("svc-%d", i), trace: i + 1, id: 3, parent: 1}, ptrace.SpanKindClient,
				map[string]string{"peer.service": fmt.Sprintf("peer-%d", i)}},
		))
		if s := g.Stats(); s.Indexed > maxIndex || s.Pending > maxPending || s.Edges > maxEdges {
			t.Fatalf("after %d traces: %+v exceeds the bounds", i+1, s)
		}
	}
	g.mu.Lock()
	aliasN, internN := len(g.aliases.m), len(g.names.m)
	g.mu.Unlock()
	if aliasN > maxEdges || internN > maxInterned {
		t.Errorf("%d aliases, %d interned names: over their bounds", aliasN, internN)
	}
	if s := g.Stats(); s.EdgesRefused == 0 || s.PendingEvicted == 0 || s.IndexEvicted == 0 {
		t.Errorf("stats %+v: the bounds were not reached", s)
	}
}
