package replicate

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"testing"
	"time"
)

func sampleFrames() []byte {
	var b []byte
	b = appendFrame(b, frameData, []byte("hello"))
	b = appendFrame(b, frameCopy, copyBody(Ref{Path: "db/main.db", Size: 100, ModTime: time.Unix(5, 6)}, 10, 20))
	b = appendFrame(b, frameEnd, endBody(FileMeta{Perm: 0o640, ModTime: time.Unix(7, 8), Digest: Digest{1, 2, 3}}))
	return b
}

func TestEndFrameChecks(t *testing.T) {
	for _, m := range []FileMeta{
		{Perm: 0o600, ModTime: time.Unix(1, 2)},
		{Perm: 0o640, ModTime: time.Unix(7, 8), Digest: Digest{1, 2, 3}},
		{Perm: 0o644, ModTime: time.Unix(9, 10), Checksum: &Checksum{Size: 1 << 40, CRC: 0xdeadbeef}},
		{Perm: 0o644, ModTime: time.Unix(9, 10), Checksum: &Checksum{}},
		{Perm: 0o755, ModTime: time.Unix(11, 12), Digest: Digest{31: 9}, Checksum: &Checksum{Size: 5, CRC: 1}},
	} {
		f, err := newFrameReader(bytes.NewReader(appendFrame(nil, frameEnd, endBody(m)))).next()
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		got := f.meta
		if got.Perm != m.Perm || !got.ModTime.Equal(m.ModTime) || got.Digest != m.Digest ||
			(got.Checksum == nil) != (m.Checksum == nil) || (m.Checksum != nil && *got.Checksum != *m.Checksum) {
			t.Errorf("end frame of %+v decoded as %+v", m, got)
		}
	}
}

func TestFramesRoundTrip(t *testing.T) {
	fr := newFrameReader(bytes.NewReader(sampleFrames()))
	want := []frame{
		{kind: frameData, data: []byte("hello")},
		{kind: frameCopy, ref: Ref{Path: "db/main.db", Size: 100, ModTime: time.Unix(5, 6)}, off: 10, n: 20},
		{kind: frameEnd, meta: FileMeta{Perm: 0o640, ModTime: time.Unix(7, 8), Digest: Digest{1, 2, 3}}},
	}
	for i, w := range want {
		f, err := fr.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.kind != w.kind || !bytes.Equal(f.data, w.data) || f.ref.Path != w.ref.Path || f.ref.Size != w.ref.Size ||
			!f.ref.ModTime.Equal(w.ref.ModTime) || f.off != w.off || f.n != w.n || f.meta.Perm != w.meta.Perm ||
			!f.meta.ModTime.Equal(w.meta.ModTime) || f.meta.Digest != w.meta.Digest {
			t.Errorf("frame %d = %+v, want %+v", i, f, w)
		}
	}
	if _, err := fr.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFramesDetectDamage(t *testing.T) {
	good := sampleFrames()
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped data byte", func(b []byte) []byte { b[7] ^= 1; return b }},
		{"flipped length", func(b []byte) []byte { b[1] ^= 1; return b }},
		{"cut in a frame", func(b []byte) []byte { return b[:len(b)-3] }},
		{"huge length", func(b []byte) []byte { b[4] = 0xff; return b }},
		{"unknown kind", func(b []byte) []byte { return appendFrame(nil, 'Z', []byte("x")) }},
		{"short copy", func(b []byte) []byte { return appendFrame(nil, frameCopy, []byte{9}) }},
		{"copy out of range", func([]byte) []byte {
			return appendFrame(nil, frameCopy, copyBody(Ref{Path: "a", Size: 10}, 5, 6))
		}},
		{"end with unknown check flags", func([]byte) []byte {
			body := endBody(FileMeta{})
			body[12] = 4
			return appendFrame(nil, frameEnd, body)
		}},
		{"end with a short checksum", func([]byte) []byte {
			body := endBody(FileMeta{Checksum: &Checksum{Size: 3, CRC: 4}})
			return appendFrame(nil, frameEnd, body[:len(body)-1])
		}},
		{"end with a negative checksum size", func([]byte) []byte {
			return appendFrame(nil, frameEnd, endBody(FileMeta{Checksum: &Checksum{Size: -1}}))
		}},
		{"end with bad perm", func([]byte) []byte {
			body := endBody(FileMeta{})
			binary.LittleEndian.PutUint32(body, 0o7777)
			return appendFrame(nil, frameEnd, body)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tc.damage(bytes.Clone(good))))
			for {
				_, err := fr.next()
				if errors.Is(err, io.EOF) {
					t.Fatal("damage went unnoticed")
				}
				if err != nil {
					if !errors.Is(err, ErrTransient) {
						t.Errorf("err = %v, want it to wrap ErrTransient", err)
					}
					return
				}
			}
		})
	}
}

// FuzzFrames feeds arbitrary bytes to the frame decoder: it must never
// panic, never return a frame that re-encodes differently, and never hand
// out a copy range outside its file.
// TestFrameSummed checks which frames come with their data's CRC (derived,
// not computed twice): data frames of crcCombineMin bytes or more.
func TestFrameSummed(t *testing.T) {
	for _, tc := range []struct {
		kind   byte
		size   int
		summed bool
	}{
		{frameData, 0, false},
		{frameData, crcCombineMin - 1, false},
		{frameData, crcCombineMin, true},
		{frameData, copyChunk, true},
		{frameAbort, crcCombineMin, false},
	} {
		body := pattern(5, tc.size)
		fm, err := newFrameReader(bytes.NewReader(appendFrame(nil, tc.kind, body))).next()
		if err != nil {
			t.Fatalf("frame %q of %d bytes: %v", tc.kind, tc.size, err)
		}
		if fm.summed != tc.summed {
			t.Errorf("frame %q of %d bytes: summed %v, want %v", tc.kind, tc.size, fm.summed, tc.summed)
		}
		if fm.summed && fm.crc != crc32.Checksum(body, crcTable) {
			t.Errorf("frame %q of %d bytes: CRC %08x, its data's %08x", tc.kind, tc.size, fm.crc, crc32.Checksum(body, crcTable))
		}
	}
}

func FuzzFrames(f *testing.F) {
	f.Add(sampleFrames())
	f.Add(appendFrame(nil, frameAbort, []byte("cannot read")))
	f.Add(appendFrame(nil, frameEnd, endBody(FileMeta{Perm: 0o644, ModTime: time.Unix(3, 4), Checksum: &Checksum{Size: 10, CRC: 11}})))
	f.Add([]byte{frameData, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b))
		for range 64 {
			fm, err := fr.next()
			if err != nil {
				return
			}
			var body []byte
			switch fm.kind {
			case frameData, frameAbort:
				body = fm.data
				if fm.summed != (fm.kind == frameData && len(fm.data) >= crcCombineMin) {
					t.Fatalf("frame %q of %d bytes: summed %v", fm.kind, len(fm.data), fm.summed)
				}
				if fm.summed && fm.crc != crc32.Checksum(fm.data, crcTable) {
					t.Fatalf("data frame's CRC %08x, its data's %08x", fm.crc, crc32.Checksum(fm.data, crcTable))
				}
			case frameCopy:
				if fm.off < 0 || fm.n < 0 || fm.off+fm.n > fm.ref.Size {
					t.Fatalf("copy range %d+%d of %d accepted", fm.off, fm.n, fm.ref.Size)
				}
				body = copyBody(fm.ref, fm.off, fm.n)
			case frameEnd:
				body = endBody(fm.meta)
			}
			again, err := newFrameReader(bytes.NewReader(appendFrame(nil, fm.kind, body))).next()
			if err != nil || again.kind != fm.kind {
				t.Fatalf("re-encoded frame %q does not decode: %v", fm.kind, err)
			}
		}
	})
}

// FuzzManifest checks the chunk-list decoder against arbitrary bytes and
// sizes: an accepted list covers the file exactly, in order.
func FuzzManifest(f *testing.F) {
	f.Add(encodeManifest([]Chunk{{Len: 3000, Key: 1}, {Len: 5000, Key: 2}}), int64(8000))
	f.Add([]byte{1, 2, 3}, int64(3))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		chunks, err := decodeManifest(b, size, DefaultChunkParams.Max)
		if err != nil {
			return
		}
		var off int64
		for _, c := range chunks {
			if c.Off != off || c.Len <= 0 || c.Len > DefaultChunkParams.Max {
				t.Fatalf("chunk %+v at %d", c, off)
			}
			off += int64(c.Len)
		}
		if off != size {
			t.Fatalf("chunks cover %d of %d", off, size)
		}
	})
}

// FuzzSpans checks the span decoder and the sink's span check: accepted
// spans are whole blocks inside the file.
func FuzzSpans(f *testing.F) {
	f.Add(encodeSpans([]Span{{Off: 512, Len: 1024}}), int64(4096))
	f.Add(encodeSpans([]Span{{Off: -512, Len: 1024}}), int64(4096))
	f.Add([]byte{1, 2, 3}, int64(10))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		spans, err := decodeSpans(b)
		if err != nil || checkSpans(spans, 512, size) != nil {
			return
		}
		for _, sp := range spans {
			if sp.Off < 0 || sp.Len <= 0 || sp.Off+sp.Len > size || sp.Off%512 != 0 || sp.Len%512 != 0 {
				t.Fatalf("accepted span %+v of a %d-byte file", sp, size)
			}
		}
	})
}

// FuzzWireEntry checks the listing decoder: an accepted entry has a safe
// path and sane fields.
func FuzzWireEntry(f *testing.F) {
	f.Add([]byte(`{"p":"db/main.db","k":1,"s":10,"m":5,"perm":420}`))
	f.Add([]byte(`{"p":"../etc/passwd","k":1}`))
	f.Add([]byte(`{"p":"a","k":9,"s":-1,"perm":65535}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var w wireEntry
		if json.Unmarshal(b, &w) != nil {
			return
		}
		e, err := w.entry()
		if err != nil {
			return
		}
		if checkPath(e.Path) != nil || e.Size < 0 || e.Kind < KindFile || e.Kind > KindOther || e.Perm&^0o777 != 0 {
			t.Fatalf("accepted %+v", e)
		}
	})
}
