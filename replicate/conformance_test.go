package replicate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// bytesContent is a Content over a byte slice with fixed metadata.
type bytesContent struct {
	r    *bytes.Reader
	meta FileMeta
}

func newBytesContent(b []byte, perm fs.FileMode, mt time.Time) *bytesContent {
	return &bytesContent{r: bytes.NewReader(b), meta: FileMeta{Perm: perm, ModTime: mt}}
}

func (c *bytesContent) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *bytesContent) Meta() FileMeta             { return c.meta }

var _ Content = (*bytesContent)(nil)

// conformTime is the mtime the conformance suite gives files.
var conformTime = time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)

// testSinkConformance is the suite every Sink must pass. open returns a
// fresh sink and the local directory it writes (for a network sink, the
// agent's directory), which the suite inspects directly.
func testSinkConformance(t *testing.T, open func(t *testing.T) (Sink, string)) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s Sink, dir string)
	}{
		{"replace writes content, mode and mtime", conformReplace},
		{"append extends in place and checks the length", conformAppend},
		{"sum hashes ranges", conformSum},
		{"mkdir, list and remove", conformListRemove},
		{"unsafe paths are refused", conformUnsafe},
		{"a failed replace leaves the old file and no temp", conformFailedReplace},
		{"replace verifies the checksum and the digest", conformVerify},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, dir := open(t)
			c.run(t, s, dir)
		})
	}
}

func conformReplace(t *testing.T, s Sink, dir string) {
	ctx := context.Background()
	mkdir(t, s, "a", 0o755)
	n, err := s.Replace(ctx, "a/f", newBytesContent([]byte("hello"), 0o640, conformTime))
	if err != nil || n != 5 {
		t.Fatalf("Replace = %d, %v", n, err)
	}
	info := stat(t, filepath.Join(dir, "a", "f"))
	if info.Mode().Perm() != 0o640 || !info.ModTime().Equal(conformTime) {
		t.Errorf("mode %v mtime %v, want 0640 and %v", info.Mode().Perm(), info.ModTime(), conformTime)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a", "f")); string(got) != "hello" {
		t.Errorf("content %q", got)
	}
	ino := inode(t, filepath.Join(dir, "a", "f"))
	if _, err := s.Replace(ctx, "a/f", newBytesContent([]byte("bye"), 0o600, conformTime)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a", "f")); string(got) != "bye" {
		t.Errorf("content after replace %q", got)
	}
	if inode(t, filepath.Join(dir, "a", "f")) == ino {
		t.Error("replace kept the inode: readers could see a mix")
	}
}

func conformAppend(t *testing.T, s Sink, dir string) {
	ctx := context.Background()
	if _, err := s.Replace(ctx, "log", newBytesContent([]byte("abc"), 0o644, conformTime)); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, filepath.Join(dir, "log"))
	if _, err := s.Append(ctx, "log", 2, newBytesContent([]byte("x"), 0o644, conformTime)); !errors.Is(err, ErrChanged) {
		t.Errorf("Append at the wrong length = %v, want ErrChanged", err)
	}
	n, err := s.Append(ctx, "log", 3, newBytesContent([]byte("def"), 0o600, conformTime.Add(time.Second)))
	if err != nil || n != 3 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "log")); string(got) != "abcdef" {
		t.Errorf("content %q", got)
	}
	info := stat(t, filepath.Join(dir, "log"))
	if inode(t, filepath.Join(dir, "log")) != ino || info.Mode().Perm() != 0o600 || !info.ModTime().Equal(conformTime.Add(time.Second)) {
		t.Errorf("after append: inode kept %v, mode %v, mtime %v", inode(t, filepath.Join(dir, "log")) == ino, info.Mode().Perm(), info.ModTime())
	}
	if _, err := s.Append(ctx, "missing", 0, newBytesContent(nil, 0o644, conformTime)); err == nil {
		t.Error("Append to a missing file succeeded")
	}
}

func conformSum(t *testing.T, s Sink, _ string) {
	ctx := context.Background()
	data := pattern(1, 100_000)
	if _, err := s.Replace(ctx, "f", newBytesContent(data, 0o644, conformTime)); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 0}, {0, 100_000}, {4096, 65536}, {99_990, 10}, {99_990, 100}} {
		got, err := s.Sum(ctx, "f", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(data[r[0]:min(r[0]+r[1], 100_000)]); got != want {
			t.Errorf("Sum(%d, %d) wrong", r[0], r[1])
		}
	}
	if _, err := s.Sum(ctx, "f", -1, 5); err == nil {
		t.Error("Sum of a negative range succeeded")
	}
}

func conformListRemove(t *testing.T, s Sink, dir string) {
	ctx := context.Background()
	mkdir(t, s, "a", 0o755)
	mkdir(t, s, "a/b", 0o700)
	if _, err := s.Replace(ctx, "a/b/f", newBytesContent([]byte("x"), 0o644, conformTime)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a", tempPrefix+"inflight"), []byte("t"))
	if err := os.Symlink("a", filepath.Join(dir, "ln")); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Path: "a", Kind: KindDir, Perm: 0o755},
		{Path: "a/b", Kind: KindDir, Perm: 0o700},
		{Path: "a/b/f", Kind: KindFile, Size: 1, ModTime: conformTime, Perm: 0o644},
		{Path: "ln", Kind: KindOther},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %d entries", got, len(want))
	}
	for i := range want {
		g := got[i]
		g.ModTime = g.ModTime.UTC()
		if g.Kind != KindFile {
			g.ModTime = time.Time{}
		}
		if g.Kind == KindOther {
			g.Perm = 0
		}
		if g != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, g, want[i])
		}
	}
	if err := s.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "a"); err != nil {
		t.Errorf("removing a missing path: %v", err)
	}
	if err := s.Remove(ctx, "ln"); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d entries left after removing all", len(left))
	}
}

func conformUnsafe(t *testing.T, s Sink, _ string) {
	ctx := context.Background()
	for _, p := range []string{"../x", "/abs", "a/../../x", ".", ""} {
		if _, err := s.Replace(ctx, p, newBytesContent(nil, 0o644, conformTime)); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Replace(%q) = %v", p, err)
		}
		if _, err := s.Append(ctx, p, 0, newBytesContent(nil, 0o644, conformTime)); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Append(%q) = %v", p, err)
		}
		if _, err := s.Sum(ctx, p, 0, 1); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Sum(%q) = %v", p, err)
		}
		if err := s.Remove(ctx, p); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Remove(%q) = %v", p, err)
		}
	}
}

func conformFailedReplace(t *testing.T, s Sink, dir string) {
	ctx := context.Background()
	if _, err := s.Replace(ctx, "f", newBytesContent([]byte("old"), 0o644, conformTime)); err != nil {
		t.Fatal(err)
	}
	broken := io.MultiReader(bytes.NewReader([]byte("new")), iotestErrReader{})
	if _, err := s.Replace(ctx, "f", &readerContent{broken}); err == nil {
		t.Fatal("Replace from a failing reader succeeded")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "old" {
		t.Errorf("content %q, want the old version", got)
	}
	readTree(t, dir, true)
}

// conformVerify sends a file with each kind of whole-file check, right and
// wrong: a wrong one fails with ErrVerify and leaves the old file.
func conformVerify(t *testing.T, s Sink, dir string) {
	ctx := context.Background()
	data := pattern(3, 300_000)
	good := checksumOf(data)
	digest := Digest(blake3.Sum256(data))
	for _, tc := range []struct {
		name   string
		meta   FileMeta
		wantOK bool
	}{
		{"right checksum", FileMeta{Checksum: good}, true},
		{"right digest", FileMeta{Digest: digest}, true},
		{"both right", FileMeta{Checksum: good, Digest: digest}, true},
		{"wrong CRC", FileMeta{Checksum: &Checksum{Size: good.Size, CRC: good.CRC ^ 1}}, false},
		{"truncated", FileMeta{Checksum: &Checksum{Size: good.Size + 1, CRC: good.CRC}}, false},
		{"wrong digest", FileMeta{Digest: Digest{1}}, false},
		{"right checksum, wrong digest", FileMeta{Checksum: good, Digest: Digest{1}}, false},
		{"wrong checksum, right digest", FileMeta{Checksum: &Checksum{Size: good.Size, CRC: good.CRC + 1}, Digest: digest}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Replace(ctx, "f", newBytesContent([]byte("old"), 0o644, conformTime)); err != nil {
				t.Fatal(err)
			}
			c := newBytesContent(data, 0o640, conformTime)
			c.meta.Checksum, c.meta.Digest = tc.meta.Checksum, tc.meta.Digest
			_, err := s.Replace(ctx, "f", c)
			got, _ := os.ReadFile(filepath.Join(dir, "f"))
			switch {
			case tc.wantOK && err != nil:
				t.Fatalf("Replace = %v", err)
			case tc.wantOK && !bytes.Equal(got, data):
				t.Errorf("content of %d bytes, want the %d sent", len(got), len(data))
			case !tc.wantOK && !errors.Is(err, ErrVerify):
				t.Fatalf("Replace = %v, want ErrVerify", err)
			case !tc.wantOK && string(got) != "old":
				t.Errorf("content %.20q after a failed check, want the old version", got)
			}
			readTree(t, dir, true)
		})
	}
}

var errBroken = errors.New("source broke")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBroken }

type readerContent struct{ io.Reader }

func (readerContent) Meta() FileMeta { return FileMeta{Perm: 0o644} }

func mkdir(t *testing.T, s Sink, p string, perm fs.FileMode) {
	t.Helper()
	if err := s.Mkdir(context.Background(), p, perm); err != nil {
		t.Fatal(err)
	}
}

func stat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestDirSinkConformance(t *testing.T) {
	testSinkConformance(t, func(t *testing.T) (Sink, string) {
		dir := t.TempDir()
		s, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, dir
	})
}
