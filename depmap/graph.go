package depmap

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
)

// Sources name where an edge was learnt. Any other non-empty source may be
// passed to AddEdge; only SourceStatic is exempt from ageing.
const (
	SourceTrace  = "trace"  // derived from spans
	SourceStatic = "static" // declared in configuration; never ages out
	SourceProxy  = "proxy"  // observed by one of Phoenix's proxies
)

// Options configures a Graph. Zero values take the defaults named beside
// each field.
//
// The bounds make memory independent of the input: at most MaxIndex indexed
// spans, MaxPending spans waiting for a parent, MaxEdges edges (each with
// two latency histograms of about 1 KB) and MaxEdges learnt peer aliases.
// Measured under the worst input (bench/depmap: 64-character names, a new
// peer and a new edge per request, every set full), the heap peaks at
// 120 MB with the defaults, so 128 MB is the bound we state; each further
// 100,000 of MaxIndex adds about 20 MB, of MaxPending about 40 MB, and
// each further 10,000 of MaxEdges about 25 MB.
type Options struct {
	// EdgeTTL: an edge whose every ageing source has not been seen for this
	// long disappears. Default 10m.
	EdgeTTL time.Duration
	// PendingTTL: how long a span waits for its parent span before it is
	// counted as an orphan. Default 30s.
	PendingTTL time.Duration
	// MaxPending bounds the spans waiting for a parent; past it the oldest
	// is evicted and counted in Stats.PendingEvicted. Default 100000.
	MaxPending int
	// IndexTTL: how long a span stays known as a possible parent, for
	// children that arrive after it. Default 30s.
	IndexTTL time.Duration
	// MaxIndex bounds the spans known as possible parents; past it the
	// oldest is forgotten and counted in Stats.IndexEvicted. Default 100000.
	MaxIndex int
	// MaxEdges bounds the edges; a new edge past it is refused and counted
	// in Stats.EdgesRefused. It bounds the learnt peer aliases too.
	// Default 10000.
	MaxEdges int
	// RateWindow is the span of time over which an edge's rate, error rate
	// and latency percentiles are measured. Default 1m.
	RateWindow time.Duration

	Now        func() time.Time      // default time.Now
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Defaults for Options.
const (
	DefaultEdgeTTL    = 10 * time.Minute
	DefaultPendingTTL = 30 * time.Second
	DefaultMaxPending = 100000
	DefaultIndexTTL   = 30 * time.Second
	DefaultMaxIndex   = 100000
	DefaultMaxEdges   = 10000
	DefaultRateWindow = time.Minute
)

func (o Options) withDefaults() (Options, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"EdgeTTL", o.EdgeTTL}, {"PendingTTL", o.PendingTTL}, {"IndexTTL", o.IndexTTL}, {"RateWindow", o.RateWindow}} {
		if d.v < 0 {
			return o, fmt.Errorf("depmap options: %s is %v; use a positive duration, or 0 for the default", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MaxPending", o.MaxPending}, {"MaxIndex", o.MaxIndex}, {"MaxEdges", o.MaxEdges}} {
		if n.v < 0 {
			return o, fmt.Errorf("depmap options: %s is %d; use a positive count, or 0 for the default", n.name, n.v)
		}
	}
	o.EdgeTTL = cmp.Or(o.EdgeTTL, DefaultEdgeTTL)
	o.PendingTTL = cmp.Or(o.PendingTTL, DefaultPendingTTL)
	o.MaxPending = cmp.Or(o.MaxPending, DefaultMaxPending)
	o.IndexTTL = cmp.Or(o.IndexTTL, DefaultIndexTTL)
	o.MaxIndex = cmp.Or(o.MaxIndex, DefaultMaxIndex)
	o.MaxEdges = cmp.Or(o.MaxEdges, DefaultMaxEdges)
	o.RateWindow = cmp.Or(o.RateWindow, DefaultRateWindow)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Edge is one dependency: From calls To, so From needs To to run.
type Edge struct {
	From phoenix.ComponentID `json:"from"`
	To   phoenix.ComponentID `json:"to"`
	// Calls counts the calls seen in spans: a span of To whose parent span
	// belongs to From, or a span of From naming To as its peer. Errors
	// counts those whose status is an error. Both count since the edge
	// appeared; AddEdge adds to neither.
	Calls  uint64 `json:"calls"`
	Errors uint64 `json:"errors"`
	// Rate is calls per second and ErrorRate the share of them that
	// failed, over the last Options.RateWindow, by arrival time.
	Rate      float64 `json:"rate"`
	ErrorRate float64 `json:"error_rate"`
	// P50, P95 and P99 are latency percentiles over the same window, within
	// about 6%: the duration of the callee's span (server or consumer) when
	// there is one, else of the caller's. Zero when no span measured one.
	P50 time.Duration `json:"latency_p50_ns"`
	P95 time.Duration `json:"latency_p95_ns"`
	P99 time.Duration `json:"latency_p99_ns"`
	// LastSeen is the latest time any source reported the edge.
	LastSeen time.Time `json:"last_seen"`
	// Sources lists where the edge was learnt, sorted.
	Sources []string `json:"sources"`
	// Async marks an edge seen only as messages flowing from a producer to
	// a consumer: the producer does not need the consumer to run, so
	// Closure and Dependents do not follow it.
	Async bool `json:"async,omitempty"`
}

// Stats counts what the graph did with the spans it was given.
type Stats struct {
	Spans          uint64 // spans taken: valid ids, a valid service, not a duplicate
	NoService      uint64 // spans skipped: resource without a string service.name
	InvalidService uint64 // spans skipped: service.name cannot be made a phoenix.ComponentID
	InvalidSpan    uint64 // spans skipped: empty trace or span id
	Duplicates     uint64 // spans skipped: already indexed (an exporter's retry)
	Orphans        uint64 // spans whose parent did not arrive within PendingTTL
	PendingEvicted uint64 // spans dropped from the pending set at MaxPending
	IndexEvicted   uint64 // spans forgotten from the index at MaxIndex
	EdgesRefused   uint64 // edge observations dropped at MaxEdges
	PeerCalls      uint64 // calls to a peer that sends no spans (virtual node)
	PeerAmbiguous  uint64 // unanswered calls to a peer name that several services answer to: dropped
	Late           uint64 // spans linked after waiting PendingTTL, to the best parent then known

	Pending int // spans now waiting for their parent
	Indexed int // spans now known as possible parents
	Edges   int // edges now in the graph
}

// ErrGraphFull is returned by AddEdge when the graph holds MaxEdges edges.
var ErrGraphFull = errors.New("dependency graph is full")

// Graph is the live dependency graph. It is safe for concurrent use. It has
// no goroutine: expiry happens lazily, on every call.
type Graph struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	edges map[edgeKey]*edgeState
	// nextEdgeExpiry is no later than the earliest time an ageing source
	// can expire; zero when no source ages.
	nextEdgeExpiry time.Time
	spans          spanState
	aliases        aliases
	names          interner
	stats          Stats
}

type edgeKey struct{ from, to phoenix.ComponentID }

type edgeState struct {
	calls, errors uint64
	sources       []sourceSeen
	window        edgeWindow
	// async and sync record how the edge was seen: as message flow only
	// (async), or as a call or from a source other than traces (sync).
	async, sync bool
	// fromKind and toKind say what the ends are, as far as this edge tells.
	fromKind, toKind NodeKind
}

type sourceSeen struct {
	name string
	last time.Time
}

// NewGraph returns an empty graph. It fails on invalid options or when the
// metrics cannot be registered.
func NewGraph(o Options) (*Graph, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Graph{
		opts:    o,
		log:     o.Logger,
		edges:   make(map[edgeKey]*edgeState),
		spans:   newSpanState(),
		aliases: aliases{max: o.MaxEdges, m: make(map[phoenix.ComponentID]alias)},
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(&collector{g: g}); err != nil {
			return nil, fmt.Errorf("depmap: register metrics: %w", err)
		}
	}
	return g, nil
}

// AddEdge records that from depends on to, as reported by source. Edges
// from SourceStatic never age out; others age like traced edges. It fails
// on invalid names, a self edge, an empty source or a full graph.
func (g *Graph) AddEdge(from, to phoenix.ComponentID, source string) error {
	if err := from.Validate(); err != nil {
		return fmt.Errorf("add edge: from: %w", err)
	}
	if err := to.Validate(); err != nil {
		return fmt.Errorf("add edge: to: %w", err)
	}
	if from == to {
		return fmt.Errorf("add edge %s -> %s: a component cannot depend on itself", from, to)
	}
	if source == "" {
		return fmt.Errorf("add edge %s -> %s: source is empty; name who reported it, such as %q", from, to, SourceStatic)
	}
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	e := g.edgeLocked(from, to, source, now)
	if e == nil {
		return fmt.Errorf("add edge %s -> %s: %w (%d edges)", from, to, ErrGraphFull, g.opts.MaxEdges)
	}
	e.sync = true
	return nil
}

// edgeLocked finds or creates the edge and marks source as seen at now. It
// returns nil, and counts the refusal, when a new edge does not fit.
func (g *Graph) edgeLocked(from, to phoenix.ComponentID, source string, now time.Time) *edgeState {
	k := edgeKey{from, to}
	e, ok := g.edges[k]
	if !ok {
		if len(g.edges) >= g.opts.MaxEdges {
			// Only when an edge is due to age out: a full scan per refused
			// edge would let a flood of new edges cost O(MaxEdges) per span.
			g.pruneEdgesLocked(now)
		}
		if len(g.edges) >= g.opts.MaxEdges {
			g.stats.EdgesRefused++
			return nil
		}
		e = &edgeState{}
		g.edges[k] = e
		g.log.Info("dependency edge appeared", "from", from, "to", to, "source", source)
	}
	i := slices.IndexFunc(e.sources, func(s sourceSeen) bool { return s.name == source })
	if i < 0 {
		e.sources = append(e.sources, sourceSeen{name: source, last: now})
		slices.SortFunc(e.sources, func(a, b sourceSeen) int { return cmp.Compare(a.name, b.name) })
	} else if now.After(e.sources[i].last) {
		e.sources[i].last = now
	}
	if source != SourceStatic {
		exp := now.Add(g.opts.EdgeTTL)
		if g.nextEdgeExpiry.IsZero() || exp.Before(g.nextEdgeExpiry) {
			g.nextEdgeExpiry = exp
		}
	}
	return e
}

// callLocked counts one call from -> to seen in spans, with the callee's
// outcome and latency (dur <= 0: not measured). Nothing happens when an end
// is not a component or both are the same.
func (g *Graph) callLocked(from, to phoenix.ComponentID, fromKind, toKind NodeKind, async bool, c call, now time.Time) {
	if from == "" || to == "" || from == to {
		return
	}
	e := g.edgeLocked(from, to, SourceTrace, now)
	if e == nil {
		return
	}
	e.calls++
	if c.failed {
		e.errors++
	}
	if async {
		e.async = true
	} else {
		e.sync = true
	}
	e.fromKind = e.fromKind.merge(fromKind)
	e.toKind = e.toKind.merge(toKind)
	e.window.observe(now.UnixNano(), g.opts.RateWindow.Nanoseconds(), c.failed, c.dur)
}

// call is the outcome of one call as the span that measured it saw it.
type call struct {
	failed bool
	dur    int64 // nanoseconds; <= 0 when unknown
}

// expireLocked applies every time-based bound as of now.
func (g *Graph) expireLocked(now time.Time) {
	g.expireSpansLocked(now)
	g.pruneEdgesLocked(now)
}

// pruneEdgesLocked drops ageing sources not seen for EdgeTTL, and edges left
// without a source. It scans only once something can expire.
func (g *Graph) pruneEdgesLocked(now time.Time) {
	if g.nextEdgeExpiry.IsZero() || now.Before(g.nextEdgeExpiry) {
		return
	}
	var next time.Time
	for k, e := range g.edges {
		e.sources = slices.DeleteFunc(e.sources, func(s sourceSeen) bool {
			return s.name != SourceStatic && !now.Before(s.last.Add(g.opts.EdgeTTL))
		})
		if len(e.sources) == 0 {
			delete(g.edges, k)
			g.log.Info("dependency edge aged out", "from", k.from, "to", k.to)
			continue
		}
		for _, s := range e.sources {
			if exp := s.last.Add(g.opts.EdgeTTL); s.name != SourceStatic && (next.IsZero() || exp.Before(next)) {
				next = exp
			}
		}
	}
	g.nextEdgeExpiry = next
}

// Edges returns the live edges sorted by From, then To.
func (g *Graph) Edges() []Edge {
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	return g.edgesLocked(now)
}

func (g *Graph) edgesLocked(now time.Time) []Edge {
	out := make([]Edge, 0, len(g.edges))
	for k, e := range g.edges {
		ed := Edge{From: k.from, To: k.to, Calls: e.calls, Errors: e.errors, Async: e.async && !e.sync}
		e.window.measure(&ed, now.UnixNano(), g.opts.RateWindow.Nanoseconds())
		for _, s := range e.sources {
			ed.Sources = append(ed.Sources, s.name)
			if s.last.After(ed.LastSeen) {
				ed.LastSeen = s.last
			}
		}
		out = append(out, ed)
	}
	slices.SortFunc(out, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return out
}

// Stats returns the counters as of now, after expiring what is due.
func (g *Graph) Stats() Stats {
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	s := g.stats
	s.Pending = g.spans.pendingLen
	s.Indexed = len(g.spans.index)
	s.Edges = len(g.edges)
	return s
}
