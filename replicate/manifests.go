package replicate

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The target's manifest cache's bounds.
const (
	// manifestCacheChunks bounds the chunks the cache holds, all files
	// together: 2 Mi chunks of 24 bytes, 48 MiB, describe about 16 GiB at
	// DefaultChunkParams' 8 KiB average.
	manifestCacheChunks = 2 << 20
	// manifestQueue bounds the files waiting to be chunked; a file written
	// when it is full is chunked when a source asks, as without the cache.
	manifestQueue = 4096
	// manifestIdle is how long the sink must have written nothing before
	// the cache chunks a waiting file, so that chunking never competes
	// with a transfer in progress (a pre-warm's full copy) for the
	// target's CPU and disk.
	manifestIdle = 100 * time.Millisecond
)

// manifestCache remembers the chunk lists (with DefaultChunkParams and
// chunkKey, what sources ask for unless configured otherwise) of the files
// a target DirSink wrote whole, computed in the background once the sink
// is idle, so that the first incremental round after a full copy, or after
// a source restarts with its chunk cache empty, gets each changed file's
// list at once instead of waiting while the target reads and cuts the
// whole file. The target is the host with CPU to spare: the source runs the
// component at risk.
//
// An entry holds only while the file is the version it was computed from:
// same size, mtime, inode and change time (every write and rename changes
// one of them). A stale or wrong list cannot make a wrong replica anyway:
// the patch built from it is checked against the source's whole-file
// digest (ErrVerify), and the file then goes whole.
type manifestCache struct {
	root *os.Root
	log  *slog.Logger

	mu      sync.Mutex
	files   map[string]cachedManifest // by slash path
	chunks  int                       // in files, all together
	pending []string                  // written whole, not yet chunked
	queued  map[string]bool
	// lastUse is when the sink last wrote, in Unix nanoseconds.
	lastUse atomic.Int64

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// cachedManifest is a file's chunk list and the version it describes.
type cachedManifest struct {
	id     fileVersion
	chunks []Chunk
}

// fileVersion identifies the content of a file as the file system shows it.
type fileVersion struct {
	size, mtime, ctime int64
	ino                uint64
}

func versionOf(info fs.FileInfo) fileVersion {
	v := fileVersion{size: info.Size(), mtime: info.ModTime().UnixNano()}
	v.ino, v.ctime = inodeChange(info)
	return v
}

func newManifestCache(root *os.Root, log *slog.Logger) *manifestCache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &manifestCache{
		root: root, log: log,
		files: make(map[string]cachedManifest), queued: make(map[string]bool),
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
	}
	go c.run(ctx)
	return c
}

// close stops the background chunking and waits for it.
func (c *manifestCache) close() {
	c.cancel()
	<-c.done
}

// touch records that the sink is writing: chunking waits until it has
// been idle for manifestIdle. Nil-safe, as are written and forget.
func (c *manifestCache) touch() {
	if c != nil {
		c.lastUse.Store(time.Now().UnixNano())
	}
}

// replaced records that p changed (committed, patched in place, appended
// to): what the cache held of it is dropped, and a file written whole of
// size bytes is queued to be chunked, unless its list could not be kept
// (too small to be patched, or over the cache's bound). It runs at every
// commit, so it touches p's entry alone, not the whole map (see removed).
func (c *manifestCache) replaced(p string, size int64, whole bool) {
	if c == nil {
		return
	}
	queue := whole && size >= deltaMinSize && size/int64(DefaultChunkParams.Avg) <= manifestCacheChunks
	c.mu.Lock()
	c.drop(p)
	if queue && !c.queued[p] && len(c.pending) < manifestQueue {
		c.queued[p] = true
		c.pending = append(c.pending, p)
	}
	c.mu.Unlock()
	if queue {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// get returns the cached chunk list of p if it describes the version info
// shows.
func (c *manifestCache) get(p string, info fs.FileInfo) ([]Chunk, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.files[p]
	if !ok || m.id != versionOf(info) {
		return nil, false
	}
	return m.chunks, true
}

// put records the chunk list of the version info shows of p, evicting
// other files' lists when the cache is at its bound.
func (c *manifestCache) put(p string, info fs.FileInfo, chunks []Chunk) {
	if len(chunks) > manifestCacheChunks {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(p)
	for q := range c.files {
		if c.chunks+len(chunks) <= manifestCacheChunks {
			break
		}
		c.drop(q)
	}
	c.files[p] = cachedManifest{id: versionOf(info), chunks: slices.Clip(chunks)}
	c.chunks += len(chunks)
}

// removed drops what the cache holds of p and, p being a directory, of
// the files under it.
func (c *manifestCache) removed(p string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.files {
		if q == p || strings.HasPrefix(q, p+"/") {
			c.drop(q)
		}
	}
}

// drop removes p's entry; c.mu is held.
func (c *manifestCache) drop(p string) {
	if m, ok := c.files[p]; ok {
		c.chunks -= len(m.chunks)
		delete(c.files, p)
	}
}

// run chunks the queued files, one at a time, each once the sink has been
// idle for manifestIdle.
func (c *manifestCache) run(ctx context.Context) {
	defer close(c.done)
	for {
		p, wait, ok := c.next()
		switch {
		case !ok:
			select {
			case <-c.wake:
			case <-ctx.Done():
				return
			}
			continue
		case wait > 0:
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
			continue
		}
		err := c.compute(ctx, p)
		switch {
		case errors.Is(err, errSinkBusy):
			c.requeue(p)
		case err != nil && ctx.Err() == nil:
			c.log.Debug("chunk list not cached", "path", p, "err", err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// next is the file to chunk now, or how long to wait until the sink is
// idle; false when none is queued.
func (c *manifestCache) next() (p string, wait time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return "", 0, false
	}
	if idle := time.Duration(time.Now().UnixNano() - c.lastUse.Load()); idle < manifestIdle {
		return "", manifestIdle - idle, true
	}
	p = c.pending[0]
	c.pending = c.pending[1:]
	delete(c.queued, p)
	return p, 0, true
}

// errSinkBusy: the sink wrote while a file was being chunked, which then
// stops and waits for its turn again.
var errSinkBusy = errors.New("the sink is writing")

// requeue puts p back at the end of the queue, unless a write queued it
// again meanwhile.
func (c *manifestCache) requeue(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.queued[p] {
		c.queued[p] = true
		c.pending = append(c.pending, p)
	}
}

// busyCheckEvery is how many chunks the background chunking cuts between
// two looks at whether the sink is writing again (about 2 MiB).
const busyCheckEvery = 256

// compute chunks p and caches its list, unless it changed meanwhile. It
// gives up with errSinkBusy as soon as the sink writes again.
func (c *manifestCache) compute(ctx context.Context, p string) error {
	f, err := c.root.Open(filepath.FromSlash(p))
	if err != nil {
		return err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil || !before.Mode().IsRegular() {
		return err
	}
	if _, ok := c.get(p, before); ok {
		return nil // a source asked first
	}
	if before.Size()/int64(DefaultChunkParams.Avg) > manifestCacheChunks {
		return nil
	}
	var chunks []Chunk
	err = cutChunks(ctx, io.NewSectionReader(f, 0, before.Size()), DefaultChunkParams, func(off int64, b []byte) error {
		if len(chunks)%busyCheckEvery == 0 && time.Duration(time.Now().UnixNano()-c.lastUse.Load()) < manifestIdle {
			return errSinkBusy
		}
		chunks = append(chunks, Chunk{Off: off, Len: len(b), Key: chunkKey(b)})
		return nil
	})
	if err != nil {
		return err
	}
	after, err := f.Stat()
	if err != nil {
		return err
	}
	if versionOf(after) == versionOf(before) {
		c.put(p, after, chunks)
	}
	return nil
}
