// Package replicate moves a stateful component's data directory to its
// replica. A Method, chosen per component, says how: "snapshot" (a
// consistent full copy: quiesce hooks, or passes until a pass finds nothing
// changed; then changed files whole), "incremental" (the same full copy,
// then deltas of FastCDC content-defined chunks against what the
// destination already holds, deduplicated across files) or "hook" (the
// owner's commands, e.g. a database's own replication). A Stream runs a
// Method's incremental rounds continuously and exports the replica's lag.
//
// What changed is decided on the source side from a scan of both trees
// (plan.go); how bytes reach the destination is a Sink's business: DirSink
// writes a local directory, RemoteSink a target Agent over HTTP(S), with
// checked frames, resumable partial files and bearer-token auth. Every file
// written whole or patched is verified on arrival against the source's
// check before it is renamed into place (length and CRC-32C for a file sent
// whole, BLAKE3 for a patch: see Checksum) and made durable (fsync; the
// writeback of a large file is started as it arrives, so that wait is for
// its last part only); files that only grew are extended in place so a
// follower tailing them keeps its file open.
//
// A delta needs the chunk list of the destination's version of a file. The
// source keeps the lists of what it sent (ChunkCache); for a file it sent
// whole, or one it does not know (after a restart), it asks the target. A
// target agent chunks the files it was sent whole once it has been idle for
// a moment (manifests.go), so that the first round after a full copy finds
// those lists ready instead of waiting while the target reads each changed
// file through.
package replicate
