package orderlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// logBuffer collects a store's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewJSONHandler(lb, nil)), lb
}

func openT(t *testing.T, dir string) (*Store, *logBuffer) {
	t.Helper()
	logger, lb := newLogger()
	s, err := Open(dir, logger)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, lb
}

func put(t *testing.T, s *Store, id, value string) {
	t.Helper()
	if err := s.Put(context.Background(), id, []byte(value)); err != nil {
		t.Fatalf("Put(%q): %v", id, err)
	}
}

func wantValue(t *testing.T, s *Store, id, value string) {
	t.Helper()
	got, ok := s.Get(id)
	if !ok || string(got) != value {
		t.Errorf("Get(%q) = %q, %v; want %q", id, got, ok, value)
	}
}

func TestPutSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	put(t, s, "a", "1")
	put(t, s, "b", "2")
	put(t, s, "a", "3")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "c", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	s2, _ := openT(t, dir)
	wantValue(t, s2, "a", "3")
	wantValue(t, s2, "b", "2")
	st := s2.State()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != Primary || st.Records != 3 || st.Keys != 2 || st.Offset != fi.Size() || st.Truncated != 0 {
		t.Errorf("State = %+v, want primary, 3 records, 2 keys, offset %d", st, fi.Size())
	}
}

func TestConcurrentPutsAllDurable(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Put(context.Background(), fmt.Sprintf("w%d-%d", w, i), []byte(fmt.Sprint(w*i))); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	_ = s.Close()
	s2, _ := openT(t, dir)
	if st := s2.State(); st.Records != writers*each || st.Keys != writers*each {
		t.Fatalf("after reopen State = %+v, want %d records", st, writers*each)
	}
	wantValue(t, s2, "w7-9", fmt.Sprint(7*9))
}

// writeLog writes the records (id=value pairs) and returns the file bytes
// and the offset where each record ends.
func writeLog(t *testing.T, dir string, kv ...string) ([]byte, []int) {
	t.Helper()
	var b []byte
	var ends []int
	for i := 0; i < len(kv); i += 2 {
		b = append(b, mustRecord(t, kv[i], kv[i+1])...)
		ends = append(ends, len(b))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b, ends
}

func TestOpenTruncatesTornTail(t *testing.T) {
	full, ends := writeLog(t, t.TempDir(), "a", "1", "b", "2", "c", "third value")
	for _, cut := range []int{ends[1] + 1, ends[1] + headerLen, ends[1] + headerLen + 3, ends[2] - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), full[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			s, logs := openT(t, dir)
			st := s.State()
			if st.Records != 2 || st.Offset != int64(ends[1]) || st.Truncated != int64(cut-ends[1]) {
				t.Errorf("State = %+v, want 2 records at offset %d, %d bytes truncated", st, ends[1], cut-ends[1])
			}
			if !strings.Contains(logs.String(), "truncated torn log tail") || !strings.Contains(logs.String(), fmt.Sprintf(`"bytes":%d`, cut-ends[1])) {
				t.Errorf("log does not report the truncation: %s", logs)
			}
			put(t, s, "d", "4")
			_ = s.Close()
			s2, _ := openT(t, dir)
			wantValue(t, s2, "b", "2")
			wantValue(t, s2, "d", "4")
			if _, ok := s2.Get("c"); ok {
				t.Error("the torn record c was applied")
			}
		})
	}
}

func TestOpenDetectsCorruptCRC(t *testing.T) {
	cases := []struct {
		name        string
		flip        func(ends []int) int // which byte to flip
		wantRecords int64
	}{
		{"last record", func(ends []int) int { return ends[2] - 1 }, 2},
		{"middle record", func(ends []int) int { return ends[1] - 1 }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			full, ends := writeLog(t, dir, "a", "1", "b", "2", "c", "3")
			full[c.flip(ends)] ^= 0x20
			if err := os.WriteFile(filepath.Join(dir, FileName), full, 0o644); err != nil {
				t.Fatal(err)
			}
			s, logs := openT(t, dir)
			st := s.State()
			goodEnd := ends[c.wantRecords-1]
			if st.Records != c.wantRecords || st.Offset != int64(goodEnd) || st.Truncated != int64(len(full)-goodEnd) {
				t.Errorf("State = %+v, want %d records ending at %d", st, c.wantRecords, goodEnd)
			}
			if !strings.Contains(logs.String(), "truncated corrupt log tail") || !strings.Contains(logs.String(), "CRC32C") {
				t.Errorf("log does not report the corrupt record: %s", logs)
			}
			if strings.Contains(logs.String(), "follower") {
				t.Errorf("a primary's log speaks of a follower: %s", logs)
			}
		})
	}
}
