package depmap

import (
	"slices"

	"github.com/phoenixsre/phoenix"
)

// Closure returns what c needs to run: every component reachable from c
// over edges that are not Async, excluding c, dependencies before their
// dependents, so that starting them
// in order never starts a component before one it calls. Members of a cycle
// cannot be ordered that way; they come together, sorted by name, after what
// the cycle needs and before what needs it. The result is deterministic and
// empty (nil) when c has no dependency or is unknown.
func (g *Graph) Closure(c phoenix.ComponentID) []phoenix.ComponentID {
	return closure(g.adjacency(func(k edgeKey) (phoenix.ComponentID, phoenix.ComponentID) { return k.from, k.to }), c)
}

// closure is Closure over the sorted neighbour lists adj.
func closure(adj map[phoenix.ComponentID][]phoenix.ComponentID, c phoenix.ComponentID) []phoenix.ComponentID {
	t := tarjan{
		adj:     adj,
		index:   make(map[phoenix.ComponentID]int),
		low:     make(map[phoenix.ComponentID]int),
		onStack: make(map[phoenix.ComponentID]bool),
	}
	t.visit(c)
	out := slices.DeleteFunc(t.out, func(id phoenix.ComponentID) bool { return id == c })
	if len(out) == 0 {
		return nil
	}
	return out
}

// Dependents returns the components that call c directly, sorted by name;
// a producer whose messages c consumes (an Async edge) is not one.
// It is direct on purpose: those are the callers whose routes point at c
// and must follow it when traffic moves; their own callers are unaffected.
func (g *Graph) Dependents(c phoenix.ComponentID) []phoenix.ComponentID {
	adj := g.adjacency(func(k edgeKey) (phoenix.ComponentID, phoenix.ComponentID) { return k.to, k.from })
	return adj[c]
}

// adjacency returns the live edges that are not Async as sorted neighbour
// lists, keyed and valued as dir chooses.
func (g *Graph) adjacency(dir func(edgeKey) (phoenix.ComponentID, phoenix.ComponentID)) map[phoenix.ComponentID][]phoenix.ComponentID {
	now := g.opts.Now()
	g.mu.Lock()
	g.expireLocked(now)
	adj := make(map[phoenix.ComponentID][]phoenix.ComponentID)
	for k, e := range g.edges {
		if e.async && !e.sync {
			continue
		}
		a, b := dir(k)
		adj[a] = append(adj[a], b)
	}
	g.mu.Unlock()
	for _, ns := range adj {
		slices.Sort(ns)
	}
	return adj
}

// tarjan finds strongly connected components; it emits each one only after
// every component reachable from it, which is the order Closure needs.
// Recursion depth is bounded by the node count, itself at most 2*MaxEdges.
type tarjan struct {
	adj     map[phoenix.ComponentID][]phoenix.ComponentID
	index   map[phoenix.ComponentID]int
	low     map[phoenix.ComponentID]int
	onStack map[phoenix.ComponentID]bool
	stack   []phoenix.ComponentID
	out     []phoenix.ComponentID
}

func (t *tarjan) visit(v phoenix.ComponentID) {
	n := len(t.index)
	t.index[v], t.low[v] = n, n
	t.stack = append(t.stack, v)
	t.onStack[v] = true
	for _, w := range t.adj[v] {
		if _, seen := t.index[w]; !seen {
			t.visit(w)
			t.low[v] = min(t.low[v], t.low[w])
		} else if t.onStack[w] {
			t.low[v] = min(t.low[v], t.index[w])
		}
	}
	if t.low[v] != t.index[v] {
		return
	}
	start := len(t.out)
	for {
		w := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		t.onStack[w] = false
		t.out = append(t.out, w)
		if w == v {
			break
		}
	}
	slices.Sort(t.out[start:])
}
