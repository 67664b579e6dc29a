package depmap

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"gonum.org/v1/gonum/graph"
	gencoding "gonum.org/v1/gonum/graph/encoding"
	"gonum.org/v1/gonum/graph/encoding/dot"
	"gonum.org/v1/gonum/graph/simple"
)

// WriteDOT writes s as a Graphviz digraph (gonum's DOT encoder): services
// as boxes, databases as cylinders, brokers and external services in
// their own shapes, async edges dashed, each edge labelled with its rate,
// error rate and p99.
func (s Snapshot) WriteDOT(w io.Writer) error {
	g := dotGraph{DirectedGraph: simple.NewDirectedGraph()}
	ids := make(map[string]graph.Node, len(s.Nodes))
	for i, n := range s.Nodes {
		shape, style := nodeShape(n.Kind)
		dn := dotNode{id: int64(i), name: string(n.Name), attrs: []gencoding.Attribute{{Key: "shape", Value: shape}}}
		if style != "" {
			dn.attrs = append(dn.attrs, gencoding.Attribute{Key: "style", Value: style})
		}
		g.AddNode(dn)
		ids[string(n.Name)] = dn
	}
	for _, e := range s.Edges {
		from, to := ids[string(e.From)], ids[string(e.To)]
		if from == nil || to == nil {
			return fmt.Errorf("write DOT: edge %s -> %s has an end that is not a node", e.From, e.To)
		}
		de := dotEdge{from: from, to: to, attrs: []gencoding.Attribute{{Key: "label", Value: edgeLabel(e)}}}
		if e.Async {
			de.attrs = append(de.attrs, gencoding.Attribute{Key: "style", Value: "dashed"})
		}
		g.SetEdge(de)
	}
	b, err := dot.Marshal(g, "phoenix", "", "  ")
	if err != nil {
		return fmt.Errorf("write DOT: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func nodeShape(k NodeKind) (shape, style string) {
	switch k {
	case NodeDatabase:
		return "cylinder", ""
	case NodeMessaging:
		return "cds", ""
	case NodeExternal:
		return "ellipse", "dashed"
	case NodeComponent:
		return "box", "rounded"
	}
	return "box", ""
}

type dotGraph struct{ *simple.DirectedGraph }

func (dotGraph) DOTAttributers() (g, n, e gencoding.Attributer) {
	return attrs{{Key: "rankdir", Value: "LR"}}, attrs{{Key: "fontname", Value: "Helvetica"}}, attrs{{Key: "fontsize", Value: "10"}}
}

type attrs []gencoding.Attribute

func (a attrs) Attributes() []gencoding.Attribute { return a }

type dotNode struct {
	id    int64
	name  string
	attrs []gencoding.Attribute
}

func (n dotNode) ID() int64                         { return n.id }
func (n dotNode) DOTID() string                     { return n.name }
func (n dotNode) Attributes() []gencoding.Attribute { return n.attrs }

type dotEdge struct {
	from, to graph.Node
	attrs    []gencoding.Attribute
}

func (e dotEdge) From() graph.Node                  { return e.from }
func (e dotEdge) To() graph.Node                    { return e.to }
func (e dotEdge) ReversedEdge() graph.Edge          { return dotEdge{from: e.to, to: e.from, attrs: e.attrs} }
func (e dotEdge) Attributes() []gencoding.Attribute { return e.attrs }

var (
	_ dot.Node             = dotNode{}
	_ gencoding.Attributer = dotEdge{}
	_ dot.Attributers      = dotGraph{}
)

// WriteMermaid writes s as a Mermaid flowchart, left to right, with the
// same shapes and labels as WriteDOT. Written by hand: there is no Go
// Mermaid encoder, and node names are restricted to [a-z0-9_.-], so the
// only escaping needed is of our own labels, which hold none of Mermaid's
// special characters.
func (s Snapshot) WriteMermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "flowchart LR")
	ids := make(map[string]string, len(s.Nodes))
	for i, n := range s.Nodes {
		id := fmt.Sprintf("n%d", i)
		ids[string(n.Name)] = id
		open, closing := mermaidShape(n.Kind)
		fmt.Fprintf(bw, "  %s%s\"%s\"%s\n", id, open, n.Name, closing)
	}
	for _, e := range s.Edges {
		from, to := ids[string(e.From)], ids[string(e.To)]
		if from == "" || to == "" {
			return fmt.Errorf("write Mermaid: edge %s -> %s has an end that is not a node", e.From, e.To)
		}
		arrow := "-->"
		if e.Async {
			arrow = "-.->"
		}
		fmt.Fprintf(bw, "  %s %s|\"%s\"| %s\n", from, arrow, edgeLabel(e), to)
	}
	return bw.Flush()
}

func mermaidShape(k NodeKind) (open, closing string) {
	switch k {
	case NodeDatabase:
		return "[(", ")]"
	case NodeMessaging:
		return "[[", "]]"
	case NodeExternal:
		return "([", "])"
	case NodeComponent:
		return "(", ")"
	}
	return "[", "]"
}

// edgeLabel sums an edge up: its rate, error rate and p99 when spans
// measured it, else where it was learnt.
func edgeLabel(e Edge) string {
	if e.Calls == 0 {
		return strings.Join(e.Sources, ", ")
	}
	parts := []string{fmt.Sprintf("%.3g/s", e.Rate)}
	if e.ErrorRate > 0 {
		parts = append(parts, fmt.Sprintf("%.3g%% err", 100*e.ErrorRate))
	}
	if e.P99 > 0 {
		parts = append(parts, "p99 "+roundLatency(e.P99).String())
	}
	if e.Async {
		parts = append(parts, "async")
	}
	return strings.Join(parts, " ")
}

// roundLatency keeps two or three significant digits.
func roundLatency(d time.Duration) time.Duration {
	for _, unit := range []time.Duration{time.Second, time.Millisecond, time.Microsecond} {
		if d >= unit {
			return d.Round(unit / 100)
		}
	}
	return d
}
