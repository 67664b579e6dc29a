package replicate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/time/rate"
)

// scanSource lists the regular files and directories under root. Entries
// that are not replicated (symlinks, devices, sockets, pipes, names with the
// reserved temp prefix) are counted in skipped and logged at level.
func scanSource(ctx context.Context, root *os.Root, log *slog.Logger, level slog.Level) (entries []Entry, skipped int, err error) {
	err = fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != "." {
				return nil // removed while we walked: the next round sees it gone
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if p == "." {
			return nil
		}
		ent, ok, err := entryOf(p, e)
		if err != nil || !ok {
			return err
		}
		if ent.Kind == KindOther || isTempName(e.Name()) {
			skipped++
			log.Log(ctx, level, "not replicated", "path", p, "type", e.Type().String())
			if ent.Kind == KindDir {
				return fs.SkipDir
			}
			return nil
		}
		entries = append(entries, ent)
		return nil
	})
	if err != nil {
		return nil, skipped, fmt.Errorf("scan source %s: %w", root.Name(), err)
	}
	return entries, skipped, nil
}

// fileState is what the destination holds of a file after a round, as the
// source's size and mtime that produced it.
type fileState struct {
	size    int64
	modTime time.Time
}

// check says which whole-file check a sourceFile computes over what it
// hands out.
type check int

const (
	checkNone     check = iota // an append: the tail is not checked whole
	checkChecksum              // a whole copy: FileMeta.Checksum, CRC-32C
	checkDigest                // a patch: FileMeta.Digest, BLAKE3
)

// sourceFile is the Content of one source file, read from its current
// offset to EOF. It checksums what it hands out, and at EOF decides which
// mtime the destination may carry (see racyModTime).
type sourceFile struct {
	ctx   context.Context
	f     *os.File
	lim   *rate.Limiter // nil: unthrottled
	start time.Time     // wall clock when reading began; compared with the kernel's mtimes
	base  int64         // offset reading started at
	n     int64         // bytes handed out
	check check
	dg    *digester // checkDigest
	crc   uint32    // checkChecksum
	id    string
	meta  FileMeta
	state fileState
	done  bool
}

var (
	_ Content    = (*sourceFile)(nil)
	_ Identified = (*sourceFile)(nil)
	_ crcKeeper  = (*sourceFile)(nil)
)

// newSourceFile reads f from offset base, computing the check over what it
// reads (which then covers bytes base onwards: callers check whole files
// from 0). start must be taken before any byte of f that the destination
// will hold was read.
func newSourceFile(ctx context.Context, f *os.File, base int64, start time.Time, c check, lim *rate.Limiter) (*sourceFile, error) {
	if _, err := f.Seek(base, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seek %s to %d: %w", f.Name(), base, err)
	}
	s := &sourceFile{ctx: ctx, f: f, start: start, base: base, lim: lim, check: c}
	if c == checkDigest {
		s.dg = newDigester()
	}
	if info, err := f.Stat(); err == nil {
		s.id = identity(info)
	}
	return s, nil
}

// identity names the version of a file: size, mtime and inode.
func identity(info fs.FileInfo) string {
	var ino uint64
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d-%d-%d", info.Size(), info.ModTime().UnixNano(), ino)
}

// Identity implements Identified.
func (s *sourceFile) Identity() string { return s.id }

// Read implements io.Reader. It fails with ctx's error once ctx is done, so
// a sink copying it stops promptly.
func (s *sourceFile) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.done {
		return 0, io.EOF
	}
	m, err := s.f.Read(p)
	s.n += int64(m)
	switch s.check {
	case checkChecksum:
		s.crc = crc32.Update(s.crc, crcTable, p[:m])
	case checkDigest:
		if m > 0 {
			if werr := s.dg.write(s.ctx, p[:m]); werr != nil {
				return m, werr
			}
		}
	}
	if werr := throttle(s.ctx, s.lim, m); werr != nil {
		return m, werr
	}
	if err == io.EOF {
		if ferr := s.finish(); ferr != nil {
			return m, ferr
		}
	}
	return m, err
}

// finish records the metadata matching the bytes read. The source's mtime
// is passed on only if the file provably did not change while it was read:
// its size is what was read, and its mtime is older than the read's start by
// more than the kernel's timestamp granularity.
func (s *sourceFile) finish() error {
	info, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.f.Name(), err)
	}
	size := s.base + s.n
	s.done = true
	s.state = fileState{size: size, modTime: info.ModTime()}
	s.meta = FileMeta{Perm: info.Mode().Perm(), ModTime: info.ModTime()}
	switch s.check {
	case checkChecksum:
		s.meta.Checksum = &Checksum{Size: s.n, CRC: s.crc}
	case checkDigest:
		s.meta.Digest = s.dg.digest()
	}
	if info.Size() != size || !info.ModTime().Before(s.start.Add(-racyWindow)) {
		s.meta.ModTime = racyModTime
	}
	return nil
}

// Meta implements Content.
func (s *sourceFile) Meta() FileMeta { return s.meta }

// crcSoFar implements crcKeeper: the CRC-32C of what Read handed out, if
// the file is checksummed whole.
func (s *sourceFile) crcSoFar() (uint32, bool) { return s.crc, s.check == checkChecksum }

// close releases what reading holds beyond the file (the digest's
// goroutine). It does not close the file, which is the caller's.
func (s *sourceFile) close() {
	if s.dg != nil {
		s.dg.close()
	}
}

// digestBuffers is how many copies of read bytes a digester queues.
const digestBuffers = 4

// digester computes a BLAKE3 digest on a goroutine of its own, so that
// hashing a patched file's bytes (about 2 GB/s) runs beside cutting them
// into chunks and keying them (about 1 GB/s) rather than after it, on the
// one goroutine that reads the file. It hashes copies of what it is given,
// queued in at most digestBuffers buffers; write blocks while all are.
type digester struct {
	in   chan []byte
	free chan []byte
	sum  chan Digest
	stop chan struct{}
	once sync.Once
}

func newDigester() *digester {
	d := &digester{in: make(chan []byte, digestBuffers), free: make(chan []byte, digestBuffers),
		sum: make(chan Digest, 1), stop: make(chan struct{})}
	for range digestBuffers {
		d.free <- nil // allocated on first use, at the size reads come in
	}
	go d.run()
	return d
}

func (d *digester) run() {
	h := blake3.New()
	for {
		select {
		case b, ok := <-d.in:
			if !ok {
				var out Digest
				copy(out[:], h.Sum(nil))
				d.sum <- out
				return
			}
			h.Write(b)
			d.free <- b // never blocks: there are digestBuffers buffers in all
		case <-d.stop:
			return
		}
	}
}

// write queues a copy of p to be hashed.
func (d *digester) write(ctx context.Context, p []byte) error {
	var b []byte
	select {
	case b = <-d.free:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.in <- append(b[:0], p...) // never blocks, as in run
	return nil
}

// digest waits for the hash of all that was written; write must not be
// called after it.
func (d *digester) digest() Digest {
	close(d.in)
	return <-d.sum
}

// close stops the hashing if digest has not ended it. It may be called
// more than once.
func (d *digester) close() { d.once.Do(func() { close(d.stop) }) }

// sumRange hashes n bytes of f at off (fewer if f is shorter).
func sumRange(ctx context.Context, f *os.File, off, n int64, lim *rate.Limiter) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	h := sha256.New()
	if _, err := copyCtx(ctx, h, &throttledReader{ctx: ctx, r: io.NewSectionReader(f, off, n), lim: lim}); err != nil {
		return out, fmt.Errorf("read %s at %d: %w", f.Name(), off, err)
	}
	copy(out[:], h.Sum(nil))
	return out, nil
}
