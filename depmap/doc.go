// Package depmap builds Phoenix's live dependency graph of the protected
// application. An edge A -> B means "A calls B", so B must run before A
// can: Graph.Closure lists what a component needs, deepest first, which is
// the order in which Phoenix pre-warms replicas; Graph.Dependents lists who
// calls it.
//
// Edges come from three places. Spans, through the OTLP receivers (HTTP
// with protobuf or JSON: NewOTLPHandler; gRPC: RegisterOTLPGRPC) and the
// Zipkin v2 receiver (JSON or protobuf: NewZipkinHandler), decoded with
// the collector's pdata and openzipkin/zipkin-go. Phoenix's own proxies,
// through an Observer that resolves each accepted client to a component
// (AddrTable by IP, ProcResolver by the process holding the socket).
// Configuration, through AddEdge with SourceStatic. Each edge records its
// sources, and ages out EdgeTTL after its last sighting unless static.
//
// How spans become edges. A span whose parent belongs to another service
// makes parent -> child, whatever the kinds say, and also when a kind is
// missing (Jaeger's rule); a Zipkin server span that shares its client's
// id pairs with that client span. A producer's span and its consumers'
// (by parent or by span link) make a message-flow edge marked Async, which
// Closure and Dependents do not follow. Peers that send no spans become
// virtual nodes, named from a Zipkin remote service name, peer.service,
// server.address or the db and messaging system: a database and a broker
// at once; any other client call only if no span of another service
// answered it while its span was indexed (a sampled-out answer is credited
// to the service that answered that address before). A span waits up to
// PendingTTL for its parent: out-of-order and late spans still pair; one
// whose parent never comes is counted in Stats.Orphans.
//
// Memory stays bounded under any input: Options bounds the span index, the
// waiting spans and the edges (with their latency histograms and learnt
// peer aliases); names are interned up to a fixed count.
package depmap
