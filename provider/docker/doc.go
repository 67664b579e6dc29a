// Package docker is the provider that runs Phoenix's replicas as containers
// through the Docker Engine API (the official Go client, version negotiated,
// so an engine speaking API 1.41 works).
//
// Containers run on a network of their own ("phoenix-secondary" by
// default), from an image made of our own static binary (EnsureImage: no
// registry, FROM scratch), with CPU and memory limits from the spec. Each
// is named and labelled after its instance ID and the provider's namespace,
// so a new Provider value, after a restart, finds and adopts or removes what
// the last one started. Instance.Addr is the container's IP on that network
// (the host routes to a bridge network), and Instance.DataDir a host
// directory bind-mounted at /data.
//
// Faults stops, kills, pauses and disconnects containers through the same
// API, for tests and the demo.
package docker
