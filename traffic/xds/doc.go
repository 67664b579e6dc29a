// Package xds serves the traffic switcher's routes to Envoy and to
// proxyless gRPC clients over xDS (the aggregated discovery service, state
// of the world), with go-control-plane's snapshot cache. Each component is a
// listener, a route, a cluster and its endpoints: the backends serving its
// traffic now. Server.Update takes a traffic.RouteChange, so a proxy's
// OnRoute keeps the snapshot current on every switch, fail back, join and
// removal.
//
// gRPC clients (node user agent "gRPC ...") get API listeners with the
// route inline, as gRPC's xds:/// resolver wants; Envoy gets socket
// listeners for the components given an address in Config.EnvoyListeners
// (HTTP connection manager or TCP proxy), and clusters for every component.
package xds
