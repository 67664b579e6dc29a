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

// TestChunkKeyAgreement: agents of this release key chunks with XXH64 and
// say so; a target still keys with the earlier release's function for a
// source that names none, and a source facing an earlier target (which
// ignores the parameter and says nothing) sends files whole rather than
// patching against keys that never match, so agents can be upgraded in
// either order.
func TestChunkKeyAgreement(t *testing.T) {
	dir := t.TempDir()
	data := pattern(1, 256<<10)
	writeFile(t, filepath.Join(dir, "f"), data)
	target := inProcessAgent(t, RoleTarget, dir)
	first, err := manifestOf(context.Background(), strings.NewReader(string(data)), DefaultChunkParams, func([]byte) uint64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	chunk0 := data[:first[0].Len]

	get := func(t *testing.T, method, path string) (*http.Response, []byte) {
		r, err := http.NewRequest(method, target+path, strings.NewReader(""))
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
		return resp, body
	}
	const manifest = "/v1/manifest?path=f&min=2048&avg=8192&max=65536"
	for _, tc := range []struct {
		query, header string
		key           func([]byte) uint64
	}{
		{"&key=xxh64", "xxh64", chunkKey},
		{"", "blake3-64", legacyChunkKey}, // an earlier release's source
	} {
		resp, body := get(t, http.MethodGet, manifest+tc.query)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(chunkKeyHeader) != tc.header {
			t.Fatalf("manifest%s: %s, key header %q; want 200 and %q", tc.query, resp.Status, resp.Header.Get(chunkKeyHeader), tc.header)
		}
		chunks, err := decodeManifest(body, int64(len(data)), DefaultChunkParams.Max)
		if err != nil || chunks[0].Key != tc.key(chunk0) {
			t.Errorf("manifest%s: first key %x (%v), want %x", tc.query, chunks[0].Key, err, tc.key(chunk0))
		}
	}
	for _, path := range []string{manifest + "&key=sha1", "/v1/blocks?path=f&size=1&mtime=1&bs=512&key=sha1"} {
		method := http.MethodGet
		if strings.HasPrefix(path, "/v1/blocks") {
			method = http.MethodPost
		}
		if resp, body := get(t, method, path); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "compatible releases") {
			t.Errorf("%s: %s %s, want 400 naming the releases", path, resp.Status, body)
		}
	}

	t.Run("a source facing an earlier target sends files whole", func(t *testing.T) {
		src, dst := t.TempDir(), t.TempDir()
		writeFile(t, filepath.Join(src, "db"), pattern(2, 2<<20))
		ageTree(t, src)
		a, err := NewAgent(AgentConfig{Role: RoleTarget, Dir: dst, Token: testToken, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		var asked atomic.Int32
		// An earlier release: it ignores the key parameter, keys as it
		// always did, and names no function.
		old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if q.Has("key") {
				asked.Add(1)
				q.Del("key")
				r.URL.RawQuery = q.Encode()
			}
			a.Handler().ServeHTTP(headerless{w}, r)
		}))
		defer old.Close()
		m, err := NewMethod(MethodConfig{Kind: MethodIncremental, Src: Endpoint{Dir: src}, Dst: Endpoint{Agent: old.URL}, Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := m.Full(ctx); err != nil {
			t.Fatal(err)
		}
		scatter(t, filepath.Join(src, "db"), 4, 9)
		st, err := m.Incremental(ctx)
		if err != nil {
			t.Fatalf("incremental against an earlier target: %v", err)
		}
		assertSameTree(t, src, dst)
		if st.Copied != 1 || st.Patched != 0 || asked.Load() == 0 {
			t.Errorf("%+v after asking for keys %d times; want the file sent whole after a refused delta", st, asked.Load())
		}
	})
}

// headerless drops the chunk key header from an agent's answers.
type headerless struct{ http.ResponseWriter }

func (h headerless) WriteHeader(code int) {
	h.Header().Del(chunkKeyHeader)
	h.ResponseWriter.WriteHeader(code)
}

func (h headerless) Write(b []byte) (int, error) {
	h.Header().Del(chunkKeyHeader)
	return h.ResponseWriter.Write(b)
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
