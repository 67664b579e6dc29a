package orderlog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustRecord(t testing.TB, id, value string) []byte {
	t.Helper()
	b, err := AppendRecord(nil, id, []byte(value))
	if err != nil {
		t.Fatalf("AppendRecord(%q): %v", id, err)
	}
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	cases := []struct{ id, value string }{
		{"a", ""},
		{"order-1", "hello"},
		{strings.Repeat("x", MaxIDLen), strings.Repeat("v", MaxValueLen)},
		{"A.b_c-9", "\x00\xff binary"},
	}
	for _, c := range cases {
		b := mustRecord(t, c.id, c.value)
		rec, n, err := DecodeRecord(append(b, "trailing"...))
		if err != nil {
			t.Fatalf("DecodeRecord(%q): %v", c.id, err)
		}
		if n != len(b) || rec.Size != len(b) || rec.ID != c.id || string(rec.Value) != c.value {
			t.Errorf("DecodeRecord(%q) = id %q, %d value bytes, n %d; want %d bytes", c.id, rec.ID, len(rec.Value), n, len(b))
		}
	}
}

func TestAppendRecordRejects(t *testing.T) {
	cases := []struct {
		name, id string
		value    int
	}{
		{"empty id", "", 1},
		{"long id", strings.Repeat("x", MaxIDLen+1), 1},
		{"slash in id", "a/b", 1},
		{"space in id", "a b", 1},
		{"dot-dot id", "..", 1},
		{"value too large", "a", MaxValueLen + 1},
	}
	for _, c := range cases {
		if _, err := AppendRecord(nil, c.id, make([]byte, c.value)); err == nil {
			t.Errorf("%s: AppendRecord accepted it", c.name)
		}
	}
}

func TestDecodeRecordIncompleteAtEveryCut(t *testing.T) {
	b := mustRecord(t, "order-7", "some value")
	for cut := range len(b) {
		if _, _, err := DecodeRecord(b[:cut]); !errors.Is(err, ErrIncomplete) {
			t.Errorf("cut at %d of %d: err = %v, want ErrIncomplete", cut, len(b), err)
		}
	}
}

func TestDecodeRecordCorrupt(t *testing.T) {
	good := mustRecord(t, "order-7", "some value")
	cases := []struct {
		name   string
		mutate func(b []byte)
		reason string
	}{
		{"flipped value byte", func(b []byte) { b[len(b)-1] ^= 0x01 }, "CRC32C"},
		{"flipped crc", func(b []byte) { b[5] ^= 0x80 }, "CRC32C"},
		{"length zero", func(b []byte) { copy(b, []byte{0, 0, 0, 0}) }, "payload length 0"},
		{"length huge", func(b []byte) { copy(b, []byte{0xff, 0xff, 0xff, 0x7f}) }, "payload length"},
	}
	for _, c := range cases {
		b := bytes.Clone(good)
		c.mutate(b)
		_, _, err := DecodeRecord(b)
		ce, ok := errors.AsType[*CorruptError](err)
		if !ok || !strings.Contains(ce.Reason, c.reason) {
			t.Errorf("%s: err = %v, want a CorruptError mentioning %q", c.name, err, c.reason)
		}
	}
}

func TestScanStopsAtCorruptRecord(t *testing.T) {
	var log []byte
	log = append(log, mustRecord(t, "a", "1")...)
	bad := mustRecord(t, "b", "2")
	bad[len(bad)-1] ^= 0xff
	goodEnd := int64(len(log))
	log = append(log, bad...)
	log = append(log, mustRecord(t, "c", "3")...)
	var ids []string
	end, err := Scan(bytes.NewReader(log), 0, int64(len(log)), func(rec Record, _ int64) { ids = append(ids, rec.ID) })
	ce, ok := errors.AsType[*CorruptError](err)
	if !ok || ce.Offset != goodEnd || end != goodEnd {
		t.Fatalf("Scan = end %d, err %v; want end %d and a CorruptError at it", end, err, goodEnd)
	}
	if len(ids) != 1 || ids[0] != "a" {
		t.Errorf("Scan applied %v, want [a]", ids)
	}
}

func TestScanAcrossChunks(t *testing.T) {
	// Records larger than a quarter chunk make some straddle chunk borders.
	var log []byte
	value := strings.Repeat("v", MaxValueLen)
	const n = 20
	for i := range n {
		log = append(log, mustRecord(t, "k"+strings.Repeat("x", i), value)...)
	}
	log = append(log, mustRecord(t, "torn", "tail")[:5]...)
	count := 0
	end, err := Scan(bytes.NewReader(log), 0, int64(len(log)), func(rec Record, _ int64) {
		if string(rec.Value) != value {
			t.Fatalf("record %q has a wrong value", rec.ID)
		}
		count++
	})
	if err != nil || count != n || end != int64(len(log)-5) {
		t.Fatalf("Scan = %d records, end %d, err %v; want %d records, end %d", count, end, err, n, len(log)-5)
	}
}

// FuzzRecord feeds arbitrary bytes to the decoder: it must not panic, a
// record it accepts must re-encode to the same bytes, and Scan must agree.
func FuzzRecord(f *testing.F) {
	f.Add(mustRecord(f, "order-1", "value"))
	f.Add(mustRecord(f, "a", ""))
	f.Add(append(mustRecord(f, "x", "1"), mustRecord(f, "y", "2")[:9]...))
	f.Add([]byte{3, 0, 0, 0, 1, 2, 3, 4, 1, 'a', 'b'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := DecodeRecord(b)
		if err == nil {
			again, aerr := AppendRecord(nil, rec.ID, rec.Value)
			if aerr != nil || !bytes.Equal(again, b[:n]) {
				t.Fatalf("accepted record does not re-encode to itself: %v", aerr)
			}
		} else if _, ok := errors.AsType[*CorruptError](err); !ok && !errors.Is(err, ErrIncomplete) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		end, serr := Scan(bytes.NewReader(b), 0, int64(len(b)), func(Record, int64) {})
		if end < 0 || end > int64(len(b)) {
			t.Fatalf("Scan end %d outside 0..%d", end, len(b))
		}
		if err == nil && end < int64(n) {
			t.Fatalf("Scan stopped at %d before the first good record's end %d (err %v)", end, n, serr)
		}
	})
}
