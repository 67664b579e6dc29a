package depmap

import (
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixsre/phoenix/depmap/depmaptest"
)

// TestShopTopology sends the generated shop (see depmaptest.ShopEdges for
// its topology: synchronous calls, a database, a cache, async messaging
// by parent and by link, an uninstrumented service, an external API, spans
// without a kind) through the OTLP/HTTP receiver, with head sampling, a
// service sampling on its own, and spans arriving out of order and late,
// and checks that the graph has every true edge and no other.
func TestShopTopology(t *testing.T) {
	for _, tc := range []struct {
		name     string
		o        depmaptest.Options
		perBatch time.Duration // clock time between two batches
		late     bool          // some spans arrive after PendingTTL
	}{
		{name: "in order", o: depmaptest.Options{Seed: 1, Requests: 300}, perBatch: 100 * time.Millisecond},
		{name: "sampled and out of order", o: depmaptest.Options{Seed: 2, Requests: 3000, DropTrace: 0.3, DropOrders: 0.15, Shuffle: 5},
			perBatch: 100 * time.Millisecond},
		{name: "some spans later than PendingTTL", o: depmaptest.Options{Seed: 3, Requests: 3000, DropOrders: 0.1, Shuffle: 30, BatchSpans: 100},
			perBatch: 2 * time.Second, late: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			g := newTestGraph(t, Options{Now: clk.Now})
			srv := httptest.NewServer(NewOTLPHandler(g, HandlerOptions{}))
			defer srv.Close()
			batches, spans := depmaptest.Shop(tc.o)
			for _, b := range batches {
				postTraces(t, srv.URL, b)
				clk.Advance(tc.perBatch)
			}
			// legacy calls inventory without propagating context: only a
			// proxy sees it.
			for _, e := range depmaptest.ShopProxyEdges {
				if err := g.AddEdge(id(e.From), id(e.To), SourceProxy); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(DefaultPendingTTL + DefaultIndexTTL) // every wait is over

			want := append(slices.Clone(depmaptest.ShopEdges), depmaptest.ShopProxyEdges...)
			slices.SortFunc(want, func(a, b depmaptest.Edge) int { return cmpEdge(a.From, a.To, b.From, b.To) })
			if diff := cmp.Diff(want, shapeOf(g.Edges())); diff != "" {
				t.Errorf("edges (-want +got):\n%s", diff)
			}
			for _, n := range g.Snapshot().Nodes {
				wantKind := NodeService
				if k, ok := depmaptest.ShopVirtual[string(n.Name)]; ok {
					wantKind = NodeKind(k)
				} else if n.Name == "legacy" {
					wantKind = NodeExternal
				}
				if n.Kind != wantKind {
					t.Errorf("node %s is a %s, want %s", n.Name, n.Kind, wantKind)
				}
			}
			s := g.Stats()
			if s.Spans != uint64(spans) || s.Duplicates != 0 || s.PeerAmbiguous != 0 || s.EdgesRefused != 0 {
				t.Errorf("stats = %+v, want all %d spans taken, no duplicate, no ambiguous peer", s, spans)
			}
			if tc.late && s.Orphans == 0 {
				t.Errorf("no orphan: the stream was not late enough to test late spans (%+v)", s)
			}
			if !tc.late && s.Orphans != 0 && tc.o.DropOrders == 0 {
				t.Errorf("%d orphans in a complete stream", s.Orphans)
			}
			t.Logf("%d spans in %d batches: %+v", spans, len(batches), s)
		})
	}
}

// shapeOf reduces edges to what the topology states.
func shapeOf(edges []Edge) []depmaptest.Edge {
	out := []depmaptest.Edge{}
	for _, e := range edges {
		out = append(out, depmaptest.Edge{From: string(e.From), To: string(e.To), Async: e.Async})
	}
	return out
}

func cmpEdge(af, at, bf, bt string) int {
	if af != bf {
		if af < bf {
			return -1
		}
		return 1
	}
	if at < bt {
		return -1
	}
	if at > bt {
		return 1
	}
	return 0
}
