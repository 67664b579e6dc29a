package replicate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests' record format, a miniature of the orders log: a 4-byte
// big-endian payload length, the payload's CRC-32 (IEEE), then the payload.
const recordHeader = 8

func encodeRecord(payload []byte) []byte {
	b := make([]byte, recordHeader, recordHeader+len(payload))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:8], crc32.ChecksumIEEE(payload))
	return append(b, payload...)
}

// maxRecord bounds a record's payload so a corrupt length is caught rather
// than waited for.
const maxRecord = 1 << 20

var errCorrupt = errors.New("corrupt record")

// decodeRecords parses the complete records at the start of b and returns
// their payloads and the bytes they span. A partial final record is not an
// error (a follower waits for the rest); a bad length or CRC is.
func decodeRecords(b []byte) (payloads [][]byte, used int, err error) {
	for {
		rest := b[used:]
		if len(rest) < recordHeader {
			return payloads, used, nil
		}
		n := binary.BigEndian.Uint32(rest[0:4])
		if n > maxRecord {
			return payloads, used, fmt.Errorf("record at %d: length %d over %d: %w", used, n, maxRecord, errCorrupt)
		}
		if len(rest) < recordHeader+int(n) {
			return payloads, used, nil
		}
		payload := rest[recordHeader : recordHeader+int(n)]
		if got, want := crc32.ChecksumIEEE(payload), binary.BigEndian.Uint32(rest[4:8]); got != want {
			return payloads, used, fmt.Errorf("record at %d: crc %08x, header says %08x: %w", used, got, want, errCorrupt)
		}
		payloads = append(payloads, payload)
		used += recordHeader + int(n)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// pattern returns n deterministic bytes that differ with seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

// ageTree sets every file and directory under dir to an mtime an hour ago,
// so that a later write is certain to change it.
func ageTree(t testing.TB, dir string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// treeEntry is what must match between source and replica.
type treeEntry struct {
	kind string
	perm fs.FileMode
	sum  [sha256.Size]byte
}

// readTree describes the regular files and directories under dir (what
// replication copies). Names with the reserved temp prefix fail the test if
// strict (a destination must have none left) and are ignored otherwise.
func readTree(t testing.TB, dir string, strict bool) map[string]treeEntry {
	t.Helper()
	out := make(map[string]treeEntry)
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if strict {
				return fmt.Errorf("leftover temp file %s", p)
			}
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			out[filepath.ToSlash(rel)] = treeEntry{kind: "dir", perm: info.Mode().Perm()}
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = treeEntry{kind: "file", perm: info.Mode().Perm(), sum: sha256.Sum256(data)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertSameTree fails unless dst holds exactly src's files and directories
// with the same content and permissions, and nothing else.
func assertSameTree(t testing.TB, src, dst string) {
	t.Helper()
	want, got := readTree(t, src, false), readTree(t, dst, true)
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing at the destination", p)
		case g != w:
			t.Errorf("%s: destination %s %v differs from source %s %v", p, g.kind, g.perm, w.kind, w.perm)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: at the destination but not at the source", p)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func sumFile(t testing.TB, path string) [sha256.Size]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func mustEqualFiles(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s (%d bytes) and %s (%d bytes) differ", a, len(x), b, len(y))
	}
}

// emptyContent carries metadata and no bytes.
type emptyContent struct{ meta FileMeta }

var _ Content = emptyContent{}

func (emptyContent) Read([]byte) (int, error) { return 0, io.EOF }
func (e emptyContent) Meta() FileMeta         { return e.meta }
