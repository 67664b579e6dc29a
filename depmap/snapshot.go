package depmap

import (
	"cmp"
	"slices"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Snapshot is the graph at one moment, as the API and `phoenix graph` show
// it. After Focus it holds one component's neighbourhood and says what that
// component needs and who calls it.
type Snapshot struct {
	At    time.Time `json:"at"`
	Nodes []Node    `json:"nodes"`
	Edges []Edge    `json:"edges"`

	Component  phoenix.ComponentID   `json:"component,omitempty"`
	Closure    []phoenix.ComponentID `json:"closure,omitempty"`
	Dependents []phoenix.ComponentID `json:"dependents,omitempty"`
}

// Node is one node of a Snapshot.
type Node struct {
	Name phoenix.ComponentID `json:"name"`
	Kind NodeKind            `json:"kind"`
	// Virtual marks a node that sends no spans: a database, a broker or an
	// external service seen only in its callers' spans.
	Virtual bool `json:"virtual"`
}

// Snapshot returns the live graph: every edge (as Edges does) and every
// node an edge touches, sorted by name.
func (g *Graph) Snapshot() Snapshot {
	now := g.opts.Now()
	g.mu.Lock()
	g.expireLocked(now)
	edges := g.edgesLocked(now)
	kinds := make(map[phoenix.ComponentID]NodeKind, 2*len(edges))
	for k, e := range g.edges {
		kinds[k.from] = kinds[k.from].merge(e.fromKind)
		kinds[k.to] = kinds[k.to].merge(e.toKind)
	}
	g.mu.Unlock()

	nodes := make([]Node, 0, len(kinds))
	for name, k := range kinds {
		if k == "" {
			k = NodeComponent
		}
		nodes = append(nodes, Node{Name: name, Kind: k, Virtual: k.Virtual()})
	}
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	return Snapshot{At: now, Nodes: nodes, Edges: edges}
}

// Focus returns the part of s around c: c, what it needs (its Closure,
// deepest first) and its direct Dependents, with the edges among them. It
// reports false when c is no node of s.
func (s Snapshot) Focus(c phoenix.ComponentID) (Snapshot, bool) {
	if !slices.ContainsFunc(s.Nodes, func(n Node) bool { return n.Name == c }) {
		return Snapshot{}, false
	}
	fwd := make(map[phoenix.ComponentID][]phoenix.ComponentID)
	var dependents []phoenix.ComponentID
	for _, e := range s.Edges { // sorted by From, then To: lists come sorted
		if e.Async {
			continue
		}
		fwd[e.From] = append(fwd[e.From], e.To)
		if e.To == c {
			dependents = append(dependents, e.From)
		}
	}
	slices.Sort(dependents)
	needs := closure(fwd, c)
	keep := map[phoenix.ComponentID]bool{c: true}
	for _, n := range needs {
		keep[n] = true
	}
	for _, n := range dependents {
		keep[n] = true
	}
	out := Snapshot{At: s.At, Component: c, Closure: needs, Dependents: dependents}
	for _, n := range s.Nodes {
		if keep[n.Name] {
			out.Nodes = append(out.Nodes, n)
		}
	}
	for _, e := range s.Edges {
		if keep[e.From] && keep[e.To] {
			out.Edges = append(out.Edges, e)
		}
	}
	return out, true
}
