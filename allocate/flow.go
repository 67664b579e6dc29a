package allocate

// The placement is a small transportation problem (replicas to offers with
// room, at a price per unit, with at most one replica per zone where the
// replicas are spread), solved exactly as a minimum-cost maximum flow.
// gonum has no network-flow solver; its lp.Simplex would solve the
// relaxation, but only in floating point and with no guarantee of an
// integral answer after rounding. The networks here have tens of nodes, so
// successive shortest paths with Bellman-Ford is both exact and quick.

// cost is an integer price with a tie-break rank, ordered lexicographically:
// the cheapest plan first and, among plans of equal price, the one on better
// ranked offers. Integers keep the sums exact, so the same snapshot always
// gives the same plan.
type cost struct{ price, rank int64 }

func (a cost) add(b cost) cost  { return cost{a.price + b.price, a.rank + b.rank} }
func (a cost) neg() cost        { return cost{-a.price, -a.rank} }
func (a cost) less(b cost) bool { return a.price < b.price || (a.price == b.price && a.rank < b.rank) }

type flowEdge struct {
	to, rev  int
	cap, max int
	cost     cost
}

// flowNet is a residual network. Edges are added with addEdge; run pushes
// the minimum-cost maximum flow from s to t.
type flowNet struct{ adj [][]flowEdge }

func newFlowNet(nodes int) *flowNet { return &flowNet{adj: make([][]flowEdge, nodes)} }

func (f *flowNet) node() int {
	f.adj = append(f.adj, nil)
	return len(f.adj) - 1
}

// addEdge adds u->v and returns its index in adj[u], to read its flow later.
func (f *flowNet) addEdge(u, v, capacity int, c cost) int {
	f.adj[u] = append(f.adj[u], flowEdge{to: v, rev: len(f.adj[v]), cap: capacity, max: capacity, cost: c})
	f.adj[v] = append(f.adj[v], flowEdge{to: u, rev: len(f.adj[u]) - 1, cost: c.neg()})
	return len(f.adj[u]) - 1
}

// flow is what run pushed along edge i of u.
func (f *flowNet) flow(u, i int) int { e := f.adj[u][i]; return e.max - e.cap }

// run pushes as much flow as fits from s to t, along cheapest paths first,
// and returns the amount. Successive shortest paths keep the residual
// network free of negative cycles, so Bellman-Ford finds each path.
func (f *flowNet) run(s, t int) int {
	n := len(f.adj)
	total := 0
	for {
		dist := make([]cost, n)
		seen := make([]bool, n)
		prevNode := make([]int, n)
		prevEdge := make([]int, n)
		seen[s] = true
		for round := 0; round < n; round++ {
			changed := false
			for u := range n {
				if !seen[u] {
					continue
				}
				for i, e := range f.adj[u] {
					if e.cap == 0 {
						continue
					}
					d := dist[u].add(e.cost)
					if !seen[e.to] || d.less(dist[e.to]) {
						dist[e.to], seen[e.to], prevNode[e.to], prevEdge[e.to] = d, true, u, i
						changed = true
					}
				}
			}
			if !changed {
				break
			}
		}
		if !seen[t] {
			return total
		}
		push := int(^uint(0) >> 1)
		for v := t; v != s; v = prevNode[v] {
			push = min(push, f.adj[prevNode[v]][prevEdge[v]].cap)
		}
		for v := t; v != s; v = prevNode[v] {
			e := &f.adj[prevNode[v]][prevEdge[v]]
			e.cap -= push
			f.adj[v][e.rev].cap += push
		}
		total += push
	}
}
