package depmap

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gonum.org/v1/gonum/graph/formats/dot"
	"gonum.org/v1/gonum/graph/formats/dot/ast"
)

// renderGraph is a small graph with every kind of node and edge: gateway
// -> orders (traced, with errors), orders -> orders-db (a database),
// orders -> kafka (a broker), orders => mailer (message flow), mailer ->
// kafka, gateway -> legacy (static), legacy -> inventory (proxy).
func renderGraph(t *testing.T) *Graph {
	t.Helper()
	clk := newClock()
	g := newTestGraph(t, Options{Now: clk.Now})
	g.mu.Lock()
	now := clk.Now()
	for i := range 10 {
		g.callLocked("gateway", "orders", NodeService, NodeService, false, call{failed: i == 0, dur: int64(12 * time.Millisecond)}, now)
	}
	g.callLocked("orders", "orders-db", NodeService, NodeDatabase, false, call{dur: int64(time.Millisecond)}, now)
	g.callLocked("orders", "kafka", NodeService, NodeMessaging, false, call{}, now)
	g.callLocked("orders", "mailer", NodeService, NodeService, true, call{}, now)
	g.callLocked("mailer", "kafka", NodeService, NodeMessaging, false, call{}, now)
	g.mu.Unlock()
	for _, e := range [][2]string{{"gateway", "legacy"}, {"legacy", "inventory"}} {
		src := SourceStatic
		if e[0] == "legacy" {
			src = SourceProxy
		}
		if err := g.AddEdge(id(e[0]), id(e[1]), src); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func TestSnapshotNodes(t *testing.T) {
	s := renderGraph(t).Snapshot()
	want := []Node{
		{Name: "gateway", Kind: NodeService}, {Name: "inventory", Kind: NodeComponent},
		{Name: "kafka", Kind: NodeMessaging, Virtual: true}, {Name: "legacy", Kind: NodeComponent},
		{Name: "mailer", Kind: NodeService}, {Name: "orders", Kind: NodeService},
		{Name: "orders-db", Kind: NodeDatabase, Virtual: true},
	}
	if diff := cmp.Diff(want, s.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	f, ok := s.Focus("orders")
	if !ok {
		t.Fatal("Focus(orders): not found")
	}
	if !cmp.Equal(f.Closure, ids("kafka", "orders-db")) || !cmp.Equal(f.Dependents, ids("gateway")) {
		t.Errorf("Focus(orders): closure %v dependents %v, want [kafka orders-db] and [gateway]", f.Closure, f.Dependents)
	}
	if got := arrows(f.Edges); !cmp.Equal(got, []string{"gateway->orders", "orders->kafka", "orders->orders-db"}) {
		t.Errorf("Focus(orders) edges = %v", got)
	}
	if _, ok := s.Focus("nobody"); ok {
		t.Error("Focus(nobody) found a node")
	}
}

// TestWriteDOT parses the output with gonum's DOT parser and checks every
// node, edge, shape and style.
func TestWriteDOT(t *testing.T) {
	var buf bytes.Buffer
	if err := renderGraph(t).Snapshot().WriteDOT(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := dot.ParseBytes(buf.Bytes())
	if err != nil {
		t.Fatalf("the output is not DOT: %v\n%s", err, buf.String())
	}
	if len(f.Graphs) != 1 || !f.Graphs[0].Directed {
		t.Fatalf("want one digraph, got %d graphs", len(f.Graphs))
	}
	shapes := map[string]string{}
	var edges []string
	labels := map[string]string{}
	for _, st := range f.Graphs[0].Stmts {
		switch st := st.(type) {
		case *ast.NodeStmt:
			shapes[unquote(st.Node.ID)] = attr(st.Attrs, "shape") + "/" + attr(st.Attrs, "style")
		case *ast.EdgeStmt:
			from, to := unquote(st.From.(*ast.Node).ID), unquote(st.To.Vertex.(*ast.Node).ID)
			e := from + "->" + to
			if attr(st.Attrs, "style") == `dashed` {
				e += "=>"
			}
			edges = append(edges, e)
			labels[e] = attr(st.Attrs, "label")
		}
	}
	wantShapes := map[string]string{"gateway": "box/", "orders": "box/", "mailer": "box/", "orders-db": "cylinder/",
		"kafka": "cds/", "legacy": "box/rounded", "inventory": "box/rounded"}
	if diff := cmp.Diff(wantShapes, shapes); diff != "" {
		t.Errorf("shapes (-want +got):\n%s", diff)
	}
	slices.Sort(edges)
	wantEdges := []string{"gateway->legacy", "gateway->orders", "legacy->inventory", "mailer->kafka", "orders->kafka", "orders->mailer=>", "orders->orders-db"}
	if diff := cmp.Diff(wantEdges, edges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if l := labels["gateway->orders"]; l != `"0.167/s 10% err p99 12.06ms"` {
		t.Errorf("gateway->orders label = %s", l)
	}
	if l := labels["legacy->inventory"]; l != "proxy" {
		t.Errorf("legacy->inventory label = %s, want its source", l)
	}
}

// unquote turns a DOT ID back into the name: quoted when it has a '-' or '.'.
func unquote(id string) string {
	if s, err := strconv.Unquote(id); err == nil {
		return s
	}
	return id
}

func attr(attrs []*ast.Attr, key string) string {
	for _, a := range attrs {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestWriteMermaid(t *testing.T) {
	var buf bytes.Buffer
	if err := renderGraph(t).Snapshot().WriteMermaid(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if lines[0] != "flowchart LR" {
		t.Fatalf("first line %q, want flowchart LR", lines[0])
	}
	node := regexp.MustCompile(`^  (n\d+)(\[|\(\[|\[\(|\[\[|\()"([a-z0-9_.-]+)"(\]|\]\)|\)\]|\]\]|\))$`)
	edge := regexp.MustCompile(`^  (n\d+) (-->|-\.->)\|"([^"|]*)"\| (n\d+)$`)
	names := map[string]string{}
	var edges []string
	for _, l := range lines[1:] {
		if m := node.FindStringSubmatch(l); m != nil {
			names[m[1]] = m[3] + " " + m[2]
			continue
		}
		m := edge.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is neither a node nor an edge", l)
		}
		e := strings.Fields(names[m[1]])[0] + "->" + strings.Fields(names[m[4]])[0]
		if m[2] == "-.->" {
			e += "=>"
		}
		edges = append(edges, e)
	}
	if len(names) != 7 || len(edges) != 7 {
		t.Errorf("%d nodes and %d edges, want 7 and 7:\n%s", len(names), len(edges), buf.String())
	}
	if !slices.Contains(edges, "orders->mailer=>") || !slices.Contains(slices.Collect(func(yield func(string) bool) {
		for _, v := range names {
			yield(v)
		}
	}), "orders-db [(") {
		t.Errorf("async edge or database shape missing:\n%s", buf.String())
	}
}

func TestGraphHandler(t *testing.T) {
	srv := httptest.NewServer(NewGraphHandler(renderGraph(t)))
	defer srv.Close()
	get := func(t *testing.T, method, query string) (*http.Response, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/api/v1/graph"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, tc := range []struct {
		method, query string
		status        int
		contentType   string
		has           string
	}{
		{"GET", "", 200, "application/json", `"kind": "database"`},
		{"GET", "?format=json&component=orders", 200, "application/json", `"closure": [`},
		{"GET", "?format=dot", 200, "text/vnd.graphviz; charset=utf-8", "digraph phoenix {"},
		{"GET", "?format=mermaid&component=legacy", 200, "text/plain; charset=utf-8", "flowchart LR"},
		{"HEAD", "", 200, "application/json", ""},
		{"GET", "?format=svg", 400, "application/json", "format \\\"svg\\\" not supported"},
		{"GET", "?component=Bad%20Name", 400, "application/json", "component: component name"},
		{"GET", "?component=nobody", 404, "application/json", "not in the dependency graph"},
		{"POST", "", 405, "application/json", "use GET"},
	} {
		t.Run(tc.method+tc.query, func(t *testing.T) {
			resp, body := get(t, tc.method, tc.query)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("%d %q, want %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType, body)
			}
			if !bytes.Contains(body, []byte(tc.has)) {
				t.Errorf("body does not contain %s:\n%s", tc.has, body)
			}
		})
	}
	_, body := get(t, "GET", "?component=orders")
	var s Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Component != "orders" || !cmp.Equal(s.Closure, ids("kafka", "orders-db")) || len(s.Edges) != 3 {
		t.Errorf("focus on orders: %+v", s)
	}
	if e := s.Edges[0]; e.From != "gateway" || e.Calls != 10 || e.Errors != 1 || e.P99 == 0 || strconv.Itoa(int(e.Rate*60)) != "10" {
		t.Errorf("gateway -> orders as JSON: %+v", e)
	}
}
