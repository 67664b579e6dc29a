package replicate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// mixedTree writes about 50 files of mixed sizes (empty to a few MiB) in
// nested directories under dir and returns their total size.
func mixedTree(t testing.TB, dir string, files int) int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	for i := range files {
		var size int
		switch i % 5 {
		case 0:
			size = 0
		case 1:
			size = rng.IntN(100)
		case 2:
			size = rng.IntN(64 << 10)
		case 3:
			size = rng.IntN(1 << 20)
		case 4:
			size = 1<<20 + rng.IntN(3<<20)
		}
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%4), fmt.Sprintf("s%d", i%3), fmt.Sprintf("f%02d.bin", i))
		if i%7 == 0 {
			p = filepath.Join(dir, fmt.Sprintf("top%02d", i))
		}
		writeFile(t, p, pattern(byte(i), size))
		total += int64(size)
	}
	if err := os.Chmod(filepath.Join(dir, "top00"), 0o600); err != nil {
		t.Fatal(err)
	}
	return total
}

func TestSnapshot(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	total := mixedTree(t, src, 50)
	// A destination with debris: files and a tree the source lacks, a file
	// the snapshot must overwrite, and a directory where the source has a file.
	writeFile(t, filepath.Join(dst, "stale.txt"), []byte("old"))
	writeFile(t, filepath.Join(dst, "gone", "deep", "x"), []byte("old"))
	writeFile(t, filepath.Join(dst, "d1", "s1", "f01.bin"), []byte("older content"))
	writeFile(t, filepath.Join(dst, "top07", "inner"), []byte("dir in the way"))

	st, err := Snapshot(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTree(t, src, dst)
	if st.Files != 50 || st.Copied != 50 || st.SourceBytes != total || st.Bytes != total {
		t.Errorf("stats %+v, want 50 files copied, %d bytes", st, total)
	}
	if st.Removed != 3 {
		t.Errorf("removed %d, want 3 (stale.txt, gone, top07)", st.Removed)
	}
	if st.Remaining != 0 {
		t.Errorf("remaining %d after a snapshot of a quiet tree", st.Remaining)
	}

	// The next incremental round has nothing to do.
	ageTree(t, src)
	if _, err := Sync(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	st, err = Sync(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unchanged != 50 || st.Bytes != 0 || st.Pending != 0 {
		t.Errorf("sync after snapshot: %+v, want all 50 unchanged", st)
	}
}

// corruptSink is a real DirSink whose incoming bytes get one bit flipped, as
// a faulty disk or link would: Snapshot must notice.
type corruptSink struct{ *DirSink }

func (c corruptSink) Replace(ctx context.Context, p string, content Content) (int64, error) {
	return c.DirSink.Replace(ctx, p, &flipContent{Content: content})
}

type flipContent struct {
	Content
	done bool
}

func (f *flipContent) Read(p []byte) (int, error) {
	n, err := f.Content.Read(p)
	if n > 0 && !f.done {
		p[n/2] ^= 1
		f.done = true
	}
	return n, err
}

func TestSnapshotDetectsCorruption(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "orders.log"), pattern(1, 100_000))
	d, err := OpenDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = SnapshotTo(context.Background(), src, corruptSink{d}, nil)
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("err = %v, want ErrVerify", err)
	}
}

// cancelSink is a real DirSink that cancels the round's context once a
// transfer has moved after bytes, and counts what it read.
type cancelSink struct {
	*DirSink
	after  int64
	cancel context.CancelFunc
	read   int64
}

func (c *cancelSink) Replace(ctx context.Context, p string, content Content) (int64, error) {
	return c.DirSink.Replace(ctx, p, &countContent{Content: content, s: c})
}

func (c *cancelSink) Append(ctx context.Context, p string, at int64, content Content) (int64, error) {
	return c.DirSink.Append(ctx, p, at, &countContent{Content: content, s: c})
}

type countContent struct {
	Content
	s *cancelSink
}

func (c *countContent) Read(p []byte) (int, error) {
	n, err := c.Content.Read(p)
	c.s.read += int64(n)
	if c.s.read >= c.s.after {
		c.s.cancel()
	}
	return n, err
}

func TestCancelMidCopy(t *testing.T) {
	const size = 32 << 20
	for _, tc := range []struct {
		name     string
		snapshot bool
		grow     bool // the destination holds a prefix: the round appends
	}{
		{name: "sync replace"},
		{name: "snapshot", snapshot: true},
		{name: "sync append", grow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			data := pattern(7, size)
			writeFile(t, filepath.Join(src, "big"), data)
			old := []byte("the old version")
			if tc.grow {
				old = data[:1<<20]
			}
			writeFile(t, filepath.Join(dst, "big"), old)
			before := sumFile(t, filepath.Join(src, "big"))

			d, err := OpenDir(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sink := &cancelSink{DirSink: d, after: 1 << 20, cancel: cancel}
			if tc.snapshot {
				_, err = SnapshotTo(ctx, src, sink, nil)
			} else {
				_, err = SyncTo(ctx, src, sink, nil)
			}
			if err != context.Canceled {
				t.Fatalf("err = %v, want context.Canceled itself", err)
			}
			if limit := sink.after + 2*copyChunk; sink.read > limit {
				t.Errorf("read %d bytes after cancelling at %d, want at most %d", sink.read, sink.after, limit)
			}
			readTree(t, dst, true) // fails on leftover temp files
			got, err := os.ReadFile(filepath.Join(dst, "big"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.grow {
				if len(got) < len(old) || string(got) != string(data[:len(got)]) {
					t.Errorf("appended file (%d bytes) is not a prefix of the source", len(got))
				}
			} else if string(got) != string(old) {
				t.Errorf("destination holds %d bytes, want the old version intact", len(got))
			}
			if sumFile(t, filepath.Join(src, "big")) != before {
				t.Error("source changed")
			}
		})
	}
}

// Interface guards for the test sinks.
var (
	_ Sink    = corruptSink{}
	_ Sink    = (*cancelSink)(nil)
	_ Content = (*flipContent)(nil)
	_ Content = (*countContent)(nil)
)
