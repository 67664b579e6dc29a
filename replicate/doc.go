// Package replicate moves a stateful component's data directory to its
// replica: a verified full Snapshot first, then incremental Sync rounds, run
// continuously by a Stream that measures the replica's lag (the RPO).
//
// What changed is decided on the source side from a scan of both trees
// (plan.go); how bytes reach the destination is a Sink's business. DirSink
// writes a local directory; a network sink can replace it without touching
// the change detection. Files that only grew are extended in place so that a
// follower tailing them keeps its file open; any other change is written to a
// temp file and renamed over the old one, so readers only ever see a whole
// old or a whole new file.
package replicate
