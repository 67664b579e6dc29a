package replicate

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSyncChanges runs a first Sync, changes the source, runs a second Sync
// and checks what the second one did and that the replica matches.
func TestSyncChanges(t *testing.T) {
	log10k := pattern(1, 10_000)
	cases := []struct {
		name   string
		before func(t *testing.T, src string) // the state of the first round
		change func(t *testing.T, src string)
		want   Stats // only the counters and Bytes are compared
		// sameInode names a file whose destination inode must survive the
		// second round (appended in place); newInode one that must change.
		sameInode, newInode string
	}{
		{
			name:   "new file",
			change: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "a.txt"), []byte("hello")) },
			want:   Stats{Files: 1, Copied: 1, Bytes: 5},
		},
		{
			name:      "grown file is appended",
			before:    func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "orders.log"), log10k) },
			change:    func(t *testing.T, src string) { appendFile(t, filepath.Join(src, "orders.log"), pattern(2, 5000)) },
			want:      Stats{Files: 1, Appended: 1, Bytes: 5000},
			sameInode: "orders.log",
		},
		{
			name:      "grown large file is appended",
			before:    func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "orders.log"), pattern(3, 300_000)) },
			change:    func(t *testing.T, src string) { appendFile(t, filepath.Join(src, "orders.log"), pattern(4, 70_000)) },
			want:      Stats{Files: 1, Appended: 1, Bytes: 70_000},
			sameInode: "orders.log",
		},
		{
			name:   "grown file with a changed head is copied",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "orders.log"), log10k) },
			change: func(t *testing.T, src string) {
				writeFile(t, filepath.Join(src, "orders.log"), append(pattern(9, 100), log10k...))
			},
			want:     Stats{Files: 1, Copied: 1, Bytes: 10_100},
			newInode: "orders.log",
		},
		{
			name:   "grown file with a changed tail window is copied",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "orders.log"), pattern(3, 300_000)) },
			change: func(t *testing.T, src string) {
				data := append(pattern(3, 300_000), 'x')
				data[299_000] ^= 0xff
				writeFile(t, filepath.Join(src, "orders.log"), data)
			},
			want:     Stats{Files: 1, Copied: 1, Bytes: 300_001},
			newInode: "orders.log",
		},
		{
			name:   "rewritten file of the same size is copied",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "state.db"), pattern(5, 4096)) },
			change: func(t *testing.T, src string) {
				writeFile(t, filepath.Join(src, "state.db"), pattern(6, 4096))
			},
			want:     Stats{Files: 1, Copied: 1, Bytes: 4096},
			newInode: "state.db",
		},
		{
			name:   "shrunk file is copied",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "orders.log"), log10k) },
			change: func(t *testing.T, src string) {
				if err := os.Truncate(filepath.Join(src, "orders.log"), 2000); err != nil {
					t.Fatal(err)
				}
			},
			want:     Stats{Files: 1, Copied: 1, Bytes: 2000},
			newInode: "orders.log",
		},
		{
			name: "removed file",
			before: func(t *testing.T, src string) {
				writeFile(t, filepath.Join(src, "a"), []byte("a"))
				writeFile(t, filepath.Join(src, "fill", "b"), []byte("b"))
			},
			change: func(t *testing.T, src string) { rm(t, filepath.Join(src, "fill", "b")) },
			want:   Stats{Files: 1, Removed: 1, Unchanged: 1},
		},
		{
			name:   "removed directory tree counts once",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "fill", "x", "y", "f"), []byte("f")) },
			change: func(t *testing.T, src string) { rm(t, filepath.Join(src, "fill")) },
			want:   Stats{Removed: 1},
		},
		{
			name: "nested directories",
			change: func(t *testing.T, src string) {
				writeFile(t, filepath.Join(src, "a", "b", "c", "f1"), []byte("one"))
				writeFile(t, filepath.Join(src, "a", "f2"), []byte("two"))
				if err := os.Chmod(filepath.Join(src, "a", "b"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: Stats{Files: 2, Copied: 2, Bytes: 6},
		},
		{
			name: "empty directories",
			change: func(t *testing.T, src string) {
				if err := os.MkdirAll(filepath.Join(src, "e1", "e2"), 0o750); err != nil {
					t.Fatal(err)
				}
			},
			want: Stats{},
		},
		{
			name:   "directory replaced by a file",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "k", "inner"), []byte("in")) },
			change: func(t *testing.T, src string) {
				rm(t, filepath.Join(src, "k"))
				writeFile(t, filepath.Join(src, "k"), []byte("now a file"))
			},
			want: Stats{Files: 1, Removed: 1, Copied: 1, Bytes: 10},
		},
		{
			name:   "file replaced by a directory",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "k"), []byte("file")) },
			change: func(t *testing.T, src string) {
				rm(t, filepath.Join(src, "k"))
				writeFile(t, filepath.Join(src, "k", "inner"), []byte("in"))
			},
			want: Stats{Files: 1, Removed: 1, Copied: 1, Bytes: 2},
		},
		{
			name:   "symlink is skipped",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "target"), []byte("t")) },
			change: func(t *testing.T, src string) {
				if err := os.Symlink("target", filepath.Join(src, "link")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/etc", filepath.Join(src, "dirlink")); err != nil {
					t.Fatal(err)
				}
			},
			want: Stats{Files: 1, Unchanged: 1, Skipped: 2},
		},
		{
			name: "fifo and socket are skipped",
			change: func(t *testing.T, src string) {
				if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o600); err != nil {
					t.Fatal(err)
				}
				l, err := net.Listen("unix", filepath.Join(src, "sock"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			},
			want: Stats{Skipped: 2},
		},
		{
			name: "longest file name",
			change: func(t *testing.T, src string) {
				writeFile(t, filepath.Join(src, strings.Repeat("n", 255)), []byte("x"))
			},
			want: Stats{Files: 1, Copied: 1, Bytes: 1},
		},
		{
			name:   "reserved temp name is skipped",
			change: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, tempPrefix+"x"), []byte("x")) },
			want:   Stats{Skipped: 1},
		},
		{
			name:   "unchanged",
			before: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "a", "b"), log10k) },
			change: func(t *testing.T, src string) {},
			want:   Stats{Files: 1, Unchanged: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "replica")
			if tc.before != nil {
				tc.before(t, src)
			}
			ageTree(t, src) // later writes then always move the mtime
			if _, err := Sync(ctx, src, dst); err != nil {
				t.Fatalf("first sync: %v", err)
			}
			assertSameTree(t, src, dst)
			var ino uint64
			if p := tc.sameInode + tc.newInode; p != "" {
				ino = inode(t, filepath.Join(dst, p))
			}

			tc.change(t, src)
			got, err := Sync(ctx, src, dst)
			if err != nil {
				t.Fatalf("second sync: %v", err)
			}
			assertSameTree(t, src, dst)
			got.SourceBytes, got.Pending, got.Remaining, got.Duration = 0, 0, 0, 0
			if got != tc.want {
				t.Errorf("stats\n got %+v\nwant %+v", got, tc.want)
			}
			if tc.sameInode != "" && inode(t, filepath.Join(dst, tc.sameInode)) != ino {
				t.Errorf("%s was rewritten, want appended in place", tc.sameInode)
			}
			if tc.newInode != "" && inode(t, filepath.Join(dst, tc.newInode)) == ino {
				t.Errorf("%s kept its inode, want replaced by rename", tc.newInode)
			}
		})
	}
}

func rm(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

// TestSyncRacyFile covers a file written just before it is copied: the
// replica must not take its mtime as proof of content, or a same-size
// rewrite within one timestamp tick would never be copied.
func TestSyncRacyFile(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	path := filepath.Join(src, "state.db")
	writeFile(t, path, pattern(1, 1000))
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	dinfo, err := os.Stat(filepath.Join(dst, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !dinfo.ModTime().Equal(racyModTime) {
		t.Fatalf("destination mtime %v after copying a file written just now, want the racy marker", dinfo.ModTime())
	}

	// Same size, new content, and the same mtime: what a coarse clock gives.
	writeFile(t, path, pattern(2, 1000))
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	st, err := Sync(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Copied != 1 {
		t.Errorf("copied %d files, want the rewritten one copied", st.Copied)
	}
	mustEqualFiles(t, path, filepath.Join(dst, "state.db"))

	// Once the file is old, a round verifies the content and settles the
	// mtime without rewriting.
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, filepath.Join(dst, "state.db"))
	st, err = Sync(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unchanged != 1 || st.Copied != 0 || st.Bytes != 0 {
		t.Errorf("stats %+v, want the file verified unchanged", st)
	}
	if inode(t, filepath.Join(dst, "state.db")) != ino {
		t.Error("verified file was rewritten")
	}
	dinfo, err = os.Stat(filepath.Join(dst, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !dinfo.ModTime().Equal(old) {
		t.Errorf("destination mtime %v, want the source's %v", dinfo.ModTime(), old)
	}
	if st, err = Sync(ctx, src, dst); err != nil || st.Unchanged != 1 || st.Bytes != 0 {
		t.Errorf("settled file: stats %+v, err %v; want unchanged by size and mtime", st, err)
	}
}

// TestSyncSymlinkedDestinationParent plants a symlink at the destination
// where the source has a directory: the round must replace the link, not
// write through it.
func TestSyncSymlinkedDestinationParent(t *testing.T) {
	ctx := context.Background()
	src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "fill", "f"), []byte("data"))
	if err := os.Symlink(outside, filepath.Join(dst, "fill")); err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	assertSameTree(t, src, dst)
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Errorf("wrote through the symlink: %s holds %d entries", outside, len(left))
	}
}

func TestDirSinkRefusesUnsafePaths(t *testing.T) {
	ctx := context.Background()
	dst, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dst, "link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(outside, "victim"), []byte("keep"))
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dst, "filelink")); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "link/x", "link/a/b", ".", "", "a//b", "a/"} {
		_, err := d.Replace(ctx, p, emptyContent{FileMeta{Perm: 0o644}})
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Replace(%q) = %v, want ErrUnsafePath", p, err)
		}
		if err := d.Mkdir(ctx, p, 0o755); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Mkdir(%q) = %v, want ErrUnsafePath", p, err)
		}
	}
	if _, err := d.Append(ctx, "filelink", 4, emptyContent{FileMeta{Perm: 0o644}}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Append through a symlink = %v, want ErrUnsafePath", err)
	}
	if _, err := d.Sum(ctx, "filelink", 0, 4); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Sum through a symlink = %v, want ErrUnsafePath", err)
	}
	if left, _ := os.ReadDir(outside); len(left) != 1 {
		t.Errorf("%s holds %d entries, want only the victim", outside, len(left))
	}
}

func TestSyncMissingSource(t *testing.T) {
	_, err := Sync(context.Background(), filepath.Join(t.TempDir(), "nope"), t.TempDir())
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

// TestOpenDirSweepsTemps checks that debris of a crashed round is removed.
func TestOpenDirSweepsTemps(t *testing.T) {
	dst := t.TempDir()
	writeFile(t, filepath.Join(dst, "a", tempPrefix+"orders.log-x"), []byte("half"))
	writeFile(t, filepath.Join(dst, "a", "kept"), []byte("k"))
	d, err := OpenDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(filepath.Join(dst, "a", tempPrefix+"orders.log-x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "a", "kept")); err != nil {
		t.Errorf("real file removed: %v", err)
	}
}

func TestSourceAndDestinationMustNotOverlap(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{src, filepath.Join(src, "replica"), filepath.Dir(src), link, filepath.Join(link, "x", "y")} {
		if _, err := Sync(ctx, src, dst); err == nil || !strings.Contains(err.Error(), "overlap") {
			t.Errorf("Sync(%s, %s) = %v, want an overlap error", src, dst, err)
		}
		if _, err := Snapshot(ctx, src, dst); err == nil || !strings.Contains(err.Error(), "overlap") {
			t.Errorf("Snapshot(%s, %s) = %v, want an overlap error", src, dst, err)
		}
		if _, err := NewStream(StreamConfig{Src: src, Dst: dst}); err == nil || !strings.Contains(err.Error(), "overlap") {
			t.Errorf("NewStream(%s, %s) = %v, want an overlap error", src, dst, err)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "replica")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused destination was created: %v", err)
	}
}
