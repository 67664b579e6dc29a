package replicate

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSnapshot compares Snapshot (temp file, CRC-32C checked on
// arrival, fsync, rename, per file) with a plain io.Copy of the same files,
// with and without an fsync per file. The gap is the price of the
// durability and the check.
func BenchmarkSnapshot(b *testing.B) {
	src := b.TempDir()
	total := mixedTree(b, src, 50)
	b.Run("Snapshot", func(b *testing.B) {
		dst := b.TempDir()
		b.SetBytes(total)
		for b.Loop() {
			if _, err := Snapshot(context.Background(), src, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, durable := range []bool{false, true} {
		name := "io.Copy"
		if durable {
			name = "io.Copy+fsync"
		}
		b.Run(name, func(b *testing.B) {
			dst := b.TempDir()
			b.SetBytes(total)
			for b.Loop() {
				if err := plainCopy(src, dst, durable); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// plainCopy copies the tree with os.Create and io.Copy: the baseline.
func plainCopy(src, dst string, durable bool) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if durable {
			if err := out.Sync(); err != nil {
				out.Close()
				return err
			}
		}
		return out.Close()
	})
}

// BenchmarkSyncAppend measures an incremental round after 1% of a 64 MiB
// log was appended: it should cost about the tail, not the file.
func BenchmarkSyncAppend(b *testing.B) {
	const size, grow = 64 << 20, (64 << 20) / 100
	src, dst := b.TempDir(), b.TempDir()
	log := filepath.Join(src, "orders.log")
	writeFile(b, log, pattern(1, size))
	ageTree(b, src)
	ctx := context.Background()
	if _, err := Sync(ctx, src, dst); err != nil {
		b.Fatal(err)
	}
	tail := pattern(2, grow)
	b.SetBytes(grow)
	for b.Loop() {
		b.StopTimer()
		appendFile(b, log, tail)
		b.StartTimer()
		st, err := Sync(ctx, src, dst)
		if err != nil {
			b.Fatal(err)
		}
		if st.Appended != 1 || st.Bytes != grow {
			b.Fatalf("round %+v, want one append of %d bytes", st, grow)
		}
	}
}
