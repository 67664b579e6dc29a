package traffic

import (
	"net"
	"syscall"
)

// stillOpen reports whether c is open with nothing to read: a peek that
// would block. End of file (the backend closed it), unread bytes or an
// error say it cannot carry a request.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN
		return true // never wait: the answer is now
	})
	return err == nil && open
}
