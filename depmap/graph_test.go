package depmap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/phoenixsre/phoenix"
)

func TestClosure(t *testing.T) {
	tests := []struct {
		name  string
		edges [][2]string
		of    string
		want  []phoenix.ComponentID
	}{
		{"chain", [][2]string{{"gateway", "orders"}, {"orders", "inventory"}}, "gateway", ids("inventory", "orders")},
		{"chain middle", [][2]string{{"gateway", "orders"}, {"orders", "inventory"}}, "orders", ids("inventory")},
		{"leaf", [][2]string{{"gateway", "orders"}}, "orders", nil},
		{"unknown", [][2]string{{"gateway", "orders"}}, "billing", nil},
		{
			"diamond: shared dependency once, first",
			[][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}},
			"a", ids("d", "b", "c"),
		},
		{
			"cycle below: members together, after what the cycle needs",
			[][2]string{{"a", "b"}, {"b", "c"}, {"c", "b"}, {"c", "d"}},
			"a", ids("d", "b", "c"),
		},
		{
			"cycle through the root excludes the root",
			[][2]string{{"a", "b"}, {"b", "a"}, {"b", "c"}},
			"a", ids("c", "b"),
		},
		{
			// DFS post-order would give b before d; b needs a which needs d.
			"cycle whose entry is visited first",
			[][2]string{{"x", "a"}, {"a", "b"}, {"b", "a"}, {"a", "d"}},
			"x", ids("d", "a", "b"),
		},
		{
			"self loop via two-node cycle only",
			[][2]string{{"a", "b"}, {"b", "a"}},
			"b", ids("a"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGraph(t, Options{})
			for _, e := range tt.edges {
				if err := g.AddEdge(phoenix.ComponentID(e[0]), phoenix.ComponentID(e[1]), SourceStatic); err != nil {
					t.Fatal(err)
				}
			}
			got := g.Closure(phoenix.ComponentID(tt.of))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Closure(%s) (-want +got):\n%s", tt.of, diff)
			}
			assertDependenciesFirst(t, g, got)
		})
	}
}

// assertDependenciesFirst checks that no component of order comes after one
// of its dependencies' dependents, unless both are in a cycle.
func assertDependenciesFirst(t *testing.T, g *Graph, order []phoenix.ComponentID) {
	t.Helper()
	pos := map[phoenix.ComponentID]int{}
	for i, c := range order {
		pos[c] = i
	}
	for _, e := range g.Edges() {
		pf, okf := pos[e.From]
		pt, okt := pos[e.To]
		if !okf || !okt || pt < pf {
			continue
		}
		if !contains(g.Closure(e.To), e.From) { // not a cycle
			t.Errorf("%s comes after %s which calls it: %v", e.To, e.From, order)
		}
	}
}

func contains(s []phoenix.ComponentID, c phoenix.ComponentID) bool {
	for _, x := range s {
		if x == c {
			return true
		}
	}
	return false
}

func TestDependentsIsDirect(t *testing.T) {
	g := newTestGraph(t, Options{})
	for _, e := range [][2]phoenix.ComponentID{{"gateway", "orders"}, {"orders", "inventory"}, {"billing", "inventory"}} {
		if err := g.AddEdge(e[0], e[1], SourceStatic); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(ids("billing", "orders"), g.Dependents("inventory")); diff != "" {
		t.Errorf("Dependents(inventory) (-want +got):\n%s", diff)
	}
	if got := g.Dependents("gateway"); len(got) != 0 {
		t.Errorf("Dependents(gateway) = %v, want none", got)
	}
}

func TestAddEdgeRejects(t *testing.T) {
	tests := []struct {
		name     string
		from, to phoenix.ComponentID
		source   string
		want     string
	}{
		{"invalid from", "Orders", "inventory", SourceStatic, "from: component name"},
		{"invalid to", "orders", "", SourceStatic, "to: component name"},
		{"self", "orders", "orders", SourceStatic, "cannot depend on itself"},
		{"no source", "orders", "inventory", "", "source is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGraph(t, Options{})
			err := g.AddEdge(tt.from, tt.to, tt.source)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddEdge = %v, want error containing %q", err, tt.want)
			}
			if n := len(g.Edges()); n != 0 {
				t.Errorf("%d edges after a refused AddEdge", n)
			}
		})
	}
}

func TestEdgeAging(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{EdgeTTL: time.Minute, Now: clk.Now})
	g.AddTraces(traces(
		span{service: "gateway", trace: 1, id: 1},
		span{service: "orders", trace: 1, id: 2, parent: 1},
	))
	if err := g.AddEdge("orders", "inventory", SourceProxy); err != nil {
		t.Fatal(err)
	}
	if err := g.AddEdge("orders", "db", SourceStatic); err != nil {
		t.Fatal(err)
	}
	if err := g.AddEdge("gateway", "orders", SourceStatic); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()

	clk.Advance(40 * time.Second)
	if err := g.AddEdge("orders", "inventory", SourceProxy); err != nil { // seen again: lives on
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second) // a minute after the first sighting
	want := []Edge{
		{From: "gateway", To: "orders", Calls: 1, LastSeen: start, Sources: []string{SourceStatic}},
		{From: "orders", To: "db", LastSeen: start, Sources: []string{SourceStatic}},
		{From: "orders", To: "inventory", LastSeen: start.Add(40 * time.Second), Sources: []string{SourceProxy}},
	}
	if diff := cmp.Diff(want, g.Edges(), cmpIgnoreMeasured); diff != "" {
		t.Errorf("after 60s (-want +got):\n%s", diff)
	}

	clk.Advance(40 * time.Second)
	want = want[:2]
	if diff := cmp.Diff(want, g.Edges(), cmpIgnoreMeasured); diff != "" {
		t.Errorf("after 100s (-want +got):\n%s", diff)
	}
	if got := g.Closure("orders"); !cmp.Equal(got, ids("db")) {
		t.Errorf("Closure(orders) = %v after inventory aged out, want [db]", got)
	}
}

func TestEdgeAgingDropsTracedEdge(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{EdgeTTL: time.Minute, Now: clk.Now})
	g.AddTraces(traces(
		span{service: "gateway", trace: 1, id: 1},
		span{service: "orders", trace: 1, id: 2, parent: 1},
	))
	clk.Advance(59 * time.Second)
	if got := pairs(g.Edges()); !cmp.Equal(got, []string{"gateway->orders"}) {
		t.Fatalf("edges at 59s = %v", got)
	}
	clk.Advance(time.Second)
	if got := g.Edges(); len(got) != 0 {
		t.Fatalf("edges at 60s = %v, want none", pairs(got))
	}
	if got := g.Stats().Edges; got != 0 {
		t.Errorf("Stats.Edges = %d, want 0", got)
	}
}

func TestMaxEdges(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{MaxEdges: 2, EdgeTTL: time.Minute, Now: clk.Now})
	for _, to := range []phoenix.ComponentID{"b", "c"} {
		if err := g.AddEdge("a", to, SourceProxy); err != nil {
			t.Fatal(err)
		}
	}
	err := g.AddEdge("a", "d", SourceProxy)
	if !errors.Is(err, ErrGraphFull) {
		t.Fatalf("third edge: %v, want ErrGraphFull", err)
	}
	g.AddTraces(traces(span{service: "x", trace: 1, id: 1}, span{service: "y", trace: 1, id: 2, parent: 1}))
	if s := g.Stats(); s.EdgesRefused != 2 || s.Edges != 2 {
		t.Errorf("Stats = %+v, want 2 refused, 2 edges", s)
	}
	clk.Advance(time.Minute) // the two age out, making room
	if err := g.AddEdge("a", "d", SourceProxy); err != nil {
		t.Fatalf("after ageing: %v", err)
	}
}

func TestNewGraphOptions(t *testing.T) {
	if _, err := NewGraph(Options{PendingTTL: -time.Second}); err == nil || !strings.Contains(err.Error(), "PendingTTL") {
		t.Errorf("negative PendingTTL: %v", err)
	}
	if _, err := NewGraph(Options{MaxEdges: -1}); err == nil || !strings.Contains(err.Error(), "MaxEdges") {
		t.Errorf("negative MaxEdges: %v", err)
	}
	reg := prometheus.NewPedanticRegistry()
	g := newTestGraph(t, Options{Registerer: reg})
	g.AddTraces(traces(span{service: "gateway", trace: 1, id: 1}, span{service: "orders", trace: 1, id: 2, parent: 1}, span{trace: 1, id: 3}))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP phoenix_depmap_edges Edges in the dependency graph.
# TYPE phoenix_depmap_edges gauge
phoenix_depmap_edges 1
# HELP phoenix_depmap_spans_total Spans received, by what became of them.
# TYPE phoenix_depmap_spans_total counter
phoenix_depmap_spans_total{outcome="duplicate"} 0
phoenix_depmap_spans_total{outcome="invalid_service"} 0
phoenix_depmap_spans_total{outcome="invalid_span"} 0
phoenix_depmap_spans_total{outcome="no_service"} 1
phoenix_depmap_spans_total{outcome="taken"} 2
`), "phoenix_depmap_edges", "phoenix_depmap_spans_total"); err != nil {
		t.Error(err)
	}
	if _, err := NewGraph(Options{Registerer: reg}); err == nil {
		t.Error("second graph on the same registry: no error")
	}
}
