//go:build linux && !race

package traffic

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

func mustRawIO(t *testing.T, c net.Conn) *rawIO {
	t.Helper()
	r := newRawIO(c)
	if r == nil {
		t.Fatal("newRawIO of a TCP connection = nil")
	}
	return r
}

// TestRawIOCopies: what Write and WriteBuffers send, Read receives whole and
// in order, through socket buffers smaller than the data (so that both
// sides wait for the poller), with the reader's and the
// writer's calls at once on each end.
func TestRawIOCopies(t *testing.T) {
	a, b := connPair(t, false)
	ra, rb := mustRawIO(t, a), mustRawIO(t, b)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	// a sends data, the first half by Write and the rest by WriteBuffers
	// in two, while b sends it back the same way; each end reads what the
	// other sent.
	send := func(w *rawIO) error {
		half := len(data) / 2
		if n, err := w.Write(data[:half]); err != nil || n != half {
			return errors.Join(err, errors.New("short write"))
		}
		bufs := net.Buffers{data[half : half+half/3], data[half+half/3:]}
		n, err := w.WriteBuffers(&bufs)
		if err != nil || n != int64(len(data)-half) || len(bufs) != 0 {
			return errors.Join(err, errors.New("short writev"))
		}
		return nil
	}
	recv := func(r *rawIO) ([]byte, error) {
		var got bytes.Buffer
		buf := make([]byte, 3000) // not a divisor of anything above
		for got.Len() < len(data) {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				return got.Bytes(), err
			}
		}
		return got.Bytes(), nil
	}
	errs := make(chan error, 2)
	go func() { errs <- send(ra) }()
	go func() { errs <- send(rb) }()
	for _, r := range []*rawIO{ra, rb} {
		got, err := recv(r)
		if err != nil {
			t.Fatalf("read %d bytes, then %v", len(got), err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes that differ from the %d sent", len(got), len(data))
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRawIOEnds: the ends of a connection are told as net.Conn tells them:
// the peer's close is io.EOF, its reset a reset (isConnGone, and a fault of
// the backend for dispatch), a passed deadline os.ErrDeadlineExceeded, a
// local close net.ErrClosed, and a write to a reset connection fails.
func TestRawIOEnds(t *testing.T) {
	t.Run("eof", func(t *testing.T) {
		a, b := connPair(t, false)
		ra := mustRawIO(t, a)
		if _, err := b.Write([]byte("last")); err != nil {
			t.Fatal(err)
		}
		b.Close()
		got, err := io.ReadAll(ra)
		if err != nil || string(got) != "last" {
			t.Fatalf("ReadAll = %q, %v; want %q and the end of file", got, err, "last")
		}
		if n, err := ra.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("Read after the end = %d, %v; want io.EOF", n, err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		a, b := connPair(t, false)
		ra := mustRawIO(t, a)
		_ = b.SetLinger(0)
		b.Close() // an RST
		_, err := ra.Read(make([]byte, 10))
		if !isConnGone(err) || !backendFault(err) {
			t.Fatalf("Read of a reset connection = %v; want a reset (gone, a backend fault)", err)
		}
		var werr error
		for range 100 { // the first write after a reset may still succeed
			if _, werr = ra.Write([]byte("x")); werr != nil {
				break
			}
		}
		if !isConnGone(werr) {
			t.Fatalf("Write to a reset connection = %v; want a reset or a broken pipe", werr)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		a, _ := connPair(t, false)
		ra := mustRawIO(t, a)
		_ = a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		start := time.Now()
		_, err := ra.Read(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past the deadline = %v; want os.ErrDeadlineExceeded", err)
		}
		if d := time.Since(start); d < 40*time.Millisecond {
			t.Errorf("Read returned after %v, before its deadline", d)
		}
		if op := opOf(err); op != "read" {
			t.Errorf("the error's operation is %q, want %q as net.Conn's Read says (net/http reads it)", op, "read")
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		a, _ := connPair(t, true) // nobody reads b
		ra := mustRawIO(t, a)
		_ = a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := ra.Write(make([]byte, 8<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write to a peer that reads nothing = %d, %v; want os.ErrDeadlineExceeded", n, err)
		}
		if n <= 0 || n >= 8<<20 {
			t.Errorf("Write reported %d bytes written; want what the buffers took, more than 0 and less than all", n)
		}
		if op := opOf(err); op != "write" {
			t.Errorf("the error's operation is %q, want %q", op, "write")
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		a, _ := connPair(t, false)
		ra := mustRawIO(t, a)
		done := make(chan error, 1)
		go func() {
			_, err := ra.Read(make([]byte, 10))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		a.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read of a connection closed under it = %v; want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read did not return when its connection was closed")
		}
	})
}

// opOf is the operation a *net.OpError in err names.
func opOf(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op
	}
	return ""
}

// TestRawIOAllocates: a read, a write and a writev allocate nothing.
func TestRawIOAllocates(t *testing.T) {
	a, b := connPair(t, false)
	ra, rb := mustRawIO(t, a), mustRawIO(t, b)
	msg, buf := []byte("ping"), make([]byte, 64)
	head, body := []byte("he"), []byte("ad")
	var store [2][]byte
	var bufs net.Buffers
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := ra.Write(msg); err != nil {
			t.Fatal(err)
		}
		bufs = append(net.Buffers(store[:0]), head, body)
		if _, err := ra.WriteBuffers(&bufs); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 8; {
			n, err := rb.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs > 0 {
		t.Errorf("a write, a writev and their reads allocate %.1f times; want none", allocs)
	}
}
