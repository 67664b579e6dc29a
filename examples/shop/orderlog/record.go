package orderlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Limits of a record. They bound what a decoder will believe of a length
// field, so a corrupt header cannot make a reader wait for gigabytes.
const (
	MaxIDLen    = 128
	MaxValueLen = 64 << 10
	headerLen   = 8
	minPayload  = 1 + 1 // id length byte and a one-byte id
	maxPayload  = 1 + MaxIDLen + MaxValueLen
	// MaxRecordLen is the largest encoded record, header included.
	MaxRecordLen = headerLen + maxPayload
)

// ErrIncomplete means the bytes end inside a record: more may be coming (a
// follower waits), or the writer died mid-record (a torn tail).
var ErrIncomplete = errors.New("incomplete record")

// CorruptError reports bytes that can never become a valid record, however
// many bytes follow: a length out of range, a CRC mismatch, a malformed id.
type CorruptError struct {
	Offset int64 // where the bad record starts, relative to what was decoded
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt record at offset %d: %s", e.Offset, e.Reason)
}

// Record is one decoded entry of the log.
type Record struct {
	ID string
	// Value aliases the decoded buffer; copy it to keep it.
	Value []byte
	// Size is the encoded length, header included.
	Size int
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ValidateID reports whether id is 1-128 characters of [A-Za-z0-9_.-],
// other than "." and "..", which a URL path cannot carry as a segment.
func ValidateID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("id must be 1-%d characters, got %d", MaxIDLen, len(id))
	}
	if id == "." || id == ".." {
		return fmt.Errorf("id %q is a path segment, not an id; use another", id)
	}
	for i := range len(id) {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("id %q: character %q at %d is not one of [A-Za-z0-9_.-]", id, c, i)
		}
	}
	return nil
}

// AppendRecord appends the encoding of (id, value) to dst.
func AppendRecord(dst []byte, id string, value []byte) ([]byte, error) {
	if err := ValidateID(id); err != nil {
		return dst, err
	}
	if len(value) > MaxValueLen {
		return dst, fmt.Errorf("value of %d bytes exceeds the limit of %d", len(value), MaxValueLen)
	}
	n := 1 + len(id) + len(value)
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, 0, 0, 0, 0) // CRC, filled below
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start+4:], checksum(dst[start:start+4], dst[start+headerLen:]))
	return dst, nil
}

func checksum(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// DecodeRecord decodes the record at the start of b and returns it with the
// number of bytes it takes. The error is ErrIncomplete when b ends inside
// the record, or a *CorruptError (Offset 0).
func DecodeRecord(b []byte) (Record, int, error) {
	if len(b) < headerLen {
		return Record{}, 0, ErrIncomplete
	}
	n := binary.LittleEndian.Uint32(b)
	if n < minPayload || n > maxPayload {
		return Record{}, 0, &CorruptError{Reason: fmt.Sprintf("payload length %d outside %d..%d", n, minPayload, maxPayload)}
	}
	size := headerLen + int(n)
	if len(b) < size {
		return Record{}, 0, ErrIncomplete
	}
	want := binary.LittleEndian.Uint32(b[4:])
	payload := b[headerLen:size]
	if got := checksum(b[:4], payload); got != want {
		return Record{}, 0, &CorruptError{Reason: fmt.Sprintf("CRC32C %08x, header says %08x", got, want)}
	}
	idLen := int(payload[0])
	if idLen+1 > len(payload) {
		return Record{}, 0, &CorruptError{Reason: fmt.Sprintf("id length %d exceeds payload of %d bytes", idLen, len(payload))}
	}
	id := string(payload[1 : 1+idLen])
	if err := ValidateID(id); err != nil {
		return Record{}, 0, &CorruptError{Reason: err.Error()}
	}
	return Record{ID: id, Value: payload[1+idLen:], Size: size}, size, nil
}

// scanChunk is how much Scan reads at a time; it exceeds MaxRecordLen so one
// read after compaction always completes a record that fits in the file.
const scanChunk = 256 << 10

// Scan decodes the records in r between off and size, calling fn with each
// good record and the offset just past it (rec.Value is valid only during
// the call). It returns the offset just past the last good record. When the
// bytes after it are an incomplete record (or nothing), err is nil; when
// they are corrupt, err is a *CorruptError whose Offset is that end; any
// other error is a read failure.
//
// A replicator can use Scan to copy only whole records.
func Scan(r io.ReaderAt, off, size int64, fn func(rec Record, end int64)) (int64, error) {
	pos, next := off, off
	var buf []byte
	for {
		for {
			rec, n, err := DecodeRecord(buf)
			if errors.Is(err, ErrIncomplete) {
				break
			}
			if ce, ok := errors.AsType[*CorruptError](err); ok {
				return pos, &CorruptError{Offset: pos, Reason: ce.Reason}
			}
			pos += int64(n)
			fn(rec, pos)
			buf = buf[n:]
		}
		if next >= size {
			return pos, nil
		}
		want := min(int64(scanChunk), size-next)
		grown := make([]byte, len(buf), len(buf)+int(want))
		copy(grown, buf)
		got, err := r.ReadAt(grown[len(buf):len(buf)+int(want)], next)
		buf = grown[:len(buf)+got]
		next += int64(got)
		if err != nil && !errors.Is(err, io.EOF) {
			return pos, fmt.Errorf("read at %d: %w", next, err)
		}
		if got == 0 {
			// The file is shorter than size: it shrank while we read.
			return pos, nil
		}
	}
}
