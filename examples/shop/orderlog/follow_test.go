package orderlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openFollowerT(t *testing.T, dir string) (*Store, *logBuffer) {
	t.Helper()
	logger, lb := newLogger()
	s, err := OpenFollower(dir, logger)
	if err != nil {
		t.Fatalf("OpenFollower(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, lb
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes b to a temporary file and renames it over path, as
// Phoenix's replicator does for a whole-file copy.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFollowerAppliesAppendedPieces(t *testing.T) {
	src := t.TempDir()
	full, ends := writeLog(t, src, "a", "1", "b", "22", "c", "333", "a", "4444")
	dir := t.TempDir()
	f, _ := openFollowerT(t, dir) // the file does not exist yet
	if st := f.State(); st.Role != Follower || st.Records != 0 {
		t.Fatalf("empty follower State = %+v", st)
	}
	path := filepath.Join(dir, FileName)
	// Pieces end mid-header, mid-payload, on a boundary, and span records.
	cuts := []int{3, ends[0] + 5, ends[1], ends[2] - 2, len(full)}
	prev := 0
	for _, cut := range cuts {
		appendFile(t, path, full[prev:cut])
		prev = cut
		if err := f.CatchUp(); err != nil {
			t.Fatalf("CatchUp after %d bytes: %v", cut, err)
		}
		complete := 0
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		st := f.State()
		if st.Records != int64(complete) || (complete > 0 && st.Offset != int64(ends[complete-1])) {
			t.Errorf("after %d bytes State = %+v, want %d records", cut, st, complete)
		}
	}
	wantValue(t, f, "a", "4444")
	wantValue(t, f, "c", "333")
	if err := f.Put(context.Background(), "x", nil); !errors.Is(err, ErrStandby) {
		t.Errorf("Put on a follower = %v, want ErrStandby", err)
	}
}

func TestFollowerHandlesReplacedFile(t *testing.T) {
	base, _ := writeLog(t, t.TempDir(), "a", "1", "b", "2")
	longer := append(append([]byte{}, base...), mustRecord(t, "c", "3")...)
	other, _ := writeLog(t, t.TempDir(), "x", "9")
	sameLenOther, _ := writeLog(t, t.TempDir(), "z", "1", "b", "2", "c", "3")
	cases := []struct {
		name     string
		next     []byte
		wantKeys []string
		wantGone []string
		inPlace  bool // rewrite the same inode instead of renaming over it
	}{
		{"extended copy", longer, []string{"a", "b", "c"}, nil, false},
		{"shorter file", other, []string{"x"}, []string{"a", "b"}, false},
		{"different history", sameLenOther, []string{"z", "b", "c"}, []string{"a"}, false},
		{"shorter in place", other, []string{"x"}, []string{"a", "b"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			replaceFile(t, path, base)
			f, logs := openFollowerT(t, dir)
			wantValue(t, f, "a", "1")
			if c.inPlace {
				if err := os.WriteFile(path, c.next, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				replaceFile(t, path, c.next)
			}
			if err := f.CatchUp(); err != nil {
				t.Fatal(err)
			}
			for _, k := range c.wantKeys {
				if _, ok := f.Get(k); !ok {
					t.Errorf("key %q missing after replacement", k)
				}
			}
			for _, k := range c.wantGone {
				if _, ok := f.Get(k); ok {
					t.Errorf("key %q of the old file survived a reload", k)
				}
			}
			if st := f.State(); st.Offset != int64(len(c.next)) {
				t.Errorf("State = %+v, want offset %d", st, len(c.next))
			}
			if !strings.Contains(logs.String(), "reloading") {
				t.Errorf("the replacement was not logged: %s", logs)
			}
		})
	}
}

func TestFollowerReportsCorruptionUntilReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	good, _ := writeLog(t, t.TempDir(), "a", "1")
	bad := mustRecord(t, "b", "2")
	bad[len(bad)-1] ^= 1
	replaceFile(t, path, append(append([]byte{}, good...), bad...))
	f, logs := openFollowerT(t, dir)
	if err := f.CatchUp(); !isCorrupt(err) {
		t.Fatalf("CatchUp = %v, want a CorruptError", err)
	}
	if st := f.State(); st.Records != 1 || !strings.Contains(st.Error, "CRC32C") {
		t.Errorf("State = %+v, want 1 record and the CRC error", st)
	}
	if n := strings.Count(logs.String(), "follower cannot advance"); n != 1 {
		t.Errorf("corruption logged %d times, want once", n)
	}
	replaceFile(t, path, append(append([]byte{}, good...), mustRecord(t, "b", "2")...))
	if err := f.CatchUp(); err != nil {
		t.Fatalf("CatchUp after the fix: %v", err)
	}
	if st := f.State(); st.Records != 2 || st.Error != "" {
		t.Errorf("State = %+v, want 2 records and no error", st)
	}
}

func TestPromoteTruncatesTornTailAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	full, ends := writeLog(t, t.TempDir(), "a", "1", "b", "2")
	path := filepath.Join(dir, FileName)
	replaceFile(t, path, full[:ends[1]-3])
	f, logs := openFollowerT(t, dir)
	st, err := f.Promote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != Primary || st.Records != 1 || st.Offset != int64(ends[0]) || st.Truncated != int64(ends[1]-3-ends[0]) {
		t.Errorf("Promote = %+v, want primary with 1 record at %d", st, ends[0])
	}
	if !strings.Contains(logs.String(), "truncated torn log tail") {
		t.Errorf("promotion did not log the truncation: %s", logs)
	}
	put(t, f, "c", "3")
	again, err := f.Promote(context.Background())
	if err != nil || again.Records != 2 || again.Role != Primary {
		t.Errorf("second Promote = %+v, %v; want the same primary with 2 records", again, err)
	}
	_ = f.Close()
	s, _ := openT(t, dir)
	wantValue(t, s, "a", "1")
	wantValue(t, s, "c", "3")
	if _, ok := s.Get("b"); ok {
		t.Error("torn record b applied")
	}
}

func TestFollowTailsUntilPromoted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	f, _ := openFollowerT(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Follow(ctx, 5*time.Millisecond) }()
	for i := range 5 {
		appendFile(t, path, mustRecord(t, fmt.Sprint("k", i), "v"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.State().Records < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("Follow applied %d of 5 records", f.State().Records)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := f.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after promotion")
	}
}
