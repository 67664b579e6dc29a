// Package shop is the small application Phoenix protects in its demo and
// tests: a gateway that forwards orders, an orders service that keeps them
// in a durable log (package orderlog) and an inventory service. Main runs
// one of them per process.
//
// Every service exports Prometheus metrics, sends OpenTelemetry spans over
// OTLP/HTTP, and takes injected faults (memory leak, latency, errors, disk
// filling, crash) on an authenticated admin endpoint, so that Phoenix has
// real failures to predict and survive.
package shop
