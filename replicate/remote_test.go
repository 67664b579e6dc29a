package replicate

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestSealFrameMatchesAppendFrame(t *testing.T) {
	for _, n := range []int{0, 1, 4096, copyChunk} {
		body := pattern(byte(n), n)
		b := make([]byte, frameHeader+n+frameTrailer)
		copy(b[frameHeader:], body)
		if got, want := sealFrame(b, frameData), appendFrame(nil, frameData, body); !bytes.Equal(got, want) {
			t.Errorf("%d-byte body: sealFrame differs from appendFrame", n)
		}
	}
}

func TestStreamBody(t *testing.T) {
	payload := []byte("frames")
	errSource := errors.New("source unreadable")
	for _, tc := range []struct {
		name      string
		write     func(io.Writer) error
		useRead   bool // read the body as a transport without WriteTo does
		want      string
		wantLocal error
	}{
		{name: "WriteTo", write: func(w io.Writer) error { _, err := w.Write(payload); return err }, want: "frames"},
		{name: "Read", write: func(w io.Writer) error { _, err := w.Write(payload); return err }, useRead: true, want: "frames"},
		{
			name:      "a source failure ends the body with an abort frame",
			write:     func(w io.Writer) error { w.Write(payload); return errSource },
			want:      "frames" + string(appendFrame(nil, frameAbort, []byte(errSource.Error()))),
			wantLocal: errSource,
		},
		{
			name:      "the same, read",
			write:     func(w io.Writer) error { w.Write(payload); return errSource },
			useRead:   true,
			want:      "frames" + string(appendFrame(nil, frameAbort, []byte(errSource.Error()))),
			wantLocal: errSource,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newStreamBody(tc.write)
			var got bytes.Buffer
			var err error
			if tc.useRead {
				_, err = io.Copy(&got, struct{ io.Reader }{b}) // hide WriteTo
			} else {
				_, err = b.WriteTo(&got)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("body %q, want %q", got.String(), tc.want)
			}
			if local := b.wait(); !errors.Is(local, tc.wantLocal) {
				t.Errorf("wait = %v, want %v", local, tc.wantLocal)
			}
			if _, err := b.WriteTo(io.Discard); !errors.Is(err, errBodyUsed) {
				t.Errorf("second WriteTo = %v, want errBodyUsed", err)
			}
		})
	}
}

func TestStreamBodyNeverSent(t *testing.T) {
	called := false
	b := newStreamBody(func(io.Writer) error { called = true; return nil })
	if err := b.wait(); err != nil {
		t.Fatalf("wait = %v", err)
	}
	if _, err := b.Read(make([]byte, 8)); !errors.Is(err, errBodyUsed) {
		t.Errorf("Read after wait = %v, want errBodyUsed", err)
	}
	if called {
		t.Error("the body was written after the request ended")
	}
}
