package depmap

import "github.com/phoenixsre/phoenix"

// NodeKind says what a node of the graph is, as far as the graph knows.
type NodeKind string

// Node kinds. A service sent spans of its own; a database, a message broker
// or an external service is a virtual node, named by the spans of those
// that call it; a component is known only from configuration or from
// Phoenix's proxies.
const (
	NodeComponent NodeKind = "component"
	NodeService   NodeKind = "service"
	NodeDatabase  NodeKind = "database"
	NodeMessaging NodeKind = "messaging"
	NodeExternal  NodeKind = "external"
)

// Virtual reports whether nodes of kind k send no spans and so are known
// only through their callers.
func (k NodeKind) Virtual() bool {
	return k == NodeDatabase || k == NodeMessaging || k == NodeExternal
}

// merge combines what two observations say about one node: a service is a
// service whatever else called it; among virtual kinds the first stays.
func (k NodeKind) merge(o NodeKind) NodeKind {
	switch {
	case k == NodeService || o == "":
		return k
	case o == NodeService || k == "" || k == NodeComponent:
		return o
	}
	return k
}

// aliases remembers which service answered calls addressed to a peer name
// (peer.service, server.address, a Zipkin remote service name), so that a
// call whose answer was not traced (sampled out, lost) is still counted to
// the service and does not make a virtual node of its address. A name that
// several services answered to (such as "localhost" on one host) is
// ambiguous: such calls are dropped and counted, never guessed.
type aliases struct {
	max int
	m   map[phoenix.ComponentID]alias
}

type alias struct {
	to        phoenix.ComponentID
	ambiguous bool
}

// learn records that a call addressed to peer was answered by svc.
func (a *aliases) learn(peer, svc phoenix.ComponentID) {
	if peer == "" || svc == "" || peer == svc {
		return
	}
	cur, ok := a.m[peer]
	switch {
	case ok && cur.to != svc:
		a.m[peer] = alias{ambiguous: true}
	case !ok && len(a.m) < a.max:
		a.m[peer] = alias{to: svc}
	}
}

// resolve names the node a call addressed to peer reaches: the service
// that answered such calls before, else peer itself as a virtual node.
// ok is false when the name is ambiguous.
func (a *aliases) resolve(peer phoenix.ComponentID) (to phoenix.ComponentID, known, ok bool) {
	cur, hit := a.m[peer]
	switch {
	case !hit:
		return peer, false, true
	case cur.ambiguous:
		return "", false, false
	}
	return cur.to, true, true
}
