package replicate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"time"
)

// The body of a transfer to an agent is a sequence of frames, written here
// by hand because the encoding has to be streamed (a 1 GiB file is never
// held in memory), has to let the receiver check every piece before it
// writes it (so a corrupt or truncated transfer leaves only good bytes, and
// resumes after them), and has to say where a transfer ends. No library
// frames a patch of copy and data pieces that way. A frame is:
//
//	kind (1 byte) | body length (uint32 LE) | body | CRC-32C of all before (uint32 LE)
//
// Kinds and bodies:
//
//	'D' data: the bytes themselves
//	'C' copy: path length (uint16) | path | size | mtime (ns) | offset | length (int64 each)
//	'E' end:  permissions (uint32) | mtime (ns, int64) | check flags (1 byte) |
//	          BLAKE3-256 (32 bytes, if flag bit 0) | size (int64) and CRC-32C (uint32) (if flag bit 1)
//	'A' abort: the source's reason, as text
//
// A transfer is complete only when its 'E' frame arrived.
const (
	frameData = 'D'
	frameCopy = 'C'
	frameEnd  = 'E'
	// frameAbort ends a transfer the source cannot finish (its file could
	// not be read): the receiver drops what it got and answers, so the
	// source knows no temp file is left when its call returns.
	frameAbort = 'A'

	frameHeader  = 5
	frameTrailer = 4
	// maxFrameBody bounds what a receiver believes of a length field.
	maxFrameBody = maxPieceData
	maxFramePath = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadFrame marks bytes that are not a valid frame: the transfer was
// damaged on the way (or the peer is not an agent); sending again helps.
var errBadFrame = fmt.Errorf("damaged transfer frame: %w", ErrTransient)

// frame is one decoded frame.
type frame struct {
	kind byte
	data []byte // 'D'; valid until the next call of next
	// crc is the CRC-32C of a 'D' frame's data when summed is set (a body
	// of crcCombineMin bytes or more): the frame check's one pass computed
	// it, and derived the trailer's CRC from it. 0 unless summed.
	crc    uint32
	summed bool
	ref    Ref   // 'C'
	off    int64 // 'C'
	n      int64 // 'C'
	meta   FileMeta
}

// appendFrame appends a frame of kind with body to dst.
func appendFrame(dst []byte, kind byte, body ...[]byte) []byte {
	start := len(dst)
	size := 0
	for _, b := range body {
		size += len(b)
	}
	dst = append(dst, kind)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(size))
	for _, b := range body {
		dst = append(dst, b...)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
}

// sealFrame makes b a frame of kind in place: b holds frameHeader bytes of
// room, the body, then frameTrailer bytes of room. It returns b, the same
// bytes appendFrame would make of the body.
func sealFrame(b []byte, kind byte) []byte {
	size := putFrameHeader(b, kind)
	binary.LittleEndian.PutUint32(b[frameHeader+size:], crc32.Checksum(b[:frameHeader+size], crcTable))
	return b
}

// sealSummedFrame is sealFrame given bodyCRC, the CRC-32C of the body
// (worth it for a body of crcCombineMin bytes or more).
func sealSummedFrame(b []byte, kind byte, bodyCRC uint32) []byte {
	size := putFrameHeader(b, kind)
	binary.LittleEndian.PutUint32(b[frameHeader+size:], crcCombine(crc32.Checksum(b[:frameHeader], crcTable), bodyCRC, int64(size)))
	return b
}

// putFrameHeader writes the header of the frame b is room for (see
// sealFrame) and returns the body's size.
func putFrameHeader(b []byte, kind byte) int {
	size := len(b) - frameHeader - frameTrailer
	b[0] = kind
	binary.LittleEndian.PutUint32(b[1:], uint32(size))
	return size
}

func copyBody(ref Ref, off, n int64) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(ref.Path)))
	b = append(b, ref.Path...)
	b = binary.LittleEndian.AppendUint64(b, uint64(ref.Size))
	b = binary.LittleEndian.AppendUint64(b, uint64(ref.ModTime.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, uint64(off))
	return binary.LittleEndian.AppendUint64(b, uint64(n))
}

// End frame check flags: which whole-file checks follow.
const (
	endDigest   = 1 << 0 // FileMeta.Digest
	endChecksum = 1 << 1 // FileMeta.Checksum
)

func endBody(m FileMeta) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(m.Perm.Perm()))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.ModTime.UnixNano()))
	var flags byte
	if !m.Digest.IsZero() {
		flags |= endDigest
	}
	if m.Checksum != nil {
		flags |= endChecksum
	}
	b = append(b, flags)
	if flags&endDigest != 0 {
		b = append(b, m.Digest[:]...)
	}
	if flags&endChecksum != 0 {
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Checksum.Size))
		b = binary.LittleEndian.AppendUint32(b, m.Checksum.CRC)
	}
	return b
}

// frameReader decodes frames from a stream.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next frame. io.EOF means the stream ended cleanly
// between frames; a stream that ends inside a frame, or a frame that fails
// its CRC or does not parse, gives an error wrapping errBadFrame.
func (fr *frameReader) next() (frame, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return frame{}, io.EOF
		}
		return frame{}, fmt.Errorf("frame header: %w: %w", err, errBadFrame)
	}
	size := binary.LittleEndian.Uint32(hdr[1:])
	if size > maxFrameBody {
		return frame{}, fmt.Errorf("frame of %d bytes, over %d: %w", size, maxFrameBody, errBadFrame)
	}
	need := int(size) + frameTrailer
	if cap(fr.buf) < need {
		fr.buf = make([]byte, need)
	}
	fr.buf = fr.buf[:need]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return frame{}, fmt.Errorf("frame body cut short: %w: %w", err, errBadFrame)
	}
	body := fr.buf[:size]
	var crc, bodyCRC uint32
	summed := hdr[0] == frameData && size >= crcCombineMin
	if summed {
		bodyCRC = crc32.Checksum(body, crcTable)
		crc = crcCombine(crc32.Checksum(hdr[:], crcTable), bodyCRC, int64(size))
	} else {
		crc = crc32.Update(crc32.Checksum(hdr[:], crcTable), crcTable, body)
	}
	if want := binary.LittleEndian.Uint32(fr.buf[size:]); crc != want {
		return frame{}, fmt.Errorf("frame %q of %d bytes: CRC-32C %08x, sent %08x: %w", hdr[0], size, crc, want, errBadFrame)
	}
	f, err := parseFrame(hdr[0], body)
	f.crc, f.summed = bodyCRC, summed
	return f, err
}

// parseFrame decodes a frame's body once its CRC checked.
func parseFrame(kind byte, body []byte) (frame, error) {
	f := frame{kind: kind}
	switch kind {
	case frameData, frameAbort:
		f.data = body
		return f, nil
	case frameCopy:
		if len(body) < 2 {
			return f, fmt.Errorf("copy frame of %d bytes: %w", len(body), errBadFrame)
		}
		pl := int(binary.LittleEndian.Uint16(body))
		if pl > maxFramePath || len(body) != 2+pl+32 {
			return f, fmt.Errorf("copy frame: path of %d bytes in a body of %d: %w", pl, len(body), errBadFrame)
		}
		f.ref.Path = string(body[2 : 2+pl])
		rest := body[2+pl:]
		f.ref.Size = int64(binary.LittleEndian.Uint64(rest))
		f.ref.ModTime = time.Unix(0, int64(binary.LittleEndian.Uint64(rest[8:])))
		f.off = int64(binary.LittleEndian.Uint64(rest[16:]))
		f.n = int64(binary.LittleEndian.Uint64(rest[24:]))
		if f.ref.Size < 0 || f.off < 0 || f.n < 0 || f.off > f.ref.Size || f.n > f.ref.Size-f.off {
			return f, fmt.Errorf("copy frame: range %d+%d of a %d-byte file: %w", f.off, f.n, f.ref.Size, errBadFrame)
		}
		return f, nil
	case frameEnd:
		if len(body) < 13 {
			return f, fmt.Errorf("end frame of %d bytes: %w", len(body), errBadFrame)
		}
		perm := binary.LittleEndian.Uint32(body)
		if perm&^uint32(fs.ModePerm) != 0 {
			return f, fmt.Errorf("end frame: permissions %o: %w", perm, errBadFrame)
		}
		f.meta.Perm = fs.FileMode(perm)
		f.meta.ModTime = time.Unix(0, int64(binary.LittleEndian.Uint64(body[4:])))
		flags, rest := body[12], body[13:]
		want := 0
		if flags&endDigest != 0 {
			want += len(Digest{})
		}
		if flags&endChecksum != 0 {
			want += 12
		}
		if flags&^(endDigest|endChecksum) != 0 || len(rest) != want {
			return f, fmt.Errorf("end frame: check flags %#x with %d bytes: %w", flags, len(body), errBadFrame)
		}
		if flags&endDigest != 0 {
			copy(f.meta.Digest[:], rest)
			rest = rest[len(Digest{}):]
		}
		if flags&endChecksum != 0 {
			size := int64(binary.LittleEndian.Uint64(rest))
			if size < 0 {
				return f, fmt.Errorf("end frame: checksum of %d bytes: %w", size, errBadFrame)
			}
			f.meta.Checksum = &Checksum{Size: size, CRC: binary.LittleEndian.Uint32(rest[8:])}
		}
		return f, nil
	}
	return f, fmt.Errorf("unknown frame kind %q: %w", kind, errBadFrame)
}

// encodeManifest packs a chunk list: per chunk, its length (uint32 LE)
// and key (uint64 LE); offsets follow from the lengths.
func encodeManifest(chunks []Chunk) []byte {
	b := make([]byte, 0, 12*len(chunks))
	for _, c := range chunks {
		b = binary.LittleEndian.AppendUint32(b, uint32(c.Len))
		b = binary.LittleEndian.AppendUint64(b, c.Key)
	}
	return b
}

// decodeManifest unpacks encodeManifest's output, which must describe
// exactly size bytes in chunks of at most maxLen.
func decodeManifest(b []byte, size int64, maxLen int) ([]Chunk, error) {
	if len(b)%12 != 0 {
		return nil, fmt.Errorf("chunk list of %d bytes is not a whole number of 12-byte entries", len(b))
	}
	out := make([]Chunk, 0, len(b)/12)
	var off int64
	for i := 0; i < len(b); i += 12 {
		n := int(binary.LittleEndian.Uint32(b[i:]))
		if n <= 0 || n > maxLen {
			return nil, fmt.Errorf("chunk %d: length %d outside 1..%d", i/12, n, maxLen)
		}
		out = append(out, Chunk{Off: off, Len: n, Key: binary.LittleEndian.Uint64(b[i+4:])})
		off += int64(n)
		if off > size {
			return nil, fmt.Errorf("chunks cover more than the file's %d bytes", size)
		}
	}
	if off != size {
		return nil, fmt.Errorf("chunks cover %d bytes of a %d-byte file", off, size)
	}
	return out, nil
}

// encodeSpans packs spans for a block-sums request: offset and length,
// int64 LE each.
func encodeSpans(spans []Span) []byte {
	b := make([]byte, 0, 16*len(spans))
	for _, sp := range spans {
		b = binary.LittleEndian.AppendUint64(b, uint64(sp.Off))
		b = binary.LittleEndian.AppendUint64(b, uint64(sp.Len))
	}
	return b
}

// decodeSpans unpacks encodeSpans' output; the sink checks the spans
// against the file.
func decodeSpans(b []byte) ([]Span, error) {
	if len(b)%16 != 0 || len(b)/16 > maxBlockSpans {
		return nil, fmt.Errorf("span list of %d bytes: want at most %d 16-byte entries", len(b), maxBlockSpans)
	}
	out := make([]Span, len(b)/16)
	for i := range out {
		out[i] = Span{Off: int64(binary.LittleEndian.Uint64(b[16*i:])), Len: int64(binary.LittleEndian.Uint64(b[16*i+8:]))}
	}
	return out, nil
}
