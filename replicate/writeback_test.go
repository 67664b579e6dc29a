package replicate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestLargeWritesStartWriteback writes files past writebackEvery the three
// ways a sink writes in order, a whole file, a resumed partial and an
// append, and reads each back: the writeback started on the way must not
// change what the file holds.
func TestLargeWritesStartWriteback(t *testing.T) {
	ctx := context.Background()
	data := pattern(7, 3*writebackEvery+12345)
	half := int64(len(data) / 2) // past writebackEvery: a partial kept over a rewind

	for _, tc := range []struct {
		name  string
		write func(t *testing.T, d *DirSink)
	}{
		{"whole file", func(t *testing.T, d *DirSink) {
			if _, err := d.Replace(ctx, "f", newBytesContent(data, 0o644, conformTime)); err != nil {
				t.Fatal(err)
			}
		}},
		{"resumed partial", func(t *testing.T, d *DirSink) {
			b, err := d.startBuild(ctx, "f", "v1", 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.write(data[:half]); err != nil {
				t.Fatal(err)
			}
			b.abort(true) // kept, as after a cut transfer
			b, err = d.startBuild(ctx, "f", "v1", half, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.write(data[half:]); err != nil {
				t.Fatal(err)
			}
			if err := b.commit(FileMeta{Perm: 0o644, ModTime: conformTime, Checksum: checksumOf(data)}); err != nil {
				t.Fatal(err)
			}
		}},
		{"append", func(t *testing.T, d *DirSink) {
			if _, err := d.Replace(ctx, "f", newBytesContent(data[:100], 0o644, conformTime)); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Append(ctx, "f", 100, newBytesContent(data[100:], 0o644, conformTime)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, err := OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			tc.write(t, d)
			got, err := os.ReadFile(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("the file holds %d bytes, not the %d written", len(got), len(data))
			}
		})
	}
}

// TestWritebackRanges checks which ranges a file written in order has its
// writeback started for: every writebackEvery bytes, each from where the
// last one ended, none for a file that stays below it.
func TestWritebackRanges(t *testing.T) {
	const e = writebackEvery
	type rng struct{ off, n int64 }
	for _, tc := range []struct {
		name  string
		start int64   // where the writing starts (an append's offset)
		ends  []int64 // the file's size after each write
		want  []rng   // started, one per write ({0, 0}: none)
	}{
		{"small file", 0, []int64{100, e - 1}, []rng{{}, {}}},
		{"exactly one", 0, []int64{e}, []rng{{0, e}}},
		{"uneven writes", 0, []int64{e / 2, e + 10, e + 20, 2*e + 10}, []rng{{}, {0, e + 10}, {}, {e + 10, e}}},
		{"one large write", 0, []int64{3*e + 5}, []rng{{0, 3*e + 5}}},
		{"append", 100, []int64{e, e + 100}, []rng{{}, {100, e}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			wb := writeback{started: tc.start}
			for i, end := range tc.ends {
				if err := f.Truncate(end); err != nil {
					t.Fatal(err)
				}
				off, n := wb.wrote(f, end)
				if got := (rng{off, n}); got != tc.want[i] {
					t.Errorf("write %d (size %d): started %+v, want %+v", i, end, got, tc.want[i])
				}
			}
		})
	}
}
