// Package telemetry gathers the standard health signals of every component.
//
// A Scraper reads each target's Prometheus /metrics endpoint (text exposition,
// or OpenMetrics when the target answers with it) on an interval, turns the
// metric families into phoenix signals (memory, cpu, disk, latency p99, request
// rate, error ratio) and appends them to a History, an in-memory ring per
// (component, environment, signal). Rates and interval quantities come from the
// difference between two consecutive successful scrapes of the same target.
package telemetry
