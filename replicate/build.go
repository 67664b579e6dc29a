package replicate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/zeebo/blake3"
)

// partialPrefix marks the temp file of a transfer that can be resumed. Its
// name is derived from the target path and the source version, so a
// transfer of the same version finds it again after a crash; OpenDir keeps
// such files, and a transfer of the same path for another version deletes
// them.
const partialPrefix = tempPrefix + "part-"

func isPartialName(name string) bool { return strings.HasPrefix(name, partialPrefix) }

// partialName returns the resumable temp file's name for (p, id), in p's
// directory: a hash of the path, then one of the version.
func partialName(p, id string) string {
	return path.Join(path.Dir(p), partialPrefix+shortHash(p)+"-"+shortHash(id))
}

func shortHash(s string) string {
	sum := blake3.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// build is a file being written under a temp name in the destination,
// renamed over its target by commit. It checksums everything the file
// holds as it is written.
type build struct {
	d      *DirSink
	target string // slash path of the result
	tmp    string // OS path of the temp file, relative to the root
	f      *os.File
	crc    uint32         // CRC-32C of the file's content, for FileMeta.Checksum
	h      *blake3.Hasher // BLAKE3 of it, for FileMeta.Digest; nil unless asked for at the start
	n      int64          // bytes in the file
	// wb starts the file's writeback as it grows. After a rewind it still
	// starts at 0: the kept part, which may still be dirty, goes too.
	wb     writeback
	resume bool // keep the temp file on failure
	whole  bool // the file's content as sent, not a patch
	// scratch is copyRange's buffer, kept across its calls.
	scratch []byte
	locked  bool // holds the partial's lock
}

// lockPartial waits until no other build uses the partial name.
func (d *DirSink) lockPartial(ctx context.Context, name string) error {
	for {
		d.mu.Lock()
		busy, ok := d.partials[name]
		if !ok {
			d.partials[name] = make(chan struct{})
			d.mu.Unlock()
			return nil
		}
		d.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *DirSink) unlockPartial(name string) {
	d.mu.Lock()
	if ch, ok := d.partials[name]; ok {
		close(ch)
		delete(d.partials, name)
	}
	d.mu.Unlock()
}

// release ends the build's hold on its partial.
func (b *build) release() {
	if b.locked {
		b.locked = false
		b.d.unlockPartial(b.tmp)
	}
}

// startBuild opens the temp file for p. With id empty the temp file is new
// and from must be 0. Otherwise it is the partial for (p, id): it is created
// if missing, must hold at least from bytes, and is cut to from; its first
// from bytes are read back into the checks. Partials of p for other
// versions are deleted. digest says whether to compute the BLAKE3 digest as
// the file is written (a patch); without, a Digest given at commit is
// checked by reading the file back.
func (d *DirSink) startBuild(ctx context.Context, p, id string, from int64, digest bool) (*build, error) {
	name, err := d.resolve(p)
	if err != nil {
		return nil, err
	}
	b := &build{d: d, target: p, resume: id != "", whole: !digest}
	if digest {
		b.h = blake3.New()
	}
	if id == "" {
		if from != 0 {
			return nil, fmt.Errorf("resume at %d without a version", from)
		}
		base := filepath.Base(name)
		if len(base) > maxTempBase {
			base = base[:maxTempBase] // keep the temp name within NAME_MAX
		}
		b.tmp = filepath.Join(filepath.Dir(name), tempPrefix+base+"-"+rand.Text()[:12])
		b.f, err = d.root.OpenFile(b.tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create temp: %w", classify(err))
		}
		return b, nil
	}
	b.tmp = filepath.FromSlash(partialName(p, id))
	// A transfer cut on the source's side may still be draining here when
	// the source resumes it: the resumed one waits for it to finish.
	if err := d.lockPartial(ctx, b.tmp); err != nil {
		return nil, err
	}
	b.locked = true
	d.dropPartials(p, path.Base(partialName(p, id)))
	b.f, err = d.root.OpenFile(b.tmp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		d.unlockPartial(b.tmp)
		return nil, fmt.Errorf("open partial: %w", classify(err))
	}
	if err := b.rewind(ctx, from); err != nil {
		b.f.Close()
		d.unlockPartial(b.tmp)
		return nil, err
	}
	return b, nil
}

// rewind keeps the partial's first from bytes, checksumming them: what the
// disk gives back is what the checks cover, so a partial damaged there
// fails verification.
func (b *build) rewind(ctx context.Context, from int64) error {
	info, err := b.f.Stat()
	if err != nil {
		return err
	}
	if info.Size() < from {
		return fmt.Errorf("resume at %d, but the partial copy holds %d bytes: %w", from, info.Size(), ErrChanged)
	}
	if err := b.f.Truncate(from); err != nil {
		return fmt.Errorf("cut partial at %d: %w", from, err)
	}
	if _, err := copyCtx(ctx, writerFunc(b.sum), io.NewSectionReader(b.f, 0, from)); err != nil {
		return fmt.Errorf("read partial: %w", err)
	}
	b.n = from
	_, err = b.f.Seek(from, io.SeekStart)
	return err
}

// sum adds data, the file's next bytes, to the checks.
func (b *build) sum(data []byte) error {
	b.crc = crc32.Update(b.crc, crcTable, data)
	if b.h != nil {
		b.h.Write(data)
	}
	return nil
}

// partialSize returns how many bytes the partial for (p, id) holds; 0 if
// there is none.
func (d *DirSink) partialSize(p, id string) (int64, error) {
	if _, err := d.resolve(p); err != nil {
		return 0, err
	}
	info, err := d.root.Lstat(filepath.FromSlash(partialName(p, id)))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !info.Mode().IsRegular() {
		return 0, fmt.Errorf("partial for %s is not a regular file: %w", p, ErrUnsafePath)
	}
	return info.Size(), nil
}

// dropPartials deletes the partials of p except the one named keep.
func (d *DirSink) dropPartials(p, keep string) {
	dir := filepath.FromSlash(path.Dir(p))
	f, err := d.root.Open(dir)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	prefix := partialPrefix + shortHash(p) + "-"
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && n != keep {
			_ = d.root.Remove(filepath.Join(dir, n))
		}
	}
}

// write appends data to the file.
func (b *build) write(data []byte) error {
	if err := b.put(data); err != nil {
		return err
	}
	b.crc = crc32.Update(b.crc, crcTable, data)
	b.wrote(data)
	return nil
}

// writeSummed is write given crc, the CRC-32C of data (a large data
// frame's, checked on arrival: the file's CRC is derived from it, not
// computed again).
func (b *build) writeSummed(data []byte, crc uint32) error {
	if err := b.put(data); err != nil {
		return err
	}
	b.crc = crcCombine(b.crc, crc, int64(len(data)))
	b.wrote(data)
	return nil
}

// put writes data at the end of the file.
func (b *build) put(data []byte) error {
	b.d.manifests.touch()
	if _, err := b.f.Write(data); err != nil {
		return classify(err)
	}
	return nil
}

// wrote accounts for data, put at the end of the file: all checks but the
// CRC, the file's size, its writeback.
func (b *build) wrote(data []byte) {
	if b.h != nil {
		b.h.Write(data)
	}
	b.n += int64(len(data))
	b.wb.wrote(b.f, b.n)
}

// copyRange appends n bytes at off of the destination file ref, which must
// still have ref's size and mtime.
func (b *build) copyRange(ctx context.Context, ref Ref, off, n int64) error {
	b.d.manifests.touch()
	if off < 0 || n < 0 || off+n > ref.Size || off+n < off {
		return fmt.Errorf("copy %d+%d from %s of %d bytes: out of range", off, n, ref.Path, ref.Size)
	}
	name, err := b.d.resolve(ref.Path)
	if err != nil {
		return fmt.Errorf("copy from %s: %w", ref.Path, err)
	}
	f, err := b.d.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy from %s: gone: %w", ref.Path, ErrChanged)
		}
		return fmt.Errorf("copy from %s: %w", ref.Path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("copy from %s: %w", ref.Path, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("copy from %s: not a regular file: %w", ref.Path, ErrUnsafePath)
	}
	if info.Size() != ref.Size || !info.ModTime().Equal(ref.ModTime) {
		return fmt.Errorf("copy from %s: expected %d bytes of %s, found %d of %s: %w",
			ref.Path, ref.Size, ref.ModTime.Format(time.RFC3339Nano), info.Size(), info.ModTime().Format(time.RFC3339Nano), ErrChanged)
	}
	if _, err := copyBuf(ctx, writerFunc(b.write), io.NewSectionReader(f, off, n), &b.scratch); err != nil {
		return fmt.Errorf("copy from %s: %w", ref.Path, err) // write classified it
	}
	return nil
}

// commit verifies the checks meta carries, gives the file meta's mode and
// mtime, makes it durable (fsync: the rename must never expose a file whose
// data a crash could still lose) and renames it over the target.
func (b *build) commit(meta FileMeta) error {
	defer b.release()
	b.d.manifests.touch()
	if err := b.verify(meta); err != nil {
		b.abort(false)
		return err
	}
	err := b.f.Chmod(meta.Perm)
	if err == nil {
		err = b.d.root.Chtimes(b.tmp, time.Time{}, meta.ModTime)
	}
	if err == nil {
		err = b.f.Sync()
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = b.d.root.Rename(b.tmp, filepath.FromSlash(b.target))
	}
	if err != nil {
		_ = b.d.root.Remove(b.tmp)
		return classify(err)
	}
	b.d.touched(path.Dir(b.target))
	b.d.manifests.replaced(b.target, b.n, b.whole)
	return nil
}

// verify compares the file with the checks meta carries, failing with
// ErrVerify.
func (b *build) verify(meta FileMeta) error {
	if c := meta.Checksum; c != nil && (c.Size != b.n || c.CRC != b.crc) {
		return fmt.Errorf("%s: %d bytes written with CRC-32C %08x, the source read %d with %08x: %w", b.target, b.n, b.crc, c.Size, c.CRC, ErrVerify)
	}
	if meta.Digest.IsZero() {
		return nil
	}
	h := b.h
	if h == nil {
		// Not computed on the way: read the file back (from the page
		// cache, as a rule).
		h = blake3.New()
		if _, err := io.Copy(h, io.NewSectionReader(b.f, 0, b.n)); err != nil {
			return fmt.Errorf("%s: read back for its digest: %w", b.target, err)
		}
	}
	var got Digest
	copy(got[:], h.Sum(nil))
	if got != meta.Digest {
		return fmt.Errorf("%s: BLAKE3 of the %d bytes written is %x, the source's is %x: %w", b.target, b.n, got[:8], meta.Digest[:8], ErrVerify)
	}
	return nil
}

// abort closes the file and deletes it, unless keep is set and the build is
// resumable: then it stays for the next attempt of the same version.
func (b *build) abort(keep bool) {
	defer b.release()
	_ = b.f.Close()
	if !keep || !b.resume {
		_ = b.d.root.Remove(b.tmp)
	}
}

// keepAfter says whether a failure leaves a partial worth resuming: not
// when the disk is full (its space is better freed) nor when what was
// written is wrong.
func keepAfter(err error) bool {
	return !errors.Is(err, ErrDestinationFull) && !errors.Is(err, ErrVerify) && !errors.Is(err, ErrChanged)
}

// Limits of one BlockSums request.
const (
	maxBlockSpans = 1 << 16
	maxBlockBytes = 256 << 20
)

// spanBlocks counts the bs-byte blocks of spans.
func spanBlocks(spans []Span, bs int) int64 {
	var n int64
	for _, sp := range spans {
		n += sp.Len / int64(bs)
	}
	return n
}

// checkSpans refuses spans that are not block-aligned runs inside a file of
// size bytes, or too many.
func checkSpans(spans []Span, bs int, size int64) error {
	if bs < 64 || bs > maxChunkMax {
		return fmt.Errorf("block size %d outside 64..%d", bs, maxChunkMax)
	}
	if len(spans) > maxBlockSpans {
		return fmt.Errorf("%d spans, over %d", len(spans), maxBlockSpans)
	}
	var total int64
	for _, sp := range spans {
		if sp.Off < 0 || sp.Len <= 0 || sp.Off%int64(bs) != 0 || sp.Len%int64(bs) != 0 || sp.Off > size-sp.Len {
			return fmt.Errorf("span %d+%d: not whole %d-byte blocks inside %d bytes", sp.Off, sp.Len, bs, size)
		}
		if total += sp.Len; total > maxBlockBytes {
			return fmt.Errorf("spans cover over %d bytes", maxBlockBytes)
		}
	}
	return nil
}

// BlockSums implements BlockSummer.
func (d *DirSink) BlockSums(ctx context.Context, ref Ref, bs int, spans []Span) ([]uint64, error) {
	return d.blockSums(ctx, ref, bs, spans, chunkKey)
}

// blockSums is BlockSums with blocks keyed by key.
func (d *DirSink) blockSums(ctx context.Context, ref Ref, bs int, spans []Span, key func([]byte) uint64) ([]uint64, error) {
	if err := checkSpans(spans, bs, ref.Size); err != nil {
		return nil, fmt.Errorf("block sums of %s: %w", ref.Path, err)
	}
	name, err := d.resolve(ref.Path)
	if err != nil {
		return nil, fmt.Errorf("block sums of %s: %w", ref.Path, err)
	}
	if err := d.mustBeFile(name); err != nil {
		return nil, fmt.Errorf("block sums of %s: %w", ref.Path, err)
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("block sums of %s: %w", ref.Path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() != ref.Size || !info.ModTime().Equal(ref.ModTime) {
		return nil, fmt.Errorf("block sums of %s: the file changed: %w", ref.Path, ErrChanged)
	}
	out := make([]uint64, 0, spanBlocks(spans, bs))
	buf := make([]byte, bs)
	for _, sp := range spans {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for off := sp.Off; off < sp.Off+sp.Len; off += int64(bs) {
			if _, err := f.ReadAt(buf, off); err != nil {
				return nil, fmt.Errorf("block sums of %s at %d: %w", ref.Path, off, err)
			}
			out = append(out, key(buf))
		}
	}
	return out, nil
}
