package replicate

import (
	"bufio"
	"context"
	"encoding/binary"
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

// A patch of a large file that mostly keeps its bytes where they are (a
// database whose pages were rewritten) is applied in place: rewriting the
// whole file to a temp copy would write, and fsync, the full size to change
// a few pages. To stay atomic across a crash it goes through a redo
// journal, written by hand because it is a few dozen lines and no library
// journals pwrites to one file:
//
//	header:  "PHXJ1" | path length (uint16 LE) | path
//	records: offset (uint64 LE) | length (uint32 LE) | bytes
//	trailer: 0xFFFFFFFFFFFFFFFF | new size (int64) | perm (uint32) | mtime ns (int64) | CRC-32C of all before (uint32)
//
// The journal is fsynced before the first byte of the file changes; the
// file is then written, fsynced, and the journal removed. OpenDir replays a
// complete journal it finds (a crash during the writes) and deletes an
// incomplete one (a crash before them: the file is still the old one).
// Readers of the file may see a mix of old and new pages while the writes
// run, as they would see the source's own writes.
const (
	journalPrefix = tempPrefix + "journal-"
	journalMagic  = "PHXJ1"
	journalEnd    = ^uint64(0)
	// inPlaceMin is the smallest file patched in place.
	inPlaceMin = 1 << 20
)

// errNotInPlace means a patch moved too much to be applied in place: the
// source sends it again as a whole-file patch.
var errNotInPlace = errors.New("patch moves too much to apply in place")

// InPlacer is a Delta that asks to be applied in place over the
// destination's version Base of the same file.
type InPlacer interface {
	InPlace() (base Ref, ok bool)
}

// fileWriter is what a patch or replace writes through: a temp file
// renamed into place (build) or a journaled in-place update (inplace).
type fileWriter interface {
	write(data []byte) error
	// writeSummed is write given the CRC-32C of data, known already.
	writeSummed(data []byte, crc uint32) error
	copyRange(ctx context.Context, ref Ref, off, n int64) error
	commit(meta FileMeta) error
	abort(keep bool)
	size() int64
}

var (
	_ fileWriter = (*build)(nil)
	_ fileWriter = (*inplace)(nil)
)

func (b *build) size() int64 { return b.n }

// inplace is a patch being journaled over its own target.
type inplace struct {
	d           *DirSink
	target      string
	base        Ref
	f           *os.File // the target, read for unchanged ranges and written at commit
	jname       string
	j           *os.File
	jw          *bufio.Writer
	crc         uint32
	h           *blake3.Hasher
	n           int64 // bytes of the result so far
	logged      int64 // bytes in the journal's records
	maxLog      int64
	scratch     []byte
	copyScratch []byte // copyRange's buffer for the base's own bytes
}

// startInPlace opens the target, which must be base, and a new journal.
func (d *DirSink) startInPlace(p string, base Ref) (*inplace, error) {
	name, err := d.resolve(p)
	if err != nil {
		return nil, err
	}
	if base.Path != p {
		return nil, fmt.Errorf("in-place patch of %s over %s: %w", p, base.Path, errNotInPlace)
	}
	if err := d.mustBeFile(name); err != nil {
		return nil, err
	}
	f, err := d.root.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && (info.Size() != base.Size || !info.ModTime().Equal(base.ModTime)) {
		err = fmt.Errorf("in-place patch of %s: the file changed: %w", p, ErrChanged)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	jname := filepath.Join(filepath.Dir(name), journalPrefix+shortHash(p))
	j, err := d.root.OpenFile(jname, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal: %w", classify(err))
	}
	ip := &inplace{d: d, target: p, base: base, f: f, jname: jname, j: j, jw: bufio.NewWriterSize(j, 256<<10),
		h: blake3.New(), maxLog: min(64<<20, base.Size/2)}
	hdr := append([]byte(journalMagic), binary.LittleEndian.AppendUint16(nil, uint16(len(p)))...)
	if err := ip.log(append(hdr, p...)); err != nil {
		ip.abort(false)
		return nil, err
	}
	return ip, nil
}

func (ip *inplace) size() int64 { return ip.n }

// log appends b to the journal.
func (ip *inplace) log(b []byte) error {
	ip.crc = crc32.Update(ip.crc, crcTable, b)
	if _, err := ip.jw.Write(b); err != nil {
		return classify(err)
	}
	return nil
}

func (ip *inplace) write(data []byte) error {
	ip.d.manifests.touch()
	if ip.logged += int64(len(data)); ip.logged > ip.maxLog {
		return fmt.Errorf("%s: over %d bytes change: %w", ip.target, ip.maxLog, errNotInPlace)
	}
	rec := binary.LittleEndian.AppendUint64(nil, uint64(ip.n))
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(data)))
	if err := ip.log(rec); err != nil {
		return err
	}
	if err := ip.log(data); err != nil {
		return err
	}
	ip.h.Write(data)
	ip.n += int64(len(data))
	return nil
}

// writeSummed implements fileWriter. crc goes unused: the journal's CRC
// covers each record's header with its data, and an in-place change is
// at most maxLog (a change of a file, not the file), so its second pass
// was not worth a combine here.
func (ip *inplace) writeSummed(data []byte, _ uint32) error { return ip.write(data) }

// copyRange keeps a range that stays where it is (it is only read, for the
// digest); any other copy is journaled as data, read before the file
// changes.
func (ip *inplace) copyRange(ctx context.Context, ref Ref, off, n int64) error {
	ip.d.manifests.touch()
	if !sameRef(ref, ip.base) || off != ip.n {
		for n > 0 {
			k := min(n, maxPieceData)
			data, err := ip.d.readRange(ref, off, k, &ip.scratch)
			if err != nil {
				return err
			}
			if err := ip.write(data); err != nil {
				return err
			}
			off, n = off+k, n-k
		}
		return nil
	}
	if off+n > ip.base.Size {
		return fmt.Errorf("copy %d+%d of %s beyond its %d bytes", off, n, ref.Path, ip.base.Size)
	}
	m, err := copyBuf(ctx, ip.h, io.NewSectionReader(ip.f, off, n), &ip.copyScratch)
	ip.n += m
	return err
}

// readRange reads n bytes at off of the destination file ref into buf.
func (d *DirSink) readRange(ref Ref, off, n int64, buf *[]byte) ([]byte, error) {
	name, err := d.resolve(ref.Path)
	if err != nil {
		return nil, err
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("copy from %s: %w", ref.Path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() || info.Size() != ref.Size || !info.ModTime().Equal(ref.ModTime) || off < 0 || off+n > ref.Size {
		return nil, fmt.Errorf("copy %d+%d from %s: not the version expected: %w", off, n, ref.Path, ErrChanged)
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("copy from %s: %w", ref.Path, err)
	}
	return b, nil
}

// commit verifies the digest, completes and fsyncs the journal, then
// applies it.
func (ip *inplace) commit(meta FileMeta) error {
	ip.d.manifests.touch()
	if err := ip.seal(meta); err != nil {
		return err
	}
	err := ip.d.replay(ip.jname)
	ip.d.manifests.replaced(ip.target, ip.n, false)
	if err != nil {
		return fmt.Errorf("apply journal of %s: %w", ip.target, err)
	}
	return nil
}

// seal verifies the digest and completes the journal durably; from then on
// the patch survives a crash (OpenDir replays it).
func (ip *inplace) seal(meta FileMeta) error {
	if !meta.Digest.IsZero() {
		var got Digest
		copy(got[:], ip.h.Sum(nil))
		if got != meta.Digest {
			ip.abort(false)
			return fmt.Errorf("%s: BLAKE3 of the patched content is %x, the source's is %x: %w", ip.target, got[:8], meta.Digest[:8], ErrVerify)
		}
	}
	tr := binary.LittleEndian.AppendUint64(nil, journalEnd)
	tr = binary.LittleEndian.AppendUint64(tr, uint64(ip.n))
	tr = binary.LittleEndian.AppendUint32(tr, uint32(meta.Perm.Perm()))
	tr = binary.LittleEndian.AppendUint64(tr, uint64(meta.ModTime.UnixNano()))
	err := ip.log(tr)
	if err == nil {
		_, err = ip.jw.Write(binary.LittleEndian.AppendUint32(nil, ip.crc))
	}
	if err == nil {
		err = ip.jw.Flush()
	}
	if err == nil {
		err = ip.j.Sync()
	}
	if err != nil {
		ip.abort(false)
		return classify(err)
	}
	ip.j.Close()
	ip.f.Close()
	return nil
}

func (ip *inplace) abort(bool) {
	ip.j.Close()
	ip.f.Close()
	_ = ip.d.root.Remove(ip.jname)
}

// replay applies the complete journal jname to its target and removes it;
// an incomplete journal is only removed.
func (d *DirSink) replay(jname string) error {
	data, err := d.readJournal(jname)
	if err != nil {
		_ = d.root.Remove(jname)
		return err
	}
	if data == nil {
		return d.root.Remove(jname)
	}
	j := parseJournal(data)
	name, err := d.resolve(j.target)
	if err != nil {
		return err
	}
	if err := d.mustBeFile(name); err != nil {
		return err
	}
	f, err := d.root.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, rec := range j.records {
		if _, err := f.WriteAt(rec.data, rec.off); err != nil {
			return classify(err)
		}
	}
	target, size, perm, mtime := j.target, j.size, j.perm, j.mtime
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return classify(err)
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := d.root.Chtimes(name, time.Time{}, mtime); err != nil {
		return err
	}
	if err := d.root.Remove(jname); err != nil {
		return err
	}
	d.touched(path.Dir(target))
	return nil
}

// journal is a parsed complete journal.
type journal struct {
	target  string
	records []journalRecord
	size    int64
	perm    fs.FileMode
	mtime   time.Time
}

type journalRecord struct {
	off  int64
	data []byte
}

// parseJournal decodes a journal journalComplete accepted.
func parseJournal(data []byte) journal {
	pl := int(binary.LittleEndian.Uint16(data[len(journalMagic):]))
	j := journal{target: string(data[len(journalMagic)+2 : len(journalMagic)+2+pl])}
	rest := data[len(journalMagic)+2+pl:]
	for {
		off := binary.LittleEndian.Uint64(rest)
		if off == journalEnd {
			break
		}
		n := binary.LittleEndian.Uint32(rest[8:])
		j.records = append(j.records, journalRecord{off: int64(off), data: rest[12 : 12+n]})
		rest = rest[12+n:]
	}
	j.size = int64(binary.LittleEndian.Uint64(rest[8:]))
	j.perm = fs.FileMode(binary.LittleEndian.Uint32(rest[16:])).Perm()
	j.mtime = time.Unix(0, int64(binary.LittleEndian.Uint64(rest[20:])))
	return j
}

// readJournal returns the journal's bytes if it is complete and intact,
// nil if it is incomplete.
func (d *DirSink) readJournal(jname string) ([]byte, error) {
	f, err := d.root.Open(jname)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if !journalComplete(data) {
		return nil, nil
	}
	return data, nil
}

// journalComplete checks a journal's structure and trailer CRC.
func journalComplete(data []byte) bool {
	h := len(journalMagic) + 2
	if len(data) < h+32 || !strings.HasPrefix(string(data), journalMagic) {
		return false
	}
	pl := int(binary.LittleEndian.Uint16(data[len(journalMagic):]))
	if checkPath(string(data[h:min(h+pl, len(data))])) != nil {
		return false
	}
	pos := h + pl
	for pos+12 <= len(data) {
		off := binary.LittleEndian.Uint64(data[pos:])
		if off == journalEnd {
			end := pos + 28
			if end+4 != len(data) || int64(binary.LittleEndian.Uint64(data[pos+8:])) < 0 {
				return false
			}
			return crc32.Checksum(data[:end], crcTable) == binary.LittleEndian.Uint32(data[end:])
		}
		n := int(binary.LittleEndian.Uint32(data[pos+8:]))
		if off > 1<<62 || pos+12+n > len(data) {
			return false
		}
		pos += 12 + n
	}
	return false
}

// recoverJournals replays or drops the journals a crash left in the tree.
func (d *DirSink) recoverJournals() error {
	return fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || !strings.HasPrefix(e.Name(), journalPrefix) || !e.Type().IsRegular() {
			return nil
		}
		if err := d.replay(filepath.FromSlash(p)); err != nil {
			return fmt.Errorf("recover %s: %w", p, err)
		}
		return nil
	})
}
