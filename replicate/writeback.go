package replicate

import "os"

// writebackEvery is how many bytes of a file written in order go between
// two calls of startWriteback, so that a large file is on its way to the
// disk while it arrives and the fsync that ends its transfer waits for the
// last part (as a rule: unless the disk is slower than the transfer), not
// for all of it (RocksDB's bytes_per_sync, PostgreSQL's
// backend_flush_after).
const writebackEvery = 8 << 20

// writeback starts the writeback of a file written in order, every
// writebackEvery bytes.
type writeback struct {
	started int64 // writeback was started for the bytes before this offset
}

// wrote records that f now holds end bytes, and starts the writeback of
// those it was not started for once there are writebackEvery of them. It
// returns the range it started (n 0: none).
func (w *writeback) wrote(f *os.File, end int64) (off, n int64) {
	if end-w.started < writebackEvery {
		return 0, 0
	}
	off, n = w.started, end-w.started
	startWriteback(f, off, n)
	w.started = end
	return off, n
}

// appender writes to the end of f (opened with O_APPEND, end bytes long),
// starting writeback as it goes.
type appender struct {
	f   *os.File
	end int64
	wb  writeback
}

func (a *appender) Write(p []byte) (int, error) {
	n, err := a.f.Write(p)
	a.end += int64(n)
	a.wb.wrote(a.f, a.end)
	return n, err
}
