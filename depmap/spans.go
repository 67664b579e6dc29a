package depmap

import (
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/phoenixsre/phoenix"
)

// spanKey identifies a span; span ids are only unique within a trace.
type spanKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

// spanState pairs spans with their parents. The index maps recent spans to
// what their children need to know (a span whose service is not a
// component is indexed too, so that its children find a parent and are not
// counted as orphans); pending holds children whose parent has not arrived
// yet. Both are FIFO-bounded in time and count; the queues hold expiry
// times in Unix nanoseconds.
type spanState struct {
	index  map[spanKey]indexEntry
	indexQ fifo[indexItem]

	pending    map[spanKey][]pendingChild // by parent key, in arrival order
	pendingQ   fifo[pendingItem]          // may hold stale items; see compactPending
	pendingLen int                        // live children in pending
	seq        uint64
}

// Halves of a span id: Zipkin lets the server span of a call share the
// client span's id, marked shared.
const (
	halfPlain uint8 = 1 << iota
	halfShared
)

// indexEntry is what the index keeps of a span id: the service of each
// half, and of the plain half what decides a virtual edge when it retires.
type indexEntry struct {
	plainSvc, sharedSvc phoenix.ComponentID
	peer                phoenix.ComponentID // a deferred peer, see spanRec.deferredPeer
	dur                 int64
	kind                spanKind // the plain half's
	peerCls             peerClass
	halves              uint8
	paired              bool // a span of another service answered this one
	failed              bool
}

// svc is the service the span's children run in: the server half's when
// the id is shared.
func (e *indexEntry) svc() phoenix.ComponentID {
	if e.halves&halfShared != 0 {
		return e.sharedSvc
	}
	return e.plainSvc
}

// kindForChildren is the kind of the half children attach to.
func (e *indexEntry) kindForChildren() spanKind {
	if e.halves&halfShared != 0 {
		return kindServer
	}
	return e.kind
}

type indexItem struct {
	key     spanKey
	expires int64
}

// pendingChild is a span waiting for its parent.
type pendingChild struct {
	svc phoenix.ComponentID
	dur int64
	seq uint64
	// fallback is a shared span's own parent id, tried when the client
	// half of its call never comes.
	fallback pcommon.SpanID
	expires  int64
	kind     spanKind
	failed   bool
	viaLink  bool // the parent is a span link: message flow
	// parentSvc is set on a child that waits for a server half although
	// the client half is here: the caller to count if the wait is vain.
	parentSvc phoenix.ComponentID
	// sharedSelf marks a shared server span waiting for the client half of
	// its own id.
	sharedSelf bool
}

type pendingItem struct {
	parent  spanKey
	seq     uint64
	expires int64
}

func newSpanState() spanState {
	return spanState{
		index:   make(map[spanKey]indexEntry),
		pending: make(map[spanKey][]pendingChild),
	}
}

// addSpanLocked folds one span into the graph and reports whether it was
// taken (see Stats.Spans).
func (g *Graph) addSpanLocked(r *spanRec, now time.Time) bool {
	if r.key.trace.IsEmpty() || r.key.span.IsEmpty() {
		g.stats.InvalidSpan++
		return false
	}
	half := halfPlain
	if r.shared {
		half = halfShared
	}
	e, exists := g.spans.index[r.key]
	if exists && e.halves&half != 0 {
		g.stats.Duplicates++
		return false
	}
	if r.shared {
		e.sharedSvc = r.service
	} else {
		e.plainSvc, e.kind, e.failed, e.dur = r.service, r.kind, r.failed, r.dur
		if r.skip == keep && r.deferredPeer() {
			e.peer, e.peerCls = r.peer, r.peerCls
		}
	}
	e.halves |= half
	if e.halves == halfPlain|halfShared {
		g.pairLocked(&e, e.sharedSvc)
	}
	g.adoptLocked(r.key, &e, half, now)
	if exists {
		g.spans.index[r.key] = e
	} else {
		g.rememberLocked(r.key, e, now)
	}

	switch r.skip {
	case noService:
		g.stats.NoService++
		return false
	case invalidService:
		g.stats.InvalidService++
		return false
	}
	g.stats.Spans++
	g.peerCallsLocked(r, now)
	c := pendingChild{svc: r.service, kind: r.kind, failed: r.failed, dur: r.dur}
	switch {
	case r.shared:
		// The server half of a call: its caller is the client half of the
		// same id; failing that, its parent.
		c.sharedSelf, c.fallback = true, r.parent
		if e.halves&halfPlain != 0 {
			g.relateLocked(&e, &c, true, now)
			g.spans.index[r.key] = e
		} else {
			g.waitLocked(r.key, c, now)
		}
	case !r.parent.IsEmpty():
		g.childLocked(spanKey{trace: r.key.trace, span: r.parent}, c, now)
	}
	for _, l := range r.links[:r.nlinks] {
		lc := c
		lc.viaLink = true
		g.childLocked(l, lc, now)
	}
	return true
}

// childLocked relates c to its parent if the parent is known and c need
// not wait longer, else makes c wait for it.
func (g *Graph) childLocked(parent spanKey, c pendingChild, now time.Time) {
	if pe, ok := g.spans.index[parent]; ok {
		done := g.relateLocked(&pe, &c, false, now)
		g.spans.index[parent] = pe
		if done {
			return
		}
	}
	g.waitLocked(parent, c, now)
}

// relateLocked decides what child c says about its parent e and counts the
// call. It reports false, counting nothing, when c must go on waiting: a
// local span (client, internal, producer) of another service under a
// client span is the child of a Zipkin shared server span not yet here,
// which is the one to count the call; unless force says waiting is over.
// c.parentSvc then remembers the caller, in case e retires first.
func (g *Graph) relateLocked(e *indexEntry, c *pendingChild, force bool, now time.Time) bool {
	cl := call{failed: c.failed, dur: c.dur}
	if c.sharedSelf {
		g.pairLocked(e, c.svc)
		g.callLocked(e.plainSvc, c.svc, NodeService, NodeService, false, cl, now)
		return true
	}
	plainClient := e.halves == halfPlain && e.kind == kindClient
	if plainClient && c.kind.local() && !c.viaLink && !force && c.svc != e.plainSvc {
		g.pairLocked(e, c.svc)
		c.parentSvc = e.plainSvc
		return false
	}
	pk := e.kindForChildren()
	async := c.viaLink || c.kind == kindConsumer || pk == kindProducer
	if !async && e.halves == halfPlain && (e.kind == kindClient || e.kind == kindUnspecified) {
		g.pairLocked(e, c.svc) // a client span, or one of no kind, answered by another service
	}
	g.callLocked(e.svc(), c.svc, NodeService, NodeService, async, cl, now)
	return true
}

// pairLocked records that a span of svc answered e's client half.
func (g *Graph) pairLocked(e *indexEntry, svc phoenix.ComponentID) {
	if svc == "" || svc == e.plainSvc {
		return
	}
	e.paired = true
	g.aliases.learn(e.peer, svc)
}

// peerCallsLocked counts the calls r makes to, or takes from, nodes that
// send no spans and need not wait for an answer: a database, a broker,
// the uninstrumented caller of a root server span.
func (g *Graph) peerCallsLocked(r *spanRec, now time.Time) {
	cl := call{failed: r.failed, dur: r.dur}
	switch {
	case r.peer != "" && (r.kind == kindProducer || r.kind == kindConsumer || r.peerCls == peerDatabase):
		g.stats.PeerCalls++
		g.callLocked(r.service, r.peer, NodeService, r.peerCls.node(), false, cl, now)
	case r.caller != "" && r.kind == kindServer && r.parent.IsEmpty():
		g.stats.PeerCalls++
		g.callLocked(r.caller, r.service, NodeExternal, NodeService, false, cl, now)
	}
}

// retireLocked is called as e leaves the index: a client call that no span
// of another service answered goes to its peer, or to the service that
// answered calls to that peer before.
func (g *Graph) retireLocked(e indexEntry, now time.Time) {
	if e.peer == "" || e.paired || e.plainSvc == "" {
		return
	}
	to, known, ok := g.aliases.resolve(e.peer)
	if !ok {
		g.stats.PeerAmbiguous++
		return
	}
	kind := e.peerCls.node()
	if known {
		kind = NodeService
	} else {
		g.stats.PeerCalls++
	}
	g.callLocked(e.plainSvc, to, NodeService, kind, false, call{failed: e.failed, dur: e.dur}, now)
}

// rememberLocked indexes a new span id, retiring the oldest at MaxIndex.
func (g *Graph) rememberLocked(key spanKey, e indexEntry, now time.Time) {
	s := &g.spans
	for len(s.index) >= g.opts.MaxIndex && s.indexQ.len() > 0 {
		it := s.indexQ.pop()
		if old, ok := s.index[it.key]; ok {
			delete(s.index, it.key)
			g.stats.IndexEvicted++
			g.retireLocked(old, now)
		}
	}
	s.index[key] = e
	s.indexQ.push(indexItem{key: key, expires: now.Add(g.opts.IndexTTL).UnixNano()})
}

// adoptLocked relates the children waiting for key, which has just gained
// half, to it; children that must wait for the other half stay.
func (g *Graph) adoptLocked(key spanKey, e *indexEntry, half uint8, now time.Time) {
	s := &g.spans
	children, ok := s.pending[key]
	if !ok {
		return
	}
	kept := children[:0]
	for _, c := range children {
		// A shared span waits for the plain half of its own id only.
		if c.sharedSelf && half != halfPlain || !g.relateLocked(e, &c, false, now) {
			kept = append(kept, c)
			continue
		}
		s.pendingLen--
	}
	clear(children[len(kept):])
	if len(kept) == 0 {
		delete(s.pending, key)
	} else {
		s.pending[key] = kept
	}
}

// waitLocked makes c wait for parent, evicting the oldest waiting span at
// MaxPending.
func (g *Graph) waitLocked(parent spanKey, c pendingChild, now time.Time) {
	s := &g.spans
	for s.pendingLen >= g.opts.MaxPending {
		if _, _, ok := s.dropOldestPending(); !ok {
			break
		}
		g.stats.PendingEvicted++
	}
	s.seq++
	c.seq = s.seq
	c.expires = now.Add(g.opts.PendingTTL).UnixNano()
	s.pending[parent] = append(s.pending[parent], c)
	s.pendingQ.push(pendingItem{parent: parent, seq: c.seq, expires: c.expires})
	s.pendingLen++
	s.compactPending()
}

// dropOldestPending removes the oldest live pending child, skipping queue
// items whose child was adopted already.
func (s *spanState) dropOldestPending() (spanKey, pendingChild, bool) {
	for s.pendingQ.len() > 0 {
		it := s.pendingQ.pop()
		if c, ok := s.removePending(it); ok {
			return it.parent, c, true
		}
	}
	return spanKey{}, pendingChild{}, false
}

// removePending removes and returns the child it names, if it is still
// waiting.
func (s *spanState) removePending(it pendingItem) (pendingChild, bool) {
	children := s.pending[it.parent]
	i := slices.IndexFunc(children, func(c pendingChild) bool { return c.seq == it.seq })
	if i < 0 {
		return pendingChild{}, false
	}
	c := children[i]
	switch {
	case len(children) == 1:
		delete(s.pending, it.parent)
	case i == 0: // the usual case, oldest first: O(1) even for a parent with many children
		children[0] = pendingChild{}
		s.pending[it.parent] = children[1:]
	default:
		s.pending[it.parent] = slices.Delete(children, i, i+1)
	}
	s.pendingLen--
	return c, true
}

// compactPending rebuilds the queue from the live children once adopted
// children leave it mostly stale, so that it stays within about twice
// MaxPending items.
func (s *spanState) compactPending() {
	if s.pendingQ.len() <= 2*s.pendingLen+1024 {
		return
	}
	items := make([]pendingItem, 0, s.pendingLen)
	for parent, children := range s.pending {
		for _, c := range children {
			items = append(items, pendingItem{parent: parent, seq: c.seq, expires: c.expires})
		}
	}
	slices.SortFunc(items, func(a, b pendingItem) int {
		if a.seq < b.seq {
			return -1
		}
		return 1
	})
	s.pendingQ = fifo[pendingItem]{items: items}
}

// expireSpansLocked retires indexed spans past IndexTTL, and settles
// children still waiting past PendingTTL: linked to the best parent then
// known (Stats.Late), or counted as orphans. Queues are in arrival order,
// which is expiry order as long as the clock does not go back; if it does,
// entries just live longer.
func (g *Graph) expireSpansLocked(now time.Time) {
	s := &g.spans
	n := now.UnixNano()
	for s.pendingQ.len() > 0 && s.pendingQ.front().expires <= n {
		it := s.pendingQ.pop()
		c, ok := s.removePending(it)
		if !ok {
			continue
		}
		if g.settleLocked(it.parent, c, now) {
			g.stats.Late++
		} else {
			g.stats.Orphans++
		}
	}
	for s.indexQ.len() > 0 && s.indexQ.front().expires <= n {
		key := s.indexQ.pop().key
		if e, ok := s.index[key]; ok {
			delete(s.index, key)
			g.retireLocked(e, now)
		}
	}
}

// settleLocked relates a child whose wait is over to the best parent now
// known: a shared span to its own parent when its client half never came;
// a child that waited for a server half to the client half.
func (g *Graph) settleLocked(parent spanKey, c pendingChild, now time.Time) bool {
	if c.sharedSelf {
		if c.fallback.IsEmpty() {
			return false
		}
		parent.span = c.fallback
		c.sharedSelf = false
	}
	pe, ok := g.spans.index[parent]
	if !ok {
		if c.parentSvc == "" {
			return false
		}
		g.callLocked(c.parentSvc, c.svc, NodeService, NodeService, false, call{failed: c.failed, dur: c.dur}, now)
		return true
	}
	g.relateLocked(&pe, &c, true, now)
	g.spans.index[parent] = pe
	return true
}

// fifo is a slice-backed queue that reuses its space once half is consumed.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }
func (q *fifo[T]) front() T { return q.items[q.head] }
func (q *fifo[T]) push(v T) { q.items = append(q.items, v) }

func (q *fifo[T]) pop() T {
	v := q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head >= 1024 && 2*q.head >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return v
}
