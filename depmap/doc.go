// Package depmap builds Phoenix's live dependency graph of the protected
// application from the spans its services send (OTLP/HTTP), from static
// configuration and from Phoenix's own proxies. An edge A -> B means "A calls
// B", so B must run before A can: Graph.Closure lists what a component needs,
// deepest first, which is the order in which Phoenix pre-warms replicas.
// Memory stays bounded under any input: see Options for the bounds on the
// span index, the spans waiting for their parent and the edges.
package depmap
