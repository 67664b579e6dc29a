package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The generated directory, as shares of the total size: one large
// database file, index files, an append-only log, and many small blobs.
const (
	shareDB    = 0.50
	shareIndex = 0.25 // 16 files
	shareLog   = 0.06
	indexFiles = 16
	blobSize   = 1 << 20
)

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with GiB, MiB or KiB", s)
	}
	return int64(n * float64(mult)), nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// random returns n incompressible bytes from seed.
func random(seed uint64, n int64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 7})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func writeFile(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// generate writes the data directory and ages its mtimes, so a later
// change is certain to show.
func generate(dir string, size int64) error {
	if err := writeFile(filepath.Join(dir, "db", "main.db"), random(1, int64(float64(size)*shareDB))); err != nil {
		return err
	}
	idx := int64(float64(size) * shareIndex / indexFiles)
	for i := range indexFiles {
		if err := writeFile(filepath.Join(dir, "db", fmt.Sprintf("index-%02d.idx", i)), random(uint64(100+i), idx)); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(dir, "log", "orders.log"), random(2, int64(float64(size)*shareLog))); err != nil {
		return err
	}
	rest := size - int64(float64(size)*(shareDB+shareLog)) - idx*indexFiles
	for i := 0; rest > 0; i++ {
		n := min(rest, blobSize)
		if err := writeFile(filepath.Join(dir, "blobs", fmt.Sprintf("%03d", i/100), fmt.Sprintf("blob-%05d", i)), random(uint64(1000+i), n)); err != nil {
			return err
		}
		rest -= n
	}
	old := time.Now().Add(-time.Hour)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
}

// change modifies about 1% of a directory of the given size, the way a
// live data directory changes: scattered 4 KiB page writes in the database
// (0.5%), small insertions in two index files, an append to the log
// (0.3%), new blobs (0.2%) and one removed blob. It returns the bytes
// changed.
func change(dir string, size int64, seed uint64) (int64, error) {
	var changed int64
	rng := rand.New(rand.NewPCG(seed, 99))
	db := filepath.Join(dir, "db", "main.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	pages := int(float64(size) * 0.005 / 4096)
	for i := range pages {
		off := rng.Int64N(info.Size()/4096) * 4096
		if _, err := f.WriteAt(random(seed*1000+uint64(i), 4096), off); err != nil {
			f.Close()
			return 0, err
		}
		changed += 4096
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	for i := range 2 {
		p := filepath.Join(dir, "db", fmt.Sprintf("index-%02d.idx", int(seed)*2+i))
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		at := rng.IntN(len(data))
		ins := random(seed*77+uint64(i), 8192)
		data = append(data[:at:at], append(ins, data[at:]...)...)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return 0, err
		}
		changed += int64(len(ins))
	}
	logf, err := os.OpenFile(filepath.Join(dir, "log", "orders.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, err
	}
	tail := random(seed*31, int64(float64(size)*0.003))
	if _, err := logf.Write(tail); err != nil {
		logf.Close()
		return 0, err
	}
	changed += int64(len(tail))
	if err := logf.Close(); err != nil {
		return 0, err
	}
	newBlobs := int64(float64(size) * 0.002)
	for i := 0; newBlobs > 0; i++ {
		n := min(newBlobs, blobSize)
		if err := writeFile(filepath.Join(dir, "blobs", "new", fmt.Sprintf("s%d-%d", seed, i)), random(seed*500+uint64(i), n)); err != nil {
			return 0, err
		}
		newBlobs -= n
		changed += n
	}
	if err := os.Remove(filepath.Join(dir, "blobs", "000", fmt.Sprintf("blob-%05d", seed))); err != nil {
		return 0, err
	}
	return changed, nil
}
