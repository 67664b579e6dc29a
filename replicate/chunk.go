package replicate

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers the FastCDC algorithm
	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/blake3"
)

// cdcAlgorithm is the go-cdc-chunkers name of the FastCDC variant used: the
// one that follows the FastCDC paper (gear hash, normalised chunking with
// two masks, cut-point skipping below the minimum).
const cdcAlgorithm = "fastcdc-v1.0.0"

// ChunkParams are the content-defined chunking sizes, in bytes. Both sides
// of a delta must cut with the same parameters.
type ChunkParams struct {
	Min int `json:"min"`
	Avg int `json:"avg"` // a power of two
	Max int `json:"max"`
}

// DefaultChunkParams cut chunks of 8 KiB on average, between 2 and 64 KiB:
// small enough that a scattered page write costs about two chunks on the
// wire, large enough that a 1 GiB directory's index stays under 4 MiB.
var DefaultChunkParams = ChunkParams{Min: 2 << 10, Avg: 8 << 10, Max: 64 << 10}

// maxChunkMax bounds ChunkParams.Max so a chunk always fits in one frame.
const maxChunkMax = 1 << 20

// Validate reports parameters FastCDC cannot use.
func (p ChunkParams) Validate() error {
	switch {
	case p.Avg < 256 || p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunk avg %d: must be a power of two of at least 256", p.Avg)
	case p.Min < 64 || p.Min >= p.Avg:
		return fmt.Errorf("chunk min %d: must be at least 64 and below avg %d", p.Min, p.Avg)
	case p.Max <= p.Avg || p.Max > maxChunkMax:
		return fmt.Errorf("chunk max %d: must be above avg %d and at most %d", p.Max, p.Avg, maxChunkMax)
	}
	return nil
}

// Chunk is one content-defined piece of a file.
type Chunk struct {
	Off int64
	Len int
	// Key is the chunk's XXH64 (see chunkKey). A key can collide; a
	// collision makes a patch copy the wrong bytes, which the whole-file
	// BLAKE3 digest check at the destination catches (ErrVerify), and the
	// file is then sent whole. It never yields a wrong replica.
	Key uint64
}

// Manifest is a file's chunk list with the size and mtime it describes.
type Manifest struct {
	Size    int64
	ModTime time.Time
	Chunks  []Chunk
}

// chunkKeyName names chunkKey's function on the wire: a source and a target
// agent must key chunks alike, and each checks that the other does.
// legacyKeyName is the function of earlier releases (the first 8 bytes of
// BLAKE3), which a target agent still keys with for a source that names
// none, so that sources and targets can be upgraded in either order.
const (
	chunkKeyName  = "xxh64"
	legacyKeyName = "blake3-64"
)

// keyFunc is the chunk key function a request names, and its name; false
// for a name this release does not know.
func keyFunc(name string) (func([]byte) uint64, string, bool) {
	switch name {
	case chunkKeyName:
		return chunkKey, chunkKeyName, true
	case "", legacyKeyName:
		return legacyChunkKey, legacyKeyName, true
	}
	return nil, "", false
}

// legacyChunkKey is the chunk key of earlier releases.
func legacyChunkKey(b []byte) uint64 {
	sum := blake3.Sum256(b)
	return binary.LittleEndian.Uint64(sum[:8])
}

// chunkKey returns the key of b: its XXH64 (the hash Prometheus' TSDB keys
// series with), over six times faster here than the first 8 bytes of its
// BLAKE3 (13.8 against 2.1 GB/s on 8 KiB chunks), which an incremental
// round used to pay for every byte of every changed file on both sides.
// A key only has to find candidates: the whole-file BLAKE3 digest decides
// whether a patch built from them is right, so a key that an adversary can
// make collide costs at worst a file sent whole, as a truncated BLAKE3 key
// (64 bits: collisions after 2^32 tries) already could.
func chunkKey(b []byte) uint64 {
	return xxhash.Sum64(b)
}

// chunkReadSize is how much a chunker reads from its source at a time.
// The chunker's own buffer is twice the largest chunk and it refills it
// after every cut, about as much as one average chunk per read: a system
// call (and, on the source side, a hand-off to the digest's goroutine) per
// 8 KiB, which cost a 512 MiB file more than half a second here, against
// a few milliseconds in reads of 1 MiB.
const chunkReadSize = 1 << 20

// newChunker returns a FastCDC chunker with parameters p over r, read
// through a buffer of readSize (chunkReadSize, or less for a throttled
// source: its limiter is charged a read at a time).
func newChunker(r io.Reader, p ChunkParams, readSize int) (*chunkers.Chunker, error) {
	c, err := chunkers.NewChunker(cdcAlgorithm, bufio.NewReaderSize(r, readSize), &chunkers.ChunkerOpts{MinSize: p.Min, NormalSize: p.Avg, MaxSize: p.Max})
	if err != nil {
		return nil, fmt.Errorf("chunker: %w", err)
	}
	return c, nil
}

// cutChunks reads r to its end and calls fn with each chunk's offset and
// bytes, which are valid only during the call.
func cutChunks(ctx context.Context, r io.Reader, p ChunkParams, fn func(off int64, b []byte) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	c, err := newChunker(r, p, chunkReadSize)
	if err != nil {
		return err
	}
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := c.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if len(b) > 0 {
			if ferr := fn(off, b); ferr != nil {
				return ferr
			}
			off += int64(len(b))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// manifestOf chunks r and returns the chunk list, keyed by key.
func manifestOf(ctx context.Context, r io.Reader, p ChunkParams, key func([]byte) uint64) ([]Chunk, error) {
	var out []Chunk
	err := cutChunks(ctx, r, p, func(off int64, b []byte) error {
		out = append(out, Chunk{Off: off, Len: len(b), Key: key(b)})
		return nil
	})
	return out, err
}
