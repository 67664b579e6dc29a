//go:build linux && !race

package traffic

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a plain TCP connection of the fast path with raw
// system calls, from inside its RawConn's callbacks: the poller still does
// the waiting (readiness, deadlines, close), but the read or write itself
// does not tell the scheduler it is in a system call.
//
// That is what net.Conn's Read and Write do, and under load it costs more
// than the call: the runtime's monitor (sysmon) hands the processor of a
// thread it finds in a system call on two of its ticks to another thread,
// which it has to wake, and then wakes every 20 µs instead of backing off to
// 10 ms. A socket write on a machine whose cores the proxy shares with its
// clients and backends is often that long, the thread having been
// descheduled in it; perf showed the proxy's threads in sysmon's nanosleep
// and the wake-ups it causes for about a twentieth of its CPU. A call on a
// non-blocking socket never waits, so it needs no hand-off: the poller does
// the waiting, without holding a processor.
//
// Not safe for concurrent reads, nor for concurrent writes (one of each at
// a time is): the state of the call in progress is kept here so that
// nothing is allocated per call.
//
// A raw call cannot be preempted: a large write (a request body of up to
// Config.MaxRetryBody into large socket buffers) holds its processor, and
// delays a stop of the world, for as long as the kernel takes to copy it,
// tens of microseconds. It never waits: the sockets are non-blocking.
//
// Not built with the race detector (see rawio_other.go), which learns from
// syscall.Read and Write, not from raw calls, that a write to a socket
// happens before the read of it, and would report races that are not.
type rawIO struct {
	rc   syscall.RawConn
	conn net.Conn // for the addresses in errors

	rbuf []byte
	rn   int
	rerr error
	read func(uintptr) bool

	// A Write is written as buffers of one: one and single hold it.
	one    [1][]byte
	single net.Buffers
	wbufs  *net.Buffers
	wop    string // "write" or "writev", for errors
	wn     int64
	werr   error
	write  func(uintptr) bool
}

// newRawIO returns the raw reader and writer of c, or nil if c is not a
// plain TCP connection.
func newRawIO(c net.Conn) *rawIO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{rc: rc, conn: c}
	r.read, r.write = r.readOnce, r.writeSome
	return r
}

// Read reads as net.Conn's Read does: io.EOF at the end of the stream, the
// poller's errors (a deadline passed, the connection closed) as they come.
func (r *rawIO) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.rbuf, r.rn, r.rerr = b, 0, nil
	err := r.rc.Read(r.read)
	n, rerr := r.rn, r.rerr
	r.rbuf, r.rerr = nil, nil
	switch {
	case err != nil:
		return 0, renameOp(err, "read")
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawIO) readOnce(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch errno {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the poller waits for readiness, and calls again
		}
		r.rerr = r.opError("read", errno)
		return true
	}
}

// Write writes all of b, as net.Conn's Write does.
func (r *rawIO) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.one[0] = b
	r.single = r.one[:]
	n, err := r.writeBuffers(&r.single, "write")
	r.one[0], r.single = nil, nil
	return int(n), err
}

// rawIOVecs is how many buffers one writev takes: a request's head and body.
const rawIOVecs = 2

// WriteBuffers writes the buffers in bufs, as net.Buffers' WriteTo does on
// a TCP connection (a writev), consuming them.
func (r *rawIO) WriteBuffers(bufs *net.Buffers) (int64, error) {
	return r.writeBuffers(bufs, "writev")
}

func (r *rawIO) writeBuffers(bufs *net.Buffers, op string) (int64, error) {
	r.wbufs, r.wop, r.wn, r.werr = bufs, op, 0, nil
	err := r.rc.Write(r.write)
	n, werr := r.wn, r.werr
	r.wbufs, r.werr = nil, nil
	if err == nil {
		return n, werr
	}
	return n, renameOp(err, op)
}

// writeSome is writeBuffers' callback: it writes until wbufs are consumed
// (a write(2) for one buffer, a writev(2) for more) or the socket is full.
func (r *rawIO) writeSome(fd uintptr) bool {
	for {
		var iov [rawIOVecs]syscall.Iovec
		k := 0
		for _, b := range *r.wbufs {
			if k == len(iov) {
				break
			}
			if len(b) > 0 {
				iov[k].Base = &b[0]
				iov[k].SetLen(len(b))
				k++
			}
		}
		var n uintptr
		var errno syscall.Errno
		switch k {
		case 0:
			return true
		case 1:
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
		default:
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		}
		switch errno {
		case 0:
			if n == 0 {
				r.werr = io.ErrUnexpectedEOF // as internal/poll says of a write of nothing
				return true
			}
			r.wn += int64(n)
			consume(r.wbufs, int(n))
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.werr = r.opError(r.wop, errno)
		return true
	}
}

// consume drops the first n bytes of bufs.
func consume(bufs *net.Buffers, n int) {
	for len(*bufs) > 0 && n >= len((*bufs)[0]) {
		n -= len((*bufs)[0])
		*bufs = (*bufs)[1:]
	}
	if len(*bufs) > 0 {
		(*bufs)[0] = (*bufs)[0][n:]
	}
}

// renameOp names the operation of a poller's error (a deadline passed, the
// connection closed) as net.Conn's calls name it, "read" rather than
// RawConn's "raw-read": net/http, once a connection is handed to it, tells
// a common end of a connection by that name.
func renameOp(err error, op string) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
	}
	return err
}

// opError wraps errno as net.Conn's Read and Write wrap theirs, so that
// what the proxy tells from them (a reset, a broken pipe, a net.Error) it
// tells the same way.
func (r *rawIO) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(),
		Err: os.NewSyscallError(op, errno)}
}
