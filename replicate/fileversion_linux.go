package replicate

import (
	"io/fs"
	"syscall"
)

// inodeChange returns the file's inode number and change time (which every
// write, chmod and rename moves), for versionOf.
func inodeChange(info fs.FileInfo) (ino uint64, ctime int64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino, st.Ctim.Nano()
	}
	return 0, 0
}
