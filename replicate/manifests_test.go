package replicate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestTargetCachesManifests: a target sink chunks the files it wrote whole
// once it is idle, and answers a chunk list from that cache only while the
// file is the version it chunked: a file rewritten in place with its size
// and mtime put back gets its new list, and other chunk sizes or key
// functions are cut from the file as before.
func TestTargetCachesManifests(t *testing.T) {
	ctx := context.Background()
	dir, d := cachingSink(t)

	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	mt := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := d.Mkdir(ctx, "db", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Replace(ctx, "db/f", newBytesContent(data, 0o644, mt)); err != nil {
		t.Fatal(err)
	}
	want, err := manifestOf(ctx, bytes.NewReader(data), DefaultChunkParams, chunkKey)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := os.Stat(filepath.Join(dir, "db", "f"))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := d.manifests.get("db/f", info); ok {
			if !slices.Equal(got, want) {
				t.Fatalf("cached list of %d chunks differs from the file's %d", len(got), len(want))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file written whole was not chunked in the background within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m, err := d.Manifest(ctx, "db/f", DefaultChunkParams)
	if err != nil || !slices.Equal(m.Chunks, want) || m.Size != int64(len(data)) || !m.ModTime.Equal(mt) {
		t.Fatalf("Manifest: %d chunks, size %d, mtime %v, %v; want %d chunks of the file as written", len(m.Chunks), m.Size, m.ModTime, err, len(want))
	}

	// Rewritten in place, same size, mtime put back: only the inode's
	// change time tells.
	changed := slices.Clone(data)
	rand.NewChaCha8([32]byte{2}).Read(changed[300<<10 : 400<<10])
	if err := os.WriteFile(filepath.Join(dir, "db", "f"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "db", "f"), mt, mt); err != nil {
		t.Fatal(err)
	}
	wantChanged, err := manifestOf(ctx, bytes.NewReader(changed), DefaultChunkParams, chunkKey)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(wantChanged, want) {
		t.Fatal("the change left every chunk as it was: the test proves nothing")
	}
	if m, err := d.Manifest(ctx, "db/f", DefaultChunkParams); err != nil || !slices.Equal(m.Chunks, wantChanged) {
		t.Fatalf("after the file changed, Manifest gave %d chunks (%v), want the new %d: a stale cached list", len(m.Chunks), err, len(wantChanged))
	}

	other := ChunkParams{Min: 1 << 10, Avg: 4 << 10, Max: 32 << 10}
	wantOther, err := manifestOf(ctx, bytes.NewReader(changed), other, chunkKey)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := d.Manifest(ctx, "db/f", other); err != nil || !slices.Equal(m.Chunks, wantOther) {
		t.Fatalf("with other chunk sizes, Manifest gave %d chunks (%v), want %d", len(m.Chunks), err, len(wantOther))
	}
	wantLegacy, err := manifestOf(ctx, bytes.NewReader(changed), DefaultChunkParams, legacyChunkKey)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := d.manifest(ctx, "db/f", DefaultChunkParams, legacyChunkKey, legacyKeyName); err != nil || !slices.Equal(m.Chunks, wantLegacy) {
		t.Fatalf("with the legacy key, manifest gave %d chunks (%v), want %d keyed by it", len(m.Chunks), err, len(wantLegacy))
	}

	if err := d.Remove(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if d.manifests.chunks != 0 || len(d.manifests.files) != 0 {
		t.Errorf("after removing the directory the cache holds %d files, %d chunks; want none", len(d.manifests.files), d.manifests.chunks)
	}
}

// TestManifestCacheBound: the cache never holds more than its bound of
// chunks, evicting other files' lists to make room.
func TestManifestCacheBound(t *testing.T) {
	c := &manifestCache{files: make(map[string]cachedManifest), queued: make(map[string]bool)}
	info, err := os.Stat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	big := make([]Chunk, manifestCacheChunks/2+1)
	for _, p := range []string{"a", "b", "c"} {
		c.put(p, info, big)
		if c.chunks > manifestCacheChunks {
			t.Fatalf("after %s: %d chunks held, bound %d", p, c.chunks, manifestCacheChunks)
		}
	}
	if _, ok := c.files["c"]; !ok || len(c.files) != 1 {
		t.Errorf("holds %d files, want the last one only", len(c.files))
	}
	c.put("huge", info, make([]Chunk, manifestCacheChunks+1))
	if _, ok := c.files["huge"]; ok {
		t.Error("a list over the whole bound was cached")
	}
}

// TestManifestCacheYieldsAndForgets: the background chunking gives way
// when the sink writes, and is done once it is idle; a file changed any
// other way than written whole (appended to here) is forgotten.
func TestManifestCacheYieldsAndForgets(t *testing.T) {
	ctx := context.Background()
	dir, d := cachingSink(t)
	data := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{3}).Read(data)
	// Written behind the sink's back: nothing queues it.
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	d.manifests.touch() // a transfer writing
	if err := d.manifests.compute(ctx, "f"); !errors.Is(err, errSinkBusy) {
		t.Fatalf("chunking while the sink writes: %v, want errSinkBusy", err)
	}
	if _, ok := d.manifests.get("f", info); ok {
		t.Fatal("cached while the sink wrote")
	}
	d.manifests.replaced("f", info.Size(), true)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := d.manifests.get("f", info); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not chunked within 10 s of the sink going idle")
		}
	}

	if _, err := d.Append(ctx, "f", int64(len(data)), newBytesContent([]byte("tail"), 0o644, time.Now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	d.manifests.mu.Lock()
	files, chunks := len(d.manifests.files), d.manifests.chunks
	d.manifests.mu.Unlock()
	if files != 0 || chunks != 0 {
		t.Errorf("after an append the cache holds %d files, %d chunks; want the file's list dropped", files, chunks)
	}
}

// cachingSink is a DirSink over a new directory that caches manifests, as a
// target agent's does, closed when the test ends.
func cachingSink(t *testing.T) (string, *DirSink) {
	t.Helper()
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d.cacheManifests(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { d.Close() })
	return dir, d
}
