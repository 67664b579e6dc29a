// Package telemetry gathers the metrics of every component, keeps their
// history and turns them into the standard signals the engine reads.
//
// Receivers, on real sockets and with the ecosystem's wire formats: the
// Scraper reads targets' Prometheus exposition (text or OpenMetrics) each
// on its own interval and phase; the remote-write handler takes Prometheus
// remote-write 1.0 and 2.0 (client_golang's protocol handler, prompb);
// the OTLPReceiver takes OTLP metrics over HTTP and gRPC and converts them
// with Prometheus's own translator. Push receivers write through
// storage.AppendableV2: a Limiter (per-tenant series and rate limits), then
// a Mapper (the component view: series to components and signals, by
// labels), then the Store (Prometheus's tsdb: WAL, compaction, retention).
// Baselines learn each signal's normal level, spread and daily and weekly
// shape as samples arrive; PrometheusSource reads an existing Prometheus,
// Mimir or Thanos through its query API instead of storing.
package telemetry
