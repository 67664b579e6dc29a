// Package depmaptest generates span streams of a known topology, for the
// dependency mapper's tests and benchmarks: the answer is written down
// beside the generator, so a test can check that every true edge is found
// and no phantom one appears.
package depmaptest

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Edge is one true dependency of the shop.
type Edge struct {
	From, To string
	Async    bool
}

// ShopEdges is the shop's topology as its spans tell it:
//
//	web -> api                       HTTP, client and server spans
//	api -> orders                    HTTP; orders samples some traces out on its own
//	api -> inventory                 neither span has a kind (Jaeger's rule applies)
//	api -> legacy                    legacy is not instrumented: peer.service only
//	api -> api.stripe.com            an external API: server.address only
//	orders -> orders-db              PostgreSQL: db.system, server.address
//	orders -> kafka                  producer spans, messaging.system
//	billing -> kafka                 consumer spans, children of the producer's
//	shipping -> kafka                consumer spans in their own traces, linked to the producer's
//	inventory -> redis.shop.internal Redis: db.system, server.address
//	orders => billing, shipping      message flow (async)
//
// legacy also calls inventory, but without propagating the trace context:
// inventory's spans for those calls are roots. Only Phoenix's proxies can
// see that edge: it is ShopProxyEdges.
var ShopEdges = []Edge{
	{"api", "api.stripe.com", false},
	{"api", "inventory", false},
	{"api", "legacy", false},
	{"api", "orders", false},
	{"billing", "kafka", false},
	{"inventory", "redis.shop.internal", false},
	{"orders", "billing", true},
	{"orders", "kafka", false},
	{"orders", "orders-db", false},
	{"orders", "shipping", true},
	{"shipping", "kafka", false},
	{"web", "api", false},
}

// ShopProxyEdges are the edges no span shows.
var ShopProxyEdges = []Edge{{"legacy", "inventory", false}}

// ShopVirtual names the nodes that send no spans, with their kind as the
// dependency mapper names it.
var ShopVirtual = map[string]string{
	"api.stripe.com":      "external",
	"kafka":               "messaging",
	"legacy":              "external",
	"orders-db":           "database",
	"redis.shop.internal": "database",
}

// Options shapes a generated stream.
type Options struct {
	Seed     uint64
	Requests int // requests entering at web; each makes 14 to 16 spans
	// BatchSpans is the number of spans per export batch. Default 200.
	BatchSpans int
	// DropTrace is the share of requests sampled out at the head: no span
	// of theirs is recorded.
	DropTrace float64
	// DropOrders is the share of recorded requests whose orders spans are
	// sampled out by orders alone, so that api's client span to orders has
	// no answer in the stream.
	DropOrders float64
	// Shuffle moves each span up to this many batches later than it ended,
	// so that spans arrive out of order and late.
	Shuffle int
	// Start is the first request's start time. Default 2026-03-01 UTC.
	Start time.Time
}

// Shop generates the shop's spans as export batches, in the order an
// agent would receive them, each batch one ptrace.Traces with one
// ResourceSpans per service. It also returns the number of spans.
func Shop(o Options) ([]ptrace.Traces, int) {
	if o.BatchSpans <= 0 {
		o.BatchSpans = 200
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	}
	g := &gen{rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), o: o}
	for i := range o.Requests {
		if g.rng.Float64() < o.DropTrace {
			continue
		}
		g.request(o.Start.Add(time.Duration(i) * 5 * time.Millisecond))
	}
	return g.batches(), len(g.spans)
}

type gen struct {
	rng   *rand.Rand
	o     Options
	spans []genSpan
	ids   uint64
}

type genSpan struct {
	service    string
	trace      pcommon.TraceID
	id, parent pcommon.SpanID
	link       pcommon.SpanID // a span link in linkTrace, for consumers
	linkTrace  pcommon.TraceID
	kind       ptrace.SpanKind
	start, end time.Time
	failed     bool
	attrs      [][2]string
}

func (g *gen) traceID() pcommon.TraceID {
	var t pcommon.TraceID
	binary.BigEndian.PutUint64(t[:8], g.rng.Uint64()|1)
	binary.BigEndian.PutUint64(t[8:], g.rng.Uint64())
	return t
}

func (g *gen) spanID() pcommon.SpanID {
	g.ids++
	var s pcommon.SpanID
	binary.BigEndian.PutUint64(s[:], g.ids*0x9e3779b97f4a7c15|1)
	return s
}

// latency draws a log-normal duration around median.
func (g *gen) latency(median time.Duration) time.Duration {
	return time.Duration(float64(median) * math.Exp(0.5*g.rng.NormFloat64()))
}

// call records a client span of caller and, unless answered is false, the
// callee's server span under it, callee's work lasting about median. It
// returns the server span's id (the client's when not answered) and end.
type callSpec struct {
	caller, callee         string
	parent                 pcommon.SpanID
	clientKind, serverKind ptrace.SpanKind
	attrs                  [][2]string
	median                 time.Duration
	answered               bool
	errRate                float64
}

func (g *gen) call(trace pcommon.TraceID, at time.Time, c callSpec, inner func(server pcommon.SpanID, at time.Time) time.Time) time.Time {
	client := g.spanID()
	failed := g.rng.Float64() < c.errRate
	serverEnd := at.Add(g.latency(c.median))
	if c.answered {
		server := g.spanID()
		if inner != nil {
			if end := inner(server, at.Add(100*time.Microsecond)); end.After(serverEnd) {
				serverEnd = end
			}
		}
		g.spans = append(g.spans, genSpan{service: c.callee, trace: trace, id: server, parent: client,
			kind: c.serverKind, start: at.Add(50 * time.Microsecond), end: serverEnd, failed: failed})
	}
	end := serverEnd.Add(200 * time.Microsecond)
	g.spans = append(g.spans, genSpan{service: c.caller, trace: trace, id: client, parent: c.parent,
		kind: c.clientKind, start: at, end: end, failed: failed, attrs: c.attrs})
	return end
}

// peerCall records a client span to a peer that sends no spans.
func (g *gen) peerCall(trace pcommon.TraceID, at time.Time, c callSpec) time.Time {
	return g.call(trace, at, c, nil)
}

// request generates one request's spans, deepest first as they end.
func (g *gen) request(at time.Time) {
	trace := g.traceID()
	web := g.spanID()
	ordersOut := g.rng.Float64() < g.o.DropOrders
	client, server := ptrace.SpanKindClient, ptrace.SpanKindServer
	none := ptrace.SpanKindUnspecified
	end := g.call(trace, at, callSpec{caller: "web", callee: "api", parent: web, clientKind: client, serverKind: server,
		attrs: [][2]string{{"server.address", "api.shop.internal"}, {"http.request.method", "POST"}}, median: 8 * time.Millisecond, answered: true, errRate: 0.01},
		func(api pcommon.SpanID, at time.Time) time.Time {
			at = g.call(trace, at, callSpec{caller: "api", callee: "orders", parent: api, clientKind: client, serverKind: server,
				attrs: [][2]string{{"server.address", "orders.shop.internal"}}, median: 5 * time.Millisecond, answered: !ordersOut, errRate: 0.02},
				func(orders pcommon.SpanID, at time.Time) time.Time {
					at = g.peerCall(trace, at, callSpec{caller: "orders", parent: orders, clientKind: client,
						attrs: [][2]string{{"db.system", "postgresql"}, {"server.address", "orders-db"}, {"db.operation.name", "INSERT"}}, median: 2 * time.Millisecond})
					return g.produce(trace, orders, at)
				})
			at = g.call(trace, at, callSpec{caller: "api", callee: "inventory", parent: api, clientKind: none, serverKind: none,
				attrs: [][2]string{{"server.address", "inventory.shop.internal"}}, median: 3 * time.Millisecond, answered: true, errRate: 0.05},
				func(inv pcommon.SpanID, at time.Time) time.Time {
					return g.peerCall(trace, at, callSpec{caller: "inventory", parent: inv, clientKind: client,
						attrs: [][2]string{{"db.system", "redis"}, {"server.address", "redis.shop.internal"}}, median: 500 * time.Microsecond})
				})
			at = g.peerCall(trace, at, callSpec{caller: "api", parent: api, clientKind: client,
				attrs: [][2]string{{"peer.service", "legacy"}, {"server.address", "10.0.0.9"}}, median: 4 * time.Millisecond})
			g.legacyCallsInventory(at)
			if g.rng.IntN(4) == 0 {
				at = g.peerCall(trace, at, callSpec{caller: "api", parent: api, clientKind: client,
					attrs: [][2]string{{"server.address", "api.stripe.com"}}, median: 40 * time.Millisecond, errRate: 0.1})
			}
			return at
		})
	g.spans = append(g.spans, genSpan{service: "web", trace: trace, id: web, kind: server, start: at, end: end.Add(time.Millisecond)})
}

// produce records orders' producer span and its two consumers: billing's
// as a child of it, shipping's in a trace of its own with a link to it.
func (g *gen) produce(trace pcommon.TraceID, parent pcommon.SpanID, at time.Time) time.Time {
	prod := g.spanID()
	end := at.Add(g.latency(time.Millisecond))
	g.spans = append(g.spans, genSpan{service: "orders", trace: trace, id: prod, parent: parent, kind: ptrace.SpanKindProducer,
		start: at, end: end, attrs: [][2]string{{"messaging.system", "kafka"}, {"messaging.destination.name", "orders"}}})
	kafka := [][2]string{{"messaging.system", "kafka"}, {"messaging.operation.type", "process"}}
	bill := g.spanID()
	billEnd := end.Add(g.latency(3 * time.Millisecond))
	g.spans = append(g.spans, genSpan{service: "billing", trace: trace, id: g.spanID(), parent: bill, kind: ptrace.SpanKindInternal, start: end, end: billEnd})
	g.spans = append(g.spans, genSpan{service: "billing", trace: trace, id: bill, parent: prod, kind: ptrace.SpanKindConsumer,
		start: end, end: billEnd, attrs: kafka})
	g.spans = append(g.spans, genSpan{service: "shipping", trace: g.traceID(), id: g.spanID(), link: prod, linkTrace: trace,
		kind: ptrace.SpanKindConsumer, start: end, end: end.Add(g.latency(2 * time.Millisecond)), attrs: kafka})
	return end
}

// legacyCallsInventory records inventory serving legacy, which propagates
// no context: a new trace whose root is inventory's server span.
func (g *gen) legacyCallsInventory(at time.Time) {
	trace := g.traceID()
	root := g.spanID()
	end := g.peerCall(trace, at, callSpec{caller: "inventory", parent: root, clientKind: ptrace.SpanKindClient,
		attrs: [][2]string{{"db.system", "redis"}, {"server.address", "redis.shop.internal"}}, median: 500 * time.Microsecond})
	g.spans = append(g.spans, genSpan{service: "inventory", trace: trace, id: root, kind: ptrace.SpanKindServer, start: at, end: end})
}

// batches cuts the spans into export batches, moving each up to Shuffle
// batches later, and builds one ptrace.Traces per batch.
func (g *gen) batches() []ptrace.Traces {
	n := (len(g.spans) + g.o.BatchSpans - 1) / g.o.BatchSpans
	slots := make([][]int, n+g.o.Shuffle)
	for i := range g.spans {
		b := i / g.o.BatchSpans
		if g.o.Shuffle > 0 {
			b += g.rng.IntN(g.o.Shuffle + 1)
		}
		slots[b] = append(slots[b], i)
	}
	var out []ptrace.Traces
	for _, slot := range slots {
		if len(slot) == 0 {
			continue
		}
		g.rng.Shuffle(len(slot), func(i, j int) { slot[i], slot[j] = slot[j], slot[i] })
		out = append(out, g.build(slot))
	}
	return out
}

func (g *gen) build(idx []int) ptrace.Traces {
	td := ptrace.NewTraces()
	byService := map[string]ptrace.SpanSlice{}
	for _, i := range idx {
		s := g.spans[i]
		ss, ok := byService[s.service]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.service)
			sc := rs.ScopeSpans().AppendEmpty()
			sc.Scope().SetName("depmaptest")
			ss = sc.Spans()
			byService[s.service] = ss
		}
		sp := ss.AppendEmpty()
		sp.SetTraceID(s.trace)
		sp.SetSpanID(s.id)
		sp.SetParentSpanID(s.parent)
		sp.SetName(s.service + " op")
		sp.SetKind(s.kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.end))
		if s.failed {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		for _, kv := range s.attrs {
			sp.Attributes().PutStr(kv[0], kv[1])
		}
		if !s.link.IsEmpty() {
			l := sp.Links().AppendEmpty()
			l.SetTraceID(s.linkTrace)
			l.SetSpanID(s.link)
		}
	}
	return td
}
