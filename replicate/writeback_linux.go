//go:build linux

package replicate

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f at off to
// the disk now, and does not wait for it. It is only a hint (errors are
// ignored: the fsync that makes the file durable reports any writeback
// failure), but it takes the wait out of that fsync: by the time a file is
// committed most of it is on the disk already, written while the rest was
// being copied, instead of all of it being written then.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
