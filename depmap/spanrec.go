package depmap

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/phoenixsre/phoenix"
)

// spanKind mirrors OTLP's span kinds; Zipkin's map onto them.
type spanKind uint8

const (
	kindUnspecified spanKind = iota
	kindInternal
	kindServer
	kindClient
	kindProducer
	kindConsumer
)

// local reports whether spans of kind k run inside their parent's process
// when that parent is a client span: so they are children of a Zipkin
// shared server span rather than the server side of the call.
func (k spanKind) local() bool {
	return k == kindClient || k == kindInternal || k == kindProducer
}

// peerClass says what a peer that sends no spans of its own is.
type peerClass uint8

const (
	peerNone peerClass = iota
	peerExternal
	peerDatabase
	peerMessaging
)

func (c peerClass) node() NodeKind {
	switch c {
	case peerDatabase:
		return NodeDatabase
	case peerMessaging:
		return NodeMessaging
	}
	return NodeExternal
}

// maxLinks bounds the span links followed per span.
const maxLinks = 4

// spanRec is one span as the graph needs it, whatever format it came in.
type spanRec struct {
	key     spanKey
	parent  pcommon.SpanID
	service phoenix.ComponentID
	skip    skipReason
	kind    spanKind
	// shared marks a Zipkin server span that shares its id with the
	// client span of the same call.
	shared bool
	failed bool
	dur    int64 // nanoseconds
	// peer names whom a client, producer or consumer span talks to, when
	// its attributes say: a database, a broker, another service.
	peer    phoenix.ComponentID
	peerCls peerClass
	// caller names the uninstrumented caller of a root server span (a
	// Zipkin server span's remote service).
	caller phoenix.ComponentID
	links  [maxLinks]spanKey
	nlinks int
}

// deferredPeer reports whether r's peer becomes a virtual node only if no
// span of another service answers r: a client call whose peer may be
// instrumented. Database and broker peers are virtual at once.
func (r *spanRec) deferredPeer() bool {
	return r.peer != "" && r.peerCls == peerExternal && (r.kind == kindClient || r.kind == kindUnspecified)
}

// AddTraces folds the spans of td into the graph and returns how many it
// took (see Stats.Spans). td is only read. See the package documentation
// for how spans become edges.
func (g *Graph) AddTraces(td ptrace.Traces) int {
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	taken := 0
	var r spanRec
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		svc, skip := g.serviceOf(rs.Resource())
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				g.fromOTLP(&r, spans.At(k), svc, skip)
				if g.addSpanLocked(&r, now) {
					taken++
				}
			}
		}
	}
	return taken
}

// skipReason says why a span makes no edge of its own.
type skipReason uint8

const (
	keep skipReason = iota
	noService
	invalidService
)

func (g *Graph) serviceOf(r pcommon.Resource) (phoenix.ComponentID, skipReason) {
	v, ok := r.Attributes().Get("service.name")
	if !ok || v.Type() != pcommon.ValueTypeStr {
		return "", noService
	}
	id, ok := g.names.name(v.Str())
	if !ok {
		return "", invalidService
	}
	return id, keep
}

// fromOTLP fills r from an OTLP span of service svc.
func (g *Graph) fromOTLP(r *spanRec, sp ptrace.Span, svc phoenix.ComponentID, skip skipReason) {
	*r = spanRec{
		key:     spanKey{trace: sp.TraceID(), span: sp.SpanID()},
		parent:  sp.ParentSpanID(),
		service: svc,
		skip:    skip,
		kind:    spanKind(sp.Kind()),
		failed:  sp.Status().Code() == ptrace.StatusCodeError,
	}
	if r.kind > kindConsumer {
		r.kind = kindUnspecified
	}
	if start, end := sp.StartTimestamp(), sp.EndTimestamp(); end > start {
		r.dur = int64(end - start)
	}
	switch r.kind {
	case kindClient, kindProducer, kindConsumer, kindUnspecified:
		var p peerAttrs
		sp.Attributes().Range(func(k string, v pcommon.Value) bool {
			if v.Type() == pcommon.ValueTypeStr {
				p.set(k, v.Str())
			}
			return true
		})
		r.peer, r.peerCls = g.peerName(&p, r.kind)
	}
	if r.kind == kindConsumer {
		links := sp.Links()
		for i := 0; i < links.Len() && r.nlinks < maxLinks; i++ {
			l := links.At(i)
			if !l.TraceID().IsEmpty() && !l.SpanID().IsEmpty() {
				r.links[r.nlinks] = spanKey{trace: l.TraceID(), span: l.SpanID()}
				r.nlinks++
			}
		}
	}
}

// peerAttrs are the attributes (OTLP) or tags (Zipkin) that name a peer,
// old and current semantic conventions alike.
type peerAttrs struct {
	remoteService, peerService, address, dbSystem, msgSystem string
}

func (p *peerAttrs) set(k, v string) {
	switch k {
	case "peer.service":
		p.peerService = v
	case "server.address", "net.peer.name":
		if p.address == "" || k == "server.address" {
			p.address = v
		}
	case "db.system", "db.system.name":
		p.dbSystem = v
	case "messaging.system":
		p.msgSystem = v
	}
}

// peerName picks the most specific name of a span's peer: Zipkin's remote
// service name, peer.service, then the server's address, then the database
// or messaging system itself.
func (g *Graph) peerName(p *peerAttrs, kind spanKind) (phoenix.ComponentID, peerClass) {
	cls := peerExternal
	switch {
	case p.dbSystem != "":
		cls = peerDatabase
	case p.msgSystem != "" || kind == kindProducer || kind == kindConsumer:
		cls = peerMessaging
	}
	for _, s := range [...]string{p.remoteService, p.peerService, p.address, p.dbSystem, p.msgSystem} {
		if s == "" {
			continue
		}
		if id, ok := g.names.name(s); ok {
			return id, cls
		}
	}
	return "", peerNone
}
