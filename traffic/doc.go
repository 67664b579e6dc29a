// Package traffic is Phoenix's traffic switcher: one HTTP reverse proxy in
// front of each component, with an active backend, an optional pre-warmed
// standby, active and passive health checks, and a switch that moves traffic
// to the standby without failing a request.
//
// While the active backend is suspect, unhealthy or being switched away from,
// new requests are held rather than failed; requests that failed on a
// transport error are retried on the new route when that cannot apply a write
// twice. The proxy knows routes and backends, never why it switches: the
// control loop decides and calls Switch.
package traffic
