package replicate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// TestChunkKeyAgreement checks that a source and a target agent that key
// chunks differently (agents of different releases) refuse each other with
// a reason, instead of patching against keys that never match.
func TestChunkKeyAgreement(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), pattern(1, 256<<10))
	target := inProcessAgent(t, RoleTarget, dir)

	t.Run("a target refuses a source that names no key or another", func(t *testing.T) {
		for _, q := range []string{"", "&key=blake3-64"} {
			for _, req := range []struct{ method, path string }{
				{http.MethodGet, "/v1/manifest?path=f&min=2048&avg=8192&max=65536" + q},
				{http.MethodPost, "/v1/blocks?path=f&size=1&mtime=1&bs=512" + q},
			} {
				r, err := http.NewRequest(req.method, target+req.path, strings.NewReader(""))
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "same release") {
					t.Errorf("%s %s: %d %s, want 400 naming the release", req.method, req.path, resp.StatusCode, body)
				}
			}
		}
	})

	t.Run("a source refuses a target that does not say it keys alike", func(t *testing.T) {
		var calls atomic.Int32
		old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Phoenix-Size", "0")
			w.Header().Set("Phoenix-Mtime", "0")
			w.WriteHeader(http.StatusOK) // as an earlier release answers: no key header
		}))
		t.Cleanup(old.Close)
		s, err := NewRemoteSink(old.URL, testToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.Manifest(ctx, "f", DefaultChunkParams); err == nil || !strings.Contains(err.Error(), "same release") {
			t.Errorf("Manifest from an older target = %v, want an error naming the release", err)
		}
		if _, err := s.BlockSums(ctx, Ref{Path: "f", Size: 4096, ModTime: time.Unix(1, 0)}, 512, []Span{{Off: 0, Len: 4096}}); err == nil || !strings.Contains(err.Error(), "same release") {
			t.Errorf("BlockSums from an older target = %v, want an error naming the release", err)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("%d requests, want 2: a mismatch is not transient and must not be retried", n)
		}
	})
}

func TestDigester(t *testing.T) {
	data := pattern(7, 3<<20+17)
	d := newDigester()
	defer d.close()
	// Pieces of varied sizes, more of them than the digester has buffers,
	// each overwritten after it is handed over: the digest must be of the
	// bytes as they were written.
	buf := make([]byte, 0, 1<<20)
	for off, i := 0, 1; off < len(data); i++ {
		n := min(i*9973, len(data)-off)
		buf = append(buf[:0], data[off:off+n]...)
		if err := d.write(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		clear(buf)
		off += n
	}
	if got, want := d.digest(), Digest(blake3.Sum256(data)); got != want {
		t.Errorf("digest %x, want BLAKE3 %x", got[:8], want[:8])
	}
}

func TestDigesterStops(t *testing.T) {
	d := newDigester()
	d.close()
	d.close() // more than once is fine
	// Its goroutine ends (it may take a few more buffers first, as its
	// select chooses at random between them and the stop): then, once
	// every buffer is queued, write waits for one that never comes back,
	// and only its context frees it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	for range 64 {
		if err = d.write(ctx, []byte("x")); err != nil {
			break
		}
	}
	if err != context.DeadlineExceeded {
		t.Errorf("write to a stopped digester = %v, want the context's deadline", err)
	}
}
