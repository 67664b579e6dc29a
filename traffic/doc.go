// Package traffic is Phoenix's traffic switcher: one proxy in front of each
// component, HTTP (a reverse proxy) or TCP, with an active set of backends
// (load-balanced, grown and shrunk by AddBackend and RemoveBackend), an
// optional pre-warmed standby, active health checks, passive outlier
// detection, and a switch that moves traffic to the standby without failing
// a request; after a switch it can fail back, on command or by policy.
//
// While the active set is suspect, unhealthy or being switched away from,
// new requests (TCP: new connections) are held rather than failed; requests
// that failed on a transport error are retried on the new route when that
// cannot apply a write twice. The proxy knows routes and backends, never why
// it switches: the control loop decides, with Confirmation's pure rule over
// the proxy's verdict, connection errors, telemetry silence and predicted
// risk, and calls Switch. The subpackage xds serves the same routes to Envoy
// and to gRPC clients.
//
// The HTTP data plane has two paths. Plain HTTP/1.1 keep-alive requests
// with bodies small enough to retry take a fast path (h1.go): heads parsed
// strictly in place, one write to a pooled backend connection, the response
// relayed by its own framing, all on the client connection's goroutine, and
// two system calls fewer per request than Go's netpoll reads would make: a
// request is written to its backend, and an answer to its client, from a
// RawConn.Read callback that then waits for the reply without first reading
// nothing (h1Backend.send, h1Conn.flushWait; the wait is bounded, for what
// came before it). On Linux its reads and writes, and the TCP proxy's, are
// raw system calls made inside RawConn callbacks (rawIO), which the
// runtime's monitor does not take for blocking calls whose processor it
// must hand over. A connection whose request the fast path declines (HTTP/1.0, upgrades,
// Expect, chunked or large request bodies, anything unusual) is handed, with
// what was read of it, to net/http and httputil.ReverseProxy for the rest of
// its life. Both share dispatch: routing, holding, retries, draining and
// accounting are the same on either. On both, a client that closes its
// connection (or only its sending side) while its request is held or at the
// backend ends the request (counted canceled, not failed) and the backend
// connection it used: at once on net/http's, within about a second on the
// fast path, which starts watching a client once its request has been at
// the backend that long.
package traffic
