package replicate

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// journalPatch starts an in-place patch of dir/db over its current
// version that overwrites 4 KiB at 8192 and appends 100 bytes, and returns
// it with the expected result.
func journalPatch(t *testing.T, dir string) (*inplace, []byte, FileMeta) {
	t.Helper()
	old := pattern(1, 2<<20)
	writeFile(t, filepath.Join(dir, "db"), old)
	ageTree(t, dir)
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	info := stat(t, filepath.Join(dir, "db"))
	base := Ref{Path: "db", Size: info.Size(), ModTime: info.ModTime()}
	ip, err := d.startInPlace("db", base)
	if err != nil {
		t.Fatal(err)
	}
	page, tail := pattern(2, 4096), pattern(3, 100)
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { return ip.copyRange(ctx, base, 0, 8192) },
		func() error { return ip.write(page) },
		func() error { return ip.copyRange(ctx, base, 8192+4096, base.Size-8192-4096) },
		func() error { return ip.write(tail) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := append(append(append([]byte{}, old[:8192]...), page...), old[8192+4096:]...)
	want = append(want, tail...)
	meta := FileMeta{Perm: 0o640, ModTime: time.Unix(1000, 5), Digest: Digest(blake3.Sum256(want))}
	return ip, want, meta
}

func TestInPlacePatch(t *testing.T) {
	dir := t.TempDir()
	ip, want, meta := journalPatch(t, dir)
	ino := inode(t, filepath.Join(dir, "db"))
	if err := ip.commit(meta); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "db"))
	if string(got) != string(want) {
		t.Fatal("patched file differs from the expected result")
	}
	if inode(t, filepath.Join(dir, "db")) != ino {
		t.Error("the file was replaced, not patched in place")
	}
	if info := stat(t, filepath.Join(dir, "db")); info.Mode().Perm() != 0o640 || !info.ModTime().Equal(meta.ModTime) {
		t.Errorf("mode %v mtime %v", info.Mode().Perm(), info.ModTime())
	}
	readTree(t, dir, true) // no journal left
}

// TestJournalRecovery simulates a crash after the journal was sealed (the
// next OpenDir applies it) and one before (the next OpenDir drops it and
// the file is the old one).
func TestJournalRecovery(t *testing.T) {
	t.Run("sealed", func(t *testing.T) {
		dir := t.TempDir()
		ip, want, meta := journalPatch(t, dir)
		if err := ip.seal(meta); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		if got, _ := os.ReadFile(filepath.Join(dir, "db")); string(got) != string(want) {
			t.Fatal("the sealed journal was not replayed")
		}
		readTree(t, dir, true)
	})
	t.Run("unsealed", func(t *testing.T) {
		dir := t.TempDir()
		ip, _, _ := journalPatch(t, dir)
		old, _ := os.ReadFile(filepath.Join(dir, "db"))
		if err := ip.jw.Flush(); err != nil { // records on disk, no trailer
			t.Fatal(err)
		}
		ip.j.Close()
		ip.f.Close()
		d, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		if got, _ := os.ReadFile(filepath.Join(dir, "db")); string(got) != string(old) {
			t.Fatal("an unsealed journal changed the file")
		}
		readTree(t, dir, true)
	})
}

// TestInPlaceFallsBack inserts bytes at the start of a large file: every
// range moves, the in-place patch is refused, and the file goes as a new
// file, still as a delta.
func TestInPlaceFallsBack(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := pattern(5, 3<<20)
	writeFile(t, filepath.Join(src, "big"), data)
	ageTree(t, src)
	m, err := NewMethod(MethodConfig{Kind: MethodIncremental, Src: Endpoint{Dir: src}, Dst: Endpoint{Agent: inProcessAgent(t, RoleTarget, dst)}, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Full(ctx); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, filepath.Join(dst, "big"))
	writeFile(t, filepath.Join(src, "big"), append([]byte("a header that shifts everything"), data...))
	st, err := m.Incremental(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTree(t, src, dst)
	if st.Patched != 1 || st.Bytes > 100_000 {
		t.Errorf("stats %+v: want one patch of a few chunks", st)
	}
	if inode(t, filepath.Join(dst, "big")) == ino {
		t.Error("a shifted file was patched in place")
	}
}

// FuzzJournal feeds arbitrary bytes to the journal check: what it accepts
// parses without panicking into records that stay inside the journal.
func FuzzJournal(f *testing.F) {
	rec := func(off uint64, data []byte) []byte {
		b := binary.LittleEndian.AppendUint64(nil, off)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
		return append(b, data...)
	}
	good := append([]byte(journalMagic), 2, 0, 'd', 'b')
	good = append(good, rec(10, []byte("hello"))...)
	good = binary.LittleEndian.AppendUint64(good, journalEnd)
	good = binary.LittleEndian.AppendUint64(good, 100)
	good = binary.LittleEndian.AppendUint32(good, 0o644)
	good = binary.LittleEndian.AppendUint64(good, 5)
	good = binary.LittleEndian.AppendUint32(good, crc32.Checksum(good, crcTable))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte(journalMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !journalComplete(b) {
			return
		}
		j := parseJournal(b)
		if checkPath(j.target) != nil || j.size < 0 {
			t.Fatalf("accepted journal for %q of size %d", j.target, j.size)
		}
	})
}
