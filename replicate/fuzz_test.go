package replicate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzCheckPath feeds arbitrary paths, as a network sink will receive them,
// to the destination's path gate and resolver.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"orders.log", "fill/a", "../x", "/etc/passwd", "a/../../b", "l/x", "f/x", "d/x/y", ".", "", "a//b", "a/", "a\x00b", "..", "d/./x"} {
		f.Add(s)
	}
	// A destination with a directory, a file and a symlink leading out.
	dst, outside := f.TempDir(), f.TempDir()
	if err := os.Mkdir(filepath.Join(dst, "d"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "f"), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dst, "l")); err != nil {
		f.Fatal(err)
	}
	sink, err := OpenDir(dst)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sink.Close() })

	f.Fuzz(func(t *testing.T, p string) {
		err := checkPath(p)
		if err != nil {
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("checkPath(%q) = %v, want ErrUnsafePath", p, err)
			}
			if _, rerr := sink.resolve(p); !errors.Is(rerr, ErrUnsafePath) {
				t.Fatalf("resolve(%q) = %v after checkPath refused it", p, rerr)
			}
			return
		}
		if !filepath.IsLocal(p) || strings.Contains("/"+p+"/", "/../") || strings.Contains(p, "\x00") {
			t.Fatalf("checkPath accepted %q", p)
		}
		if j := filepath.Join("/root", p); !strings.HasPrefix(j, "/root/") {
			t.Fatalf("checkPath accepted %q, which joins to %q", p, j)
		}
		_, err = sink.resolve(p)
		switch {
		case strings.HasPrefix(p, "l/"):
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("resolve(%q) through a symlink = %v, want ErrUnsafePath", p, err)
			}
		case strings.HasPrefix(p, "f/"):
			if err == nil {
				t.Fatalf("resolve(%q) through a file succeeded", p)
			}
		default:
			if err != nil {
				t.Fatalf("resolve(%q) = %v", p, err)
			}
		}
	})
}

// fuzzEntries decodes listings from bytes: each entry is 3 bytes (side and
// path, kind, size and mtime), paths drawn from a small alphabet so that
// sides collide often. Duplicate paths keep the first entry.
func fuzzEntries(data []byte) (src, dst []Entry) {
	seen := [2]map[string]bool{{}, {}}
	names := []string{"a", "b", "a/b", "a/c", "b/a", "a/b/c", "a-b", "a/b/d", "c"}
	t0 := time.Unix(1000, 0)
	for ; len(data) >= 3; data = data[3:] {
		side := int(data[0] & 1)
		p := names[int(data[0]>>1)%len(names)]
		if seen[side][p] {
			continue
		}
		seen[side][p] = true
		e := Entry{Path: p, Kind: Kind(data[1]%3 + 1), Perm: 0o644}
		if e.Kind == KindFile {
			e.Size = int64(data[2] % 4)
			e.ModTime = t0.Add(time.Duration(data[2]>>2%3) * time.Second)
			if data[2]>>2%3 == 2 {
				e.ModTime = racyModTime
			}
		}
		if side == 0 {
			if e.Kind == KindOther {
				continue // a source scan never yields these
			}
			src = append(src, e)
		} else {
			dst = append(dst, e)
		}
	}
	return src, dst
}

// FuzzPlan checks the planner's invariants on arbitrary listings.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0}, false)
	f.Add([]byte{2, 1, 0, 5, 0, 1, 7, 2, 3}, true)
	f.Add([]byte{4, 0, 9, 5, 0, 1, 3, 1, 0, 10, 2, 6}, false)
	f.Fuzz(func(t *testing.T, data []byte, full bool) {
		src, dst := fuzzEntries(data)
		srcKind := map[string]Kind{}
		for _, e := range src {
			srcKind[e.Path] = e.Kind
		}
		acts := plan(src, dst, full)
		fileOps := map[string]int{}
		removed := map[string]bool{}
		phase := 0
		for _, a := range acts {
			var ph int
			switch a.op {
			case opRemove:
				if srcKind[a.path] != 0 && srcKind[a.path] == a.dst.Kind {
					t.Fatalf("removes %s, which the source has as a %s", a.path, a.dst.Kind)
				}
				if under(a.path, removed) {
					t.Fatalf("removes %s inside an already removed directory", a.path)
				}
				removed[a.path] = true
			case opMkdir:
				ph = 1
				if srcKind[a.path] != KindDir {
					t.Fatalf("mkdir %s, not a source directory", a.path)
				}
			default:
				ph = 2
				if srcKind[a.path] != KindFile {
					t.Fatalf("%s %s, not a source file", a.op, a.path)
				}
				if full && a.op != opCopy {
					t.Fatalf("full plan does %s %s", a.op, a.path)
				}
				fileOps[a.path]++
			}
			if ph < phase {
				t.Fatalf("%s %s after a later phase", a.op, a.path)
			}
			phase = ph
		}
		for _, e := range src {
			if e.Kind == KindFile && fileOps[e.Path] != 1 {
				t.Fatalf("source file %s has %d actions, want 1", e.Path, fileOps[e.Path])
			}
		}
		for _, e := range dst {
			if srcKind[e.Path] != e.Kind && !removed[e.Path] && !under(e.Path, removed) {
				t.Fatalf("destination %s %s survives though the source lacks it", e.Kind, e.Path)
			}
		}
	})
}

// FuzzDecodeRecords checks the tests' record decoder: it never panics, and
// what it accepts re-encodes to the same bytes.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(encodeRecord([]byte("order 1")))
	f.Add(append(encodeRecord([]byte("a")), encodeRecord([]byte("bb"))[:5]...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, used, err := decodeRecords(data)
		if used < 0 || used > len(data) {
			t.Fatalf("used %d of %d bytes", used, len(data))
		}
		var again []byte
		for _, r := range recs {
			again = append(again, encodeRecord(r)...)
		}
		if !bytes.Equal(again, data[:used]) {
			t.Fatalf("re-encoded records differ from the %d bytes decoded", used)
		}
		if err != nil && !errors.Is(err, errCorrupt) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
