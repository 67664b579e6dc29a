package replicate

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Sentinel errors callers can test with errors.Is.
var (
	// ErrDestinationFull means the destination ran out of space (ENOSPC or
	// EDQUOT). The round stopped; every file there is still either its old
	// or its new version. Freeing space and retrying helps.
	ErrDestinationFull = errors.New("destination disk full")
	// ErrUnsafePath means a path was refused because it could escape the
	// destination: "..", an absolute path, or a symlink on the way.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrVerify means the bytes read back from the destination do not hash
	// to what was sent. Retrying the snapshot may help; repeated failures
	// point at the destination's storage.
	ErrVerify = errors.New("verification failed")
	// ErrChanged means the destination file was not in the state the plan
	// expected (an append found another length). The next round re-plans.
	ErrChanged = errors.New("destination changed under the round")
	// ErrTransient marks a failure of the way to the destination, not of
	// the destination: a refused or broken connection, a body cut short, a
	// chunk whose checksum did not match on arrival. The round re-sends the
	// file (resuming where the destination's partial copy ends).
	ErrTransient = errors.New("transient transfer failure")
)

// Kind is what an entry is, as far as replication cares.
type Kind uint8

// Entry kinds. Only files and directories are replicated; anything else
// (symlinks, devices, sockets, pipes) is KindOther and skipped at the source.
const (
	KindFile Kind = iota + 1
	KindDir
	KindOther
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindOther:
		return "other"
	}
	return "unknown"
}

// Entry describes one path under a tree. Path is slash-separated and
// relative to the tree's root; the root itself is never an entry.
type Entry struct {
	Path    string
	Kind    Kind
	Size    int64       // bytes; 0 for non-files
	ModTime time.Time   // the file's mtime, nanosecond precision
	Perm    fs.FileMode // permission bits only
}

// FileMeta is what a sink sets on a file after writing its content.
type FileMeta struct {
	Perm fs.FileMode
	// ModTime is the mtime to give the destination file. It equals the
	// source's mtime only when the source provably did not change while it
	// was read; otherwise it is racyModTime, so the next round looks again.
	ModTime time.Time
	// Digest, unless zero, is the BLAKE3-256 of the file's whole content as
	// the source read it. A sink verifies what it wrote against it before
	// the file becomes visible, and fails with ErrVerify.
	Digest Digest
	// Checksum, unless nil, is the length and CRC-32C of the file's whole
	// content as the source read it, verified like Digest. Rounds send it
	// for files copied whole, and the Digest for patches (see Checksum).
	Checksum *Checksum
}

// Checksum is a fast whole-file check: the content's length and its CRC-32C
// (Castagnoli, hardware-accelerated: over ten times BLAKE3's speed).
//
// It is what a whole-file copy needs and all it needs. The check exists to
// catch accidents between the source's read and the destination's write:
// truncation (the length says it outright), pieces lost, repeated or
// reordered on the way or around a resume, a partial copy damaged on the
// destination's disk, a bug. A random error escapes a 32-bit CRC with
// probability 2^-32, and over the network every 1 MiB frame carries its
// own CRC-32C besides, so an error must escape both. It is no defence
// against a tamperer, but neither is an unkeyed BLAKE3 sent alongside the
// data it describes: the agents' bearer token and TLS are.
//
// A patch is another matter: it is assembled at the destination from chunk
// references chosen by 64-bit content keys, and the whole-file digest is
// what turns a key collision into ErrVerify rather than a wrong replica.
// Errors there are structured, not random (and the keys, XXH64, are not
// made to resist a chosen collision), so patches keep the BLAKE3 Digest:
// it alone decides whether a patch is right.
type Checksum struct {
	Size int64
	CRC  uint32
}

// checksumOf returns the Checksum of b.
func checksumOf(b []byte) *Checksum {
	return &Checksum{Size: int64(len(b)), CRC: crc32.Checksum(b, crcTable)}
}

// Digest is a BLAKE3-256 hash.
type Digest [32]byte

// IsZero reports whether d is unset.
func (d Digest) IsZero() bool { return d == Digest{} }

// Content is the source side of one file transfer. Meta is valid once Read
// has returned io.EOF: a source only knows the mtime that matches the bytes
// it sent after it sent them. A network sink sends Meta as a trailer.
type Content interface {
	io.Reader
	Meta() FileMeta
}

// Sink is the destination of a transfer. Every path is slash-separated and
// relative to the sink's root; implementations refuse paths that could
// escape it (ErrUnsafePath). A sink is driven by one round at a time.
type Sink interface {
	// List returns every entry under the root, parents before children,
	// leaving out the sink's own in-flight temp files.
	List(ctx context.Context) ([]Entry, error)
	// Sum returns the SHA-256 of the n bytes at offset off of the file at
	// path; fewer bytes are hashed if the file is shorter.
	Sum(ctx context.Context, path string, off, n int64) ([sha256.Size]byte, error)
	// Replace makes path hold exactly c's bytes, atomically: readers see
	// the old file or the new one, never a mix. When c.Meta().Digest is
	// set, the bytes are verified against it before the file becomes
	// visible (ErrVerify otherwise). It returns the bytes written (for a
	// remote sink, sent).
	Replace(ctx context.Context, path string, c Content) (int64, error)
	// Append adds c's bytes at the end of path, which must be exactly at
	// bytes long (else ErrChanged), in place so open readers keep reading.
	// On error the file is still a prefix of the source's.
	Append(ctx context.Context, path string, at int64, c Content) (int64, error)
	// Mkdir creates the directory path and any missing parents, and gives
	// path the permissions perm (also when it already exists).
	Mkdir(ctx context.Context, path string, perm fs.FileMode) error
	// Remove deletes path, recursively if it is a directory. A missing path
	// is not an error.
	Remove(ctx context.Context, path string) error
}

// Identified is a Content or Delta that can name the version of the file it
// carries before it is read (the source's size, mtime and inode). A sink
// that keeps the partial result of an interrupted transfer resumes it only
// for the same identity.
type Identified interface {
	Identity() string
}

// Patcher is a Sink that can build a file from ranges of files it already
// holds plus new bytes: the delta transfer of the incremental method.
type Patcher interface {
	// Manifest cuts the file at path into content-defined chunks with p
	// and returns their list, with the file's size and mtime.
	Manifest(ctx context.Context, path string, p ChunkParams) (Manifest, error)
	// Patch makes path hold the concatenation of d's pieces, atomically as
	// Replace does, verifying d.Meta().Digest. A piece copied from a
	// destination file whose size or mtime differ from the piece's Ref
	// fails with ErrChanged.
	Patch(ctx context.Context, path string, d Delta) (int64, error)
}

// BlockSummer is a Patcher that can hash fixed-size blocks of a file it
// holds, so that a delta sends only the blocks of a changed chunk that
// differ from the destination's version at the same offset.
type BlockSummer interface {
	// BlockSums returns, span after span, the key (as Chunk.Key) of each
	// bs-byte block of the file ref in spans, which must be block-aligned
	// and inside the file. A file whose size or mtime differ from ref's
	// fails with ErrChanged.
	BlockSums(ctx context.Context, ref Ref, bs int, spans []Span) ([]uint64, error)
}

// Span is a byte range of a file.
type Span struct {
	Off, Len int64
}

// Delta is the source side of a patch.
type Delta interface {
	// Next returns the next piece, or io.EOF after the last one.
	Next(ctx context.Context) (Piece, error)
	// Meta is valid once Next has returned io.EOF.
	Meta() FileMeta
}

// Piece is part of a patched file: new bytes (Data not nil) or Len bytes at
// Off of a file the destination already holds (From).
type Piece struct {
	Data []byte
	From Ref
	Off  int64
	Len  int64
}

// Size returns how many bytes of the result the piece makes.
func (p Piece) Size() int64 {
	if p.Data != nil {
		return int64(len(p.Data))
	}
	return p.Len
}

// Ref names a destination file in the version a piece expects.
type Ref struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// Flusher is a Sink that defers part of its durability work (a DirSink's
// directory fsyncs) to the end of a round. Rounds call Flush once at their
// end, also after a failure; what they wrote is durable when it returns.
type Flusher interface {
	Flush(ctx context.Context) error
}

// tempPrefix marks a sink's in-flight files. Source files with this prefix
// are not replicated: the destination would take them for debris.
const tempPrefix = ".phoenix-tmp-"

func isTempName(name string) bool {
	return strings.HasPrefix(name, tempPrefix)
}

// racyModTime is the mtime given to a destination file whose source was
// written while (or just before) it was read. No live file has it, so the
// next round compares content instead of trusting size and mtime. This is
// git's "racily clean" problem: file mtimes tick at the kernel's coarse
// clock, so a write right after a read can leave size and mtime unchanged.
var racyModTime = time.Unix(0, 0).UTC()

// racyWindow is how recent a source mtime may be, relative to the moment the
// read started, before the copy counts as racy. It must exceed the kernel's
// timestamp granularity (a jiffy, at most 10ms).
const racyWindow = 100 * time.Millisecond
