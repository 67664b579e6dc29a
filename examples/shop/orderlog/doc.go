// Package orderlog is the orders service's durable store: an append-only log
// file (orders.log) of length-prefixed, CRC32C-checked records (id, value),
// replayed into an in-memory map when opened.
//
// A record is an 8-byte header, little-endian uint32 payload length n then
// uint32 CRC32C (Castagnoli) over the length bytes and the payload, followed
// by the payload: one byte id length, the id, then the value. A Store is either
// a primary, which appends with group commit and fsyncs before acknowledging,
// or a follower, which tails a log that another process appends to or
// replaces, until it is promoted.
package orderlog
