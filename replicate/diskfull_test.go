package replicate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// tinyDisk mounts a 1 MiB tmpfs and returns its path. It skips the test when
// mounting is not permitted, except under CI=true, where it fails: the CI
// machines run as root and this fault must be exercised there.
func tinyDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		msg := "cannot mount a 1 MiB tmpfs to fill (needs root or CAP_SYS_ADMIN): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestDestinationFull(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, src string)
	}{
		{
			name:   "new file",
			change: func(t *testing.T, src string) { writeFile(t, filepath.Join(src, "fill", "filler"), pattern(2, 2<<20)) },
		},
		{
			name:   "append",
			change: func(t *testing.T, src string) { appendFile(t, filepath.Join(src, "orders.log"), pattern(3, 2<<20)) },
		},
		{
			name: "rewrite",
			change: func(t *testing.T, src string) {
				writeFile(t, filepath.Join(src, "orders.log"), pattern(4, 900<<10))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := t.TempDir(), tinyDisk(t)
			writeFile(t, filepath.Join(src, "orders.log"), pattern(1, 200<<10))
			ageTree(t, src)
			if _, err := Sync(ctx, src, dst); err != nil {
				t.Fatalf("first sync: %v", err)
			}
			tc.change(t, src)
			before := readTree(t, src, true)
			oldLog, err := os.ReadFile(filepath.Join(dst, "orders.log"))
			if err != nil {
				t.Fatal(err)
			}

			_, err = Sync(ctx, src, dst)
			if !errors.Is(err, ErrDestinationFull) {
				t.Fatalf("err = %v, want ErrDestinationFull", err)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("err = %v, want ENOSPC kept in the chain", err)
			}
			t.Logf("error: %v", err)

			if after := readTree(t, src, true); len(after) != len(before) {
				t.Errorf("source changed: %d entries, was %d", len(after), len(before))
			} else {
				for p, e := range before {
					if after[p] != e {
						t.Errorf("source %s changed", p)
					}
				}
			}
			readTree(t, dst, true) // no temp file left behind
			newLog, err := os.ReadFile(filepath.Join(dst, "orders.log"))
			if err != nil {
				t.Fatal(err)
			}
			srcLog, err := os.ReadFile(filepath.Join(src, "orders.log"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "append" {
				// In place: whatever fitted, still a prefix of the source.
				if len(newLog) < len(oldLog) || string(newLog) != string(srcLog[:len(newLog)]) {
					t.Errorf("appended log (%d bytes) is not a prefix of the source", len(newLog))
				}
			} else if string(newLog) != string(oldLog) {
				t.Errorf("log changed (%d bytes, was %d): want the old version intact", len(newLog), len(oldLog))
			}
		})
	}
}
