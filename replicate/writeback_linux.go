package replicate

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f at off to
// disk, without waiting for them to be written (submitting the writes may
// block, for as long as the disk's queue is full: the receiver then goes at
// the disk's pace). Its error is of no use: a write that fails stays
// recorded on the file, and the fsync that ends the transfer reports it.
// With SYNC_FILE_RANGE_WAIT_* added, the call would consume that error and
// it would have to be checked here.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
