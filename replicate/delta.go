package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
)

// maxPieceData bounds the new bytes one Piece carries (merged chunks).
const maxPieceData = 1 << 20

// chunkLoc is where a chunk lies in a destination file.
type chunkLoc struct {
	path string
	off  int64
	n    int
}

// ChunkCache remembers, across rounds, the chunk lists of the files the
// destination holds: as this source sent them, or as the destination
// reported them. It is the state that lets an incremental round send only
// chunks the destination lacks without first fetching its whole index.
// An entry counts only while the destination lists the file with the size
// and mtime it records. Not safe for concurrent use: rounds using one cache
// must not overlap (a Method serialises them).
type ChunkCache struct {
	params ChunkParams
	files  map[string]Manifest
	index  map[uint64]chunkLoc
}

// NewChunkCache returns an empty cache for chunks cut with p.
func NewChunkCache(p ChunkParams) (*ChunkCache, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &ChunkCache{params: p, files: make(map[string]Manifest), index: make(map[uint64]chunkLoc)}, nil
}

// validate forgets every file the destination no longer holds as recorded.
func (c *ChunkCache) validate(dst []Entry) {
	byPath := make(map[string]Entry, len(dst))
	for _, e := range dst {
		byPath[e.Path] = e
	}
	for p, m := range c.files {
		e, ok := byPath[p]
		if !ok || e.Kind != KindFile || e.Size != m.Size || !e.ModTime.Equal(m.ModTime) {
			c.forget(p)
		}
	}
}

// forget drops the file's chunk list and its index entries.
func (c *ChunkCache) forget(p string) {
	m, ok := c.files[p]
	if !ok {
		return
	}
	for _, ch := range m.Chunks {
		if loc, ok := c.index[ch.Key]; ok && loc.path == p {
			delete(c.index, ch.Key)
		}
	}
	delete(c.files, p)
}

// learn records that the destination's file p is m.
func (c *ChunkCache) learn(p string, m Manifest) {
	c.forget(p)
	c.files[p] = m
	for _, ch := range m.Chunks {
		if _, ok := c.index[ch.Key]; !ok {
			c.index[ch.Key] = chunkLoc{path: p, off: ch.Off, n: ch.Len}
		}
	}
}

// knows reports whether the cache holds the chunk list of the
// destination's version e of p.
func (c *ChunkCache) knows(p string, e Entry) bool {
	m, ok := c.files[p]
	return ok && e.Kind == KindFile && m.Size == e.Size && m.ModTime.Equal(e.ModTime)
}

// ref returns the version of p the cache describes.
func (c *ChunkCache) ref(p string) Ref {
	m := c.files[p]
	return Ref{Path: p, Size: m.Size, ModTime: m.ModTime}
}

// fileDelta is the Delta of one source file against a ChunkCache: it cuts
// the file into chunks as it reads it, and turns each chunk into a copy of
// the same bytes at the destination when the cache knows where they are,
// or into new bytes otherwise. Adjacent pieces are merged.
//
// When the destination holds an older version of the same file and can
// hash blocks of it (BlockSummer), new bytes are refined before they go:
// the blocks of a changed chunk that the old version holds at the same
// offset are sent as copies. A 4 KiB page written in place then costs
// about 4 KiB on the wire instead of the one or two chunks around it.
type fileDelta struct {
	src    *sourceFile
	cache  *ChunkCache
	ch     *chunkers.Chunker
	off    int64 // bytes of the file cut so far
	chunks []Chunk
	eof    bool

	refiner BlockSummer // nil: no refinement
	base    Ref         // the destination's version of this file, for refinement
	inPlace bool        // ask for the patch to be applied in place over base
	// baseChunks is base's chunk list, when the cache knows it; baseAt is
	// the first of them not before the chunk being cut. A chunk that base
	// holds at the same offset is copied from there rather than from
	// wherever the index first saw its key, so that what did not change
	// stays where it is (an in-place patch writes nothing for it).
	baseChunks []Chunk
	baseAt     int
	batch      []Piece // pieces cut, not yet refined
	batchAt    int64   // offset in the result of batch[0]
	newIn      int64   // new bytes in batch
	inBatch    int64   // result bytes in batch
	ready      cutBatch

	// Between the producer and Next (see start).
	cancel   context.CancelFunc
	out      chan deltaBatch
	stopped  chan struct{}
	cur      []Piece // Next's current batch
	finished bool
	finalErr error

	literal int64 // new bytes handed out
	reused  int64 // bytes handed out as copies
	at      int64 // bytes of the result handed out
	// moved is set once a piece handed out is not the base's own bytes
	// where they are: while it is not, the patch leaves the file as it was.
	moved bool
}

var (
	_ Delta      = (*fileDelta)(nil)
	_ Identified = (*fileDelta)(nil)
	_ InPlacer   = (*fileDelta)(nil)
)

// InPlace implements InPlacer.
func (d *fileDelta) InPlace() (Ref, bool) { return d.base, d.inPlace }

// Refinement: block size, and how many new bytes are refined per request.
const (
	refineBlock = 512
	refineBatch = 4 << 20
	// refineSpan bounds the result bytes a batch covers, so the
	// destination starts building while the source still reads.
	refineSpan = 16 << 20
)

func newFileDelta(src *sourceFile, cache *ChunkCache) (*fileDelta, error) {
	readSize := chunkReadSize
	if src.lim != nil {
		readSize = min(readSize, src.lim.Burst())
	}
	ch, err := newChunker(src, cache.params, readSize)
	if err != nil {
		return nil, err
	}
	return &fileDelta{src: src, cache: cache, ch: ch}, nil
}

// Identity implements Identified.
func (d *fileDelta) Identity() string { return d.src.Identity() }

// Meta implements Delta.
func (d *fileDelta) Meta() FileMeta { return d.src.Meta() }

// manifest is the chunk list of what was handed out, valid after io.EOF.
func (d *fileDelta) manifest() Manifest {
	return Manifest{Size: d.off, ModTime: d.src.Meta().ModTime, Chunks: d.chunks}
}

// deltaBatch is what the producer hands to Next.
type deltaBatch struct {
	pieces []Piece
	eof    bool
	err    error
}

// cutBatch is what the cutting stage hands to the refining one: pieces cut
// and looked up, starting at offset at of the result, to refine if refine
// is set.
type cutBatch struct {
	pieces []Piece
	at     int64
	refine bool
	eof    bool
	err    error
}

// start runs the producer: it cuts, looks up and refines the file ahead of
// Next, so that reading and hashing the source overlap sending and the
// destination's work. Refining (a round trip to the destination per batch)
// runs on a stage of its own, so that cutting goes on meanwhile: 33 round
// trips for a 512 MiB file with scattered page writes, a sixth of the
// patch's time when they stopped the cutting. close stops it.
func (d *fileDelta) start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	d.out = make(chan deltaBatch, 2)
	d.stopped = make(chan struct{})
	cut := make(chan cutBatch, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(cut)
		for {
			b := d.nextBatch(ctx)
			select {
			case cut <- b:
			case <-ctx.Done():
				return
			}
			if b.eof || b.err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		for b := range cut {
			pieces := b.pieces
			if b.refine {
				if refined, err := d.refine(ctx, pieces, b.at); err == nil {
					pieces = refined
				}
			}
			var q []Piece
			for _, p := range pieces {
				q = mergePiece(q, p)
			}
			select {
			case d.out <- deltaBatch{pieces: q, eof: b.eof, err: b.err}:
			case <-ctx.Done():
				return
			}
		}
	})
	go func() {
		wg.Wait()
		close(d.stopped)
	}()
}

// close stops the producer and waits for it.
func (d *fileDelta) close() {
	if d.cancel != nil {
		d.cancel()
		<-d.stopped
	}
}

// Next implements Delta.
func (d *fileDelta) Next(ctx context.Context) (Piece, error) {
	for len(d.cur) == 0 {
		if d.finished {
			if d.finalErr != nil {
				return Piece{}, d.finalErr
			}
			return Piece{}, io.EOF
		}
		select {
		case b := <-d.out:
			d.cur, d.finished, d.finalErr = b.pieces, b.eof || b.err != nil, b.err
		case <-ctx.Done():
			return Piece{}, ctx.Err()
		}
	}
	p := d.cur[0]
	d.cur = d.cur[1:]
	if p.Data != nil {
		d.literal += int64(len(p.Data))
	} else {
		d.reused += p.Len
	}
	if p.Data != nil || !d.inPlace || !sameRef(p.From, d.base) || p.Off != d.at {
		d.moved = true
	}
	d.at += p.Size()
	return p, nil
}

// nextBatch cuts the file until some pieces are ready, or to its end.
func (d *fileDelta) nextBatch(ctx context.Context) cutBatch {
	for len(d.ready.pieces) == 0 {
		if err := ctx.Err(); err != nil {
			return cutBatch{err: err}
		}
		if d.eof {
			if len(d.batch) == 0 {
				return cutBatch{eof: true}
			}
			d.flush()
			continue
		}
		b, err := d.ch.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			return cutBatch{err: err}
		}
		d.eof = errors.Is(err, io.EOF)
		if d.eof && !d.src.done {
			// The chunker stops at any error; only a real EOF finishes
			// the source file and fixes its metadata.
			return cutBatch{err: fmt.Errorf("read %s: stopped before its end", d.src.f.Name())}
		}
		if len(b) > 0 {
			d.add(b)
		}
		if d.newIn >= refineBatch || d.inBatch >= refineSpan || (d.refiner == nil && len(d.batch) > 1) {
			d.flush()
		}
	}
	b := d.ready
	d.ready = cutBatch{}
	return b
}

// add turns the chunk b into a piece at the end of the batch.
func (d *fileDelta) add(b []byte) {
	key, off := chunkKey(b), d.off
	d.chunks = append(d.chunks, Chunk{Off: off, Len: len(b), Key: key})
	d.off += int64(len(b))
	d.inBatch += int64(len(b))
	for d.baseAt < len(d.baseChunks) && d.baseChunks[d.baseAt].Off < off {
		d.baseAt++
	}
	if d.baseAt < len(d.baseChunks) {
		if c := d.baseChunks[d.baseAt]; c.Off == off && c.Len == len(b) && c.Key == key {
			d.batch = mergePiece(d.batch, Piece{From: d.base, Off: off, Len: int64(len(b))})
			return
		}
	}
	if loc, ok := d.cache.index[key]; ok && loc.n == len(b) {
		d.batch = mergePiece(d.batch, Piece{From: d.cache.ref(loc.path), Off: loc.off, Len: int64(loc.n)})
		return
	}
	d.batch = mergePiece(d.batch, Piece{Data: append([]byte(nil), b...)})
	d.newIn += int64(len(b))
}

// mergePiece appends p to ps, merging it into the last piece when both are
// new bytes (up to maxPieceData) or contiguous copies of one file.
func mergePiece(ps []Piece, p Piece) []Piece {
	if len(ps) > 0 {
		last := &ps[len(ps)-1]
		switch {
		case last.Data != nil && p.Data != nil && len(last.Data)+len(p.Data) <= maxPieceData:
			last.Data = append(last.Data, p.Data...)
			return ps
		case last.Data == nil && p.Data == nil && sameRef(last.From, p.From) && last.Off+last.Len == p.Off:
			last.Len += p.Len
			return ps
		}
	}
	return append(ps, p)
}

// flush makes the batch ready for the refining stage: all of it but the
// last piece (which the next chunk may still extend) unless the file is cut
// to its end, to be refined if it holds new bytes. A refinement failure
// only costs bytes: the pieces go as they are.
func (d *fileDelta) flush() {
	n := len(d.batch)
	if !d.eof {
		n--
	}
	if n <= 0 {
		return
	}
	d.ready = cutBatch{pieces: slices.Clone(d.batch[:n]), at: d.batchAt, refine: d.refiner != nil && d.newIn > 0}
	for _, p := range d.ready.pieces {
		d.batchAt += p.Size()
	}
	d.batch = append(d.batch[:0], d.batch[n:]...)
	d.newIn, d.inBatch = 0, 0
	for _, p := range d.batch {
		if p.Data != nil {
			d.newIn += int64(len(p.Data))
		}
		d.inBatch += p.Size()
	}
}

// refine asks the destination for the hashes of the base version's blocks
// under the new bytes of ps (which start at batchAt in the result) and
// replaces each block it holds unchanged by a copy.
func (d *fileDelta) refine(ctx context.Context, ps []Piece, batchAt int64) ([]Piece, error) {
	var spans []Span
	at := batchAt
	for _, p := range ps {
		if p.Data != nil {
			if sp, ok := alignedSpan(at, int64(len(p.Data)), d.base.Size); ok {
				spans = append(spans, sp)
			}
		}
		at += p.Size()
	}
	if len(spans) == 0 {
		return ps, nil
	}
	sums, err := d.refiner.BlockSums(ctx, d.base, refineBlock, spans)
	if err != nil {
		return nil, err
	}
	if want := spanBlocks(spans, refineBlock); int64(len(sums)) != want {
		return nil, fmt.Errorf("block sums: %d, asked for %d", len(sums), want)
	}
	var out []Piece
	at = batchAt
	for _, p := range ps {
		size := p.Size()
		sp, ok := alignedSpan(at, size, d.base.Size)
		if p.Data == nil || !ok {
			out = mergePiece(out, p)
			at += size
			continue
		}
		head := sp.Off - at
		out = mergePiece(out, Piece{Data: own(p.Data[:head])})
		for b := int64(0); b < sp.Len/refineBlock; b++ {
			lo := head + b*refineBlock
			block := p.Data[lo : lo+refineBlock]
			if chunkKey(block) == sums[0] {
				out = mergePiece(out, Piece{From: d.base, Off: sp.Off + b*refineBlock, Len: refineBlock})
			} else {
				out = mergePiece(out, Piece{Data: own(block)})
			}
			sums = sums[1:]
		}
		if tail := head + sp.Len; tail < size {
			out = mergePiece(out, Piece{Data: own(p.Data[tail:])})
		}
		at += size
	}
	return dropEmpty(out), nil
}

// alignedSpan is the largest run of whole blocks inside [at, at+n) and
// inside a base file of baseSize bytes.
func alignedSpan(at, n, baseSize int64) (Span, bool) {
	lo := (at + refineBlock - 1) / refineBlock * refineBlock
	hi := min(at+n, baseSize) / refineBlock * refineBlock
	if hi <= lo {
		return Span{}, false
	}
	return Span{Off: lo, Len: hi - lo}, true
}

// sameRef reports whether two refs name the same version of a file.
func sameRef(a, b Ref) bool {
	return a.Path == b.Path && a.Size == b.Size && a.ModTime.Equal(b.ModTime)
}

// own copies b, so that merging into it never writes over what it aliases.
func own(b []byte) []byte { return append([]byte(nil), b...) }

// dropEmpty removes empty new-byte pieces left by a refinement.
func dropEmpty(ps []Piece) []Piece {
	out := ps[:0]
	for _, p := range ps {
		if p.Size() > 0 {
			out = append(out, p)
		}
	}
	return out
}

// deltaMinSize is the smallest file worth a delta: below it, the chunk list
// and the round trip cost more than sending the file.
const deltaMinSize = 64 << 10

// patchable reports whether a file of size srcSize may go as a delta.
func (r *round) patchable(srcSize int64) (Patcher, bool) {
	if r.cache == nil || r.full || srcSize < deltaMinSize {
		return nil, false
	}
	pt, ok := r.dst.(Patcher)
	return pt, ok
}

// baseManifest makes sure the cache knows the destination's version of p
// when there is one worth patching against.
func (r *round) baseManifest(pt Patcher, a action) error {
	if a.dst.Kind != KindFile || a.dst.Size < deltaMinSize {
		return nil
	}
	if r.cache.knows(a.path, a.dst) {
		return nil
	}
	m, err := pt.Manifest(r.ctx, a.path, r.cache.params)
	if err != nil {
		return fmt.Errorf("destination chunk list of %s: %w", a.path, err)
	}
	r.stats.ManifestsFetched++
	r.cache.learn(a.path, m)
	return nil
}

// patch sends the file as a delta against what the destination holds: in
// place over the destination's version when there is a large one, else as
// a new file; an in-place patch refused as moving too much goes again as a
// new file.
func (r *round) patch(pt Patcher, f *os.File, a action, srcSize int64, start time.Time) error {
	if err := r.baseManifest(pt, a); err != nil {
		return err
	}
	if len(r.cache.index) == 0 {
		return errNoBase
	}
	base, known := r.cache.files[a.path]
	inPlace := known && base.Size >= inPlaceMin && srcSize >= inPlaceMin
	err := r.patchOnce(pt, f, a, srcSize, start, inPlace)
	if inPlace && errors.Is(err, errNotInPlace) {
		r.log.Debug("patch moves too much to apply in place", "path", a.path)
		err = r.patchOnce(pt, f, a, srcSize, start, false)
	}
	return err
}

func (r *round) patchOnce(pt Patcher, f *os.File, a action, srcSize int64, start time.Time, inPlace bool) error {
	c, err := newSourceFile(r.ctx, f, 0, start, checkDigest, r.lim)
	if err != nil {
		return err
	}
	defer c.close()
	d, err := newFileDelta(c, r.cache)
	if err != nil {
		return err
	}
	if m, known := r.cache.files[a.path]; known {
		d.base, d.inPlace, d.baseChunks = r.cache.ref(a.path), inPlace, m.Chunks
		if bs, ok := r.dst.(BlockSummer); ok {
			d.refiner = bs
		}
	}
	d.start(r.ctx)
	n, err := pt.Patch(r.ctx, a.path, d)
	d.close()
	r.stats.Bytes += n
	if err != nil {
		if !errors.Is(err, errNotInPlace) {
			r.cache.forget(a.path)
		}
		return err
	}
	if d.moved || d.at != d.base.Size {
		r.stats.Patched++
		r.stats.Pending += srcSize
	} else {
		r.stats.Unchanged++ // a racy file found the same: nothing differed
	}
	r.stats.Reused += d.reused
	r.sent[a.path] = c.state
	r.cache.learn(a.path, d.manifest())
	return nil
}

// errNoBase means a delta has nothing to refer to: the file goes whole.
var errNoBase = errors.New("no destination chunks to refer to")
