package depmap

import (
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/phoenixsre/phoenix"
)

// spanKey identifies a span; span ids are only unique within a trace.
type spanKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

// spanState pairs spans with their parents. The index maps recent spans to
// their service ("" when the service is not a component, so that its
// children still find a parent and are not counted as orphans); pending
// holds children whose parent has not arrived yet. Both are FIFO-bounded in
// time and count; the queues hold expiry times in Unix nanoseconds.
type spanState struct {
	index  map[spanKey]phoenix.ComponentID
	indexQ fifo[indexItem]

	pending    map[spanKey][]pendingChild // by parent key, in arrival order
	pendingQ   fifo[pendingItem]          // may hold stale items; see compactPending
	pendingLen int                        // live children in pending
	seq        uint64
}

type indexItem struct {
	key     spanKey
	expires int64
}

type pendingChild struct {
	service phoenix.ComponentID
	failed  bool
	seq     uint64
	expires int64
}

type pendingItem struct {
	parent  spanKey
	seq     uint64
	expires int64
}

func newSpanState() spanState {
	return spanState{
		index:   make(map[spanKey]phoenix.ComponentID),
		pending: make(map[spanKey][]pendingChild),
	}
}

// AddTraces folds the spans of td into the graph and returns how many it
// took (see Stats.Spans). A span whose parent span belongs to another
// service yields the edge parent -> child; a span whose parent has not
// arrived waits for it up to PendingTTL. td is only read.
func (g *Graph) AddTraces(td ptrace.Traces) int {
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	taken := 0
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		svc, skip := serviceOf(rs.Resource())
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				if g.addSpanLocked(spans.At(k), svc, skip, now) {
					taken++
				}
			}
		}
	}
	return taken
}

// skipReason says why a resource's spans make no edge of their own.
type skipReason int

const (
	keep skipReason = iota
	noService
	invalidService
)

func serviceOf(r pcommon.Resource) (phoenix.ComponentID, skipReason) {
	v, ok := r.Attributes().Get("service.name")
	if !ok || v.Type() != pcommon.ValueTypeStr {
		return "", noService
	}
	id := phoenix.ComponentID(v.Str())
	if id.Validate() != nil {
		return "", invalidService
	}
	// A copy, so that no decoder's buffer is kept alive by the index.
	return phoenix.ComponentID(strings.Clone(string(id))), keep
}

func (g *Graph) addSpanLocked(sp ptrace.Span, svc phoenix.ComponentID, skip skipReason, now time.Time) bool {
	tid, sid := sp.TraceID(), sp.SpanID()
	if tid.IsEmpty() || sid.IsEmpty() {
		g.stats.InvalidSpan++
		return false
	}
	key := spanKey{trace: tid, span: sid}
	if _, dup := g.spans.index[key]; dup {
		g.stats.Duplicates++
		return false
	}
	g.spans.remember(key, svc, now.Add(g.opts.IndexTTL).UnixNano(), g.opts.MaxIndex, &g.stats)
	for _, c := range g.spans.adopt(key) {
		g.linkLocked(svc, c.service, c.failed, now)
	}
	switch skip {
	case noService:
		g.stats.NoService++
		return false
	case invalidService:
		g.stats.InvalidService++
		return false
	}
	g.stats.Spans++
	parent := sp.ParentSpanID()
	if parent.IsEmpty() {
		return true
	}
	failed := sp.Status().Code() == ptrace.StatusCodeError
	pkey := spanKey{trace: tid, span: parent}
	if psvc, ok := g.spans.index[pkey]; ok {
		g.linkLocked(psvc, svc, failed, now)
		return true
	}
	g.spans.wait(pkey, pendingChild{service: svc, failed: failed, expires: now.Add(g.opts.PendingTTL).UnixNano()}, g.opts.MaxPending, &g.stats)
	return true
}

// linkLocked counts one call from -> to seen in traces; nothing when the
// parent is not a component or both spans belong to the same service.
func (g *Graph) linkLocked(from, to phoenix.ComponentID, failed bool, now time.Time) {
	if from == "" || from == to {
		return
	}
	e := g.edgeLocked(from, to, SourceTrace, now)
	if e == nil {
		return
	}
	e.calls++
	if failed {
		e.errors++
	}
}

func (s *spanState) remember(key spanKey, svc phoenix.ComponentID, expires int64, max int, st *Stats) {
	for len(s.index) >= max && s.indexQ.len() > 0 {
		it := s.indexQ.pop()
		delete(s.index, it.key)
		st.IndexEvicted++
	}
	s.index[key] = svc
	s.indexQ.push(indexItem{key: key, expires: expires})
}

// adopt removes and returns the children waiting for parent.
func (s *spanState) adopt(parent spanKey) []pendingChild {
	children, ok := s.pending[parent]
	if !ok {
		return nil
	}
	delete(s.pending, parent)
	s.pendingLen -= len(children)
	return children
}

func (s *spanState) wait(parent spanKey, c pendingChild, max int, st *Stats) {
	for s.pendingLen >= max {
		if !s.dropOldestPending() {
			break
		}
		st.PendingEvicted++
	}
	s.seq++
	c.seq = s.seq
	s.pending[parent] = append(s.pending[parent], c)
	s.pendingQ.push(pendingItem{parent: parent, seq: c.seq, expires: c.expires})
	s.pendingLen++
	s.compactPending()
}

// dropOldestPending removes the oldest live pending child, skipping queue
// items whose child was adopted already. It reports whether one was removed.
func (s *spanState) dropOldestPending() bool {
	for s.pendingQ.len() > 0 {
		it := s.pendingQ.pop()
		if s.removePending(it) {
			return true
		}
	}
	return false
}

// removePending removes the child it names, if it is still waiting. A
// parent's children are in arrival order, so a live item is always the first.
func (s *spanState) removePending(it pendingItem) bool {
	children := s.pending[it.parent]
	if len(children) == 0 || children[0].seq != it.seq {
		return false
	}
	children[0] = pendingChild{}
	if len(children) == 1 {
		delete(s.pending, it.parent)
	} else {
		s.pending[it.parent] = children[1:]
	}
	s.pendingLen--
	return true
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

// expire forgets indexed spans past IndexTTL and counts children still
// waiting past PendingTTL as orphans. Queues are in arrival order, which is
// expiry order as long as the clock does not go back; if it does, entries
// just live longer.
func (s *spanState) expire(now time.Time, st *Stats) {
	n := now.UnixNano()
	for s.indexQ.len() > 0 && s.indexQ.front().expires <= n {
		delete(s.index, s.indexQ.pop().key)
	}
	for s.pendingQ.len() > 0 && s.pendingQ.front().expires <= n {
		if s.removePending(s.pendingQ.pop()) {
			st.Orphans++
		}
	}
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
