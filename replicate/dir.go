package replicate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// copyChunk is how many bytes move between two context checks: a cancelled
// round stops within one chunk.
const copyChunk = 256 << 10

// maxTempBase is how much of a file's name its temp file's name repeats.
const maxTempBase = 100

// DirSink is a Sink writing a local directory. All access goes through an
// os.Root, so no path, however crafted, reaches outside the directory; on
// top of that, symlinks on the way to a target are refused, since Phoenix
// never creates any there.
type DirSink struct {
	root *os.Root
	dir  string

	mu       sync.Mutex
	dirty    map[string]bool          // directories whose entries changed since the last Flush
	partials map[string]chan struct{} // partial files in use, closed when released

	// manifests, when set (a target agent's sink), remembers the chunk
	// lists of the files written whole.
	manifests *manifestCache
}

var (
	_ Sink        = (*DirSink)(nil)
	_ Flusher     = (*DirSink)(nil)
	_ Patcher     = (*DirSink)(nil)
	_ BlockSummer = (*DirSink)(nil)
)

// OpenDir opens (creating it if needed) the destination directory dir and
// deletes temp files a crashed earlier round left behind, except the
// partial copies a resumed transfer can continue. Only one writer
// may use a destination at a time. Close releases it.
func OpenDir(dir string) (*DirSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open destination %s: %w", dir, classify(err))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open destination %s: %w", dir, err)
	}
	d := &DirSink{root: root, dir: dir, dirty: make(map[string]bool), partials: make(map[string]chan struct{})}
	if err := d.recoverJournals(); err != nil {
		root.Close()
		return nil, err
	}
	if err := d.removeTemps(); err != nil {
		root.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the directory.
func (d *DirSink) Close() error {
	if d.manifests != nil {
		d.manifests.close()
	}
	return d.root.Close()
}

// cacheManifests makes the sink remember the chunk lists of the files it
// writes whole, computed in the background (see manifestCache): for a sink
// that lives across rounds, as a target agent's does.
func (d *DirSink) cacheManifests(log *slog.Logger) {
	d.manifests = newManifestCache(d.root, log)
}

// Dir returns the directory the sink writes.
func (d *DirSink) Dir() string { return d.dir }

func (d *DirSink) removeTemps() error {
	return fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("clean destination %s: %w", d.dir, err)
		}
		if p != "." && isTempName(e.Name()) && !(isPartialName(e.Name()) && e.Type().IsRegular()) {
			if err := d.root.RemoveAll(p); err != nil {
				return fmt.Errorf("clean destination %s: remove %s: %w", d.dir, p, err)
			}
			if e.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
}

// List implements Sink.
func (d *DirSink) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if p == "." || isTempName(e.Name()) {
			return nil
		}
		ent, ok, err := entryOf(p, e)
		if err != nil || !ok {
			return err
		}
		out = append(out, ent)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list destination %s: %w", d.dir, err)
	}
	return out, nil
}

// entryOf describes a walked entry. ok is false when it vanished meanwhile.
func entryOf(p string, e fs.DirEntry) (Entry, bool, error) {
	info, err := e.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	ent := Entry{Path: p, ModTime: info.ModTime(), Perm: info.Mode().Perm()}
	switch {
	case info.Mode().IsRegular():
		ent.Kind, ent.Size = KindFile, info.Size()
	case info.IsDir():
		ent.Kind = KindDir
	default:
		ent.Kind = KindOther
	}
	return ent, true, nil
}

// Sum implements Sink.
func (d *DirSink) Sum(ctx context.Context, p string, off, n int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if off < 0 || n < 0 {
		return sum, fmt.Errorf("sum %s: negative range %d+%d", p, off, n)
	}
	name, err := d.resolve(p)
	if err != nil {
		return sum, fmt.Errorf("sum %s: %w", p, err)
	}
	if err := d.mustBeFile(name); err != nil {
		return sum, fmt.Errorf("sum %s: %w", p, err)
	}
	f, err := d.root.Open(name)
	if err != nil {
		return sum, fmt.Errorf("sum %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := copyCtx(ctx, h, io.NewSectionReader(f, off, n)); err != nil {
		return sum, fmt.Errorf("sum %s: %w", p, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Replace implements Sink: temp file in the same directory, verified
// against c's digest, fsync, mode and mtime, rename over path. The
// directory is fsynced by Flush.
func (d *DirSink) Replace(ctx context.Context, p string, c Content) (int64, error) {
	b, err := d.startBuild(ctx, p, "", 0, false)
	if err != nil {
		return 0, fmt.Errorf("replace %s: %w", p, err)
	}
	if _, err := copyCtx(ctx, writerFunc(b.write), c); err != nil {
		b.abort(false)
		return b.n, fmt.Errorf("replace %s: %w", p, classify(err))
	}
	if err := b.commit(c.Meta()); err != nil {
		return b.n, fmt.Errorf("replace %s: %w", p, err)
	}
	return b.n, nil
}

// Patch implements Patcher.
func (d *DirSink) Patch(ctx context.Context, p string, delta Delta) (int64, error) {
	var b fileWriter
	var err error
	if base, ok := inPlaceBase(delta); ok {
		b, err = d.startInPlace(p, base)
	} else {
		b, err = d.startBuild(ctx, p, "", 0, true)
	}
	if err != nil {
		return 0, fmt.Errorf("patch %s: %w", p, err)
	}
	var written int64
	for {
		pc, err := delta.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			if pc.Data != nil {
				err = b.write(pc.Data)
				written += int64(len(pc.Data))
			} else {
				err = b.copyRange(ctx, pc.From, pc.Off, pc.Len)
			}
		}
		if err != nil {
			b.abort(false)
			return written, fmt.Errorf("patch %s: %w", p, err)
		}
	}
	if err := b.commit(delta.Meta()); err != nil {
		return written, fmt.Errorf("patch %s: %w", p, err)
	}
	return written, nil
}

// inPlaceBase reports whether d asks to be applied in place, and over what.
func inPlaceBase(d Delta) (Ref, bool) {
	if ip, ok := d.(InPlacer); ok {
		return ip.InPlace()
	}
	return Ref{}, false
}

// Manifest implements Patcher.
func (d *DirSink) Manifest(ctx context.Context, p string, params ChunkParams) (Manifest, error) {
	return d.manifest(ctx, p, params, chunkKey, chunkKeyName)
}

// manifest is Manifest with chunks keyed by key, named keyName.
func (d *DirSink) manifest(ctx context.Context, p string, params ChunkParams, key func([]byte) uint64, keyName string) (Manifest, error) {
	name, err := d.resolve(p)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	if err := d.mustBeFile(name); err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	f, err := d.root.Open(name)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	cached := d.manifests != nil && params == DefaultChunkParams && keyName == chunkKeyName
	if cached {
		if chunks, ok := d.manifests.get(p, info); ok {
			return Manifest{Size: info.Size(), ModTime: info.ModTime(), Chunks: chunks}, nil
		}
	}
	chunks, err := manifestOf(ctx, io.NewSectionReader(f, 0, info.Size()), params, key)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	if after, err := f.Stat(); cached && err == nil && versionOf(after) == versionOf(info) {
		d.manifests.put(p, info, chunks)
	}
	return Manifest{Size: info.Size(), ModTime: info.ModTime(), Chunks: chunks}, nil
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) error

func (w writerFunc) Write(p []byte) (int, error) {
	if err := w(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Append implements Sink.
func (d *DirSink) Append(ctx context.Context, p string, at int64, c Content) (int64, error) {
	name, err := d.resolve(p)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", p, err)
	}
	if err := d.mustBeFile(name); err != nil {
		return 0, fmt.Errorf("append %s: %w", p, err)
	}
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", p, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", p, err)
	}
	if info.Size() != at {
		return 0, fmt.Errorf("append %s: expected %d bytes there, found %d: %w", p, at, info.Size(), ErrChanged)
	}
	d.manifests.touch()
	defer d.manifests.replaced(p, 0, false)
	n, err := copyCtx(ctx, &appender{f: f, end: at, wb: writeback{started: at}}, c)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return n, fmt.Errorf("append %s at %d: %w", p, at, classify(err))
	}
	meta := c.Meta()
	if info.Mode().Perm() != meta.Perm {
		if err := f.Chmod(meta.Perm); err != nil {
			return n, fmt.Errorf("append %s: chmod: %w", p, err)
		}
	}
	if err := d.root.Chtimes(name, time.Time{}, meta.ModTime); err != nil {
		return n, fmt.Errorf("append %s: set mtime: %w", p, err)
	}
	return n, nil
}

// Mkdir implements Sink. perm is applied exactly, regardless of the umask.
func (d *DirSink) Mkdir(ctx context.Context, p string, perm fs.FileMode) error {
	name, err := d.resolve(p)
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	if err := d.root.MkdirAll(name, perm); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, classify(err))
	}
	if err := d.root.Chmod(name, perm); err != nil {
		return fmt.Errorf("mkdir %s: chmod: %w", p, err)
	}
	d.touched(path.Dir(p))
	return nil
}

// Remove implements Sink.
func (d *DirSink) Remove(ctx context.Context, p string) error {
	name, err := d.resolve(p)
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	d.manifests.removed(p)
	err = d.root.RemoveAll(name)
	d.manifests.removed(p) // and what a chunking that was reading it kept meanwhile
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	d.dropPartials(p, "")
	d.touched(path.Dir(p))
	return nil
}

// Flush implements Flusher: it fsyncs every directory in which a file was
// renamed, created or removed since the last Flush, so that a round's
// renames survive a crash. One fsync per directory per round, rather than
// one per file.
func (d *DirSink) Flush(ctx context.Context) error {
	d.mu.Lock()
	dirs := d.dirty
	d.dirty = make(map[string]bool)
	d.mu.Unlock()
	var errs []error
	for dir := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("flush %s: %w", d.dir, errors.Join(errs...))
	}
	return nil
}

func (d *DirSink) touched(dir string) {
	d.mu.Lock()
	d.dirty[dir] = true
	d.mu.Unlock()
}

// resolve checks p and returns it in the OS's form. Every existing parent
// must be a real directory: a symlinked parent is refused even when os.Root
// would allow it, because a destination tree only ever holds what Phoenix
// wrote, and Phoenix writes no symlinks.
func (d *DirSink) resolve(p string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", err
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		info, err := d.root.Lstat(filepath.FromSlash(p[:i]))
		if errors.Is(err, fs.ErrNotExist) {
			break // created later, by us
		}
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("parent %s is a symlink: %w", p[:i], ErrUnsafePath)
		}
		if !info.IsDir() {
			return "", fmt.Errorf("parent %s is not a directory", p[:i])
		}
	}
	return filepath.FromSlash(p), nil
}

// mustBeFile refuses to read or extend anything but a regular file, so a
// symlink planted at the destination is never written through.
func (d *DirSink) mustBeFile(name string) error {
	info, err := d.root.Lstat(name)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s): %w", info.Mode().Type(), ErrUnsafePath)
	}
	return nil
}

// syncDir fsyncs a directory so a rename or unlink in it survives a crash.
func (d *DirSink) syncDir(p string) error {
	f, err := d.root.Open(filepath.FromSlash(p))
	if err != nil {
		return fmt.Errorf("open directory %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", p, err)
	}
	return nil
}

// checkPath accepts a slash-separated path relative to a root that names
// something strictly inside it: no "..", no absolute path, no empty or "."
// element, no NUL. It is the gate for every path a sink receives, which a
// network sink will read off the wire.
func checkPath(p string) error {
	if p == "." || !fs.ValidPath(p) || strings.ContainsRune(p, 0) {
		return fmt.Errorf("path %q: must be a relative slash-separated path inside the destination, without '..': %w", p, ErrUnsafePath)
	}
	return nil
}

// classify marks out-of-space errors with ErrDestinationFull, keeping the
// original error in the chain.
func classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrDestinationFull, err)
	}
	return err
}

// copyCtx copies r to w, checking ctx before every read so that a cancelled
// round stops within one chunk.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	var buf []byte
	return copyBuf(ctx, w, r, &buf)
}

// copyBuf is copyCtx through *buf, made on first use and kept for the
// caller's next copies: a patch copies thousands of ranges, and a buffer
// made for each (a quarter MiB, zeroed) cost the target more CPU than the
// hashing of what it copied.
func copyBuf(ctx context.Context, w io.Writer, r io.Reader, bufp *[]byte) (int64, error) {
	if len(*bufp) < copyChunk {
		*bufp = make([]byte, copyChunk)
	}
	buf := *bufp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			k, werr := w.Write(buf[:m])
			n += int64(k)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Stater is a Sink that can describe one path without listing the tree. A
// round uses it to learn where a destination file stands before it sends
// the file again after a failure.
type Stater interface {
	// Stat describes path; ok is false if nothing is there.
	Stat(ctx context.Context, path string) (e Entry, ok bool, err error)
}

var _ Stater = (*DirSink)(nil)

// Stat implements Stater.
func (d *DirSink) Stat(ctx context.Context, p string) (Entry, bool, error) {
	name, err := d.resolve(p)
	if err != nil {
		return Entry{}, false, fmt.Errorf("stat %s: %w", p, err)
	}
	info, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("stat %s: %w", p, err)
	}
	ent := Entry{Path: p, ModTime: info.ModTime(), Perm: info.Mode().Perm()}
	switch {
	case info.Mode().IsRegular():
		ent.Kind, ent.Size = KindFile, info.Size()
	case info.IsDir():
		ent.Kind = KindDir
	default:
		ent.Kind = KindOther
	}
	return ent, true, nil
}

// statDir checks that dir exists and is a directory.
func statDir(dir string) (fs.FileInfo, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return info, nil
}
