//go:build unix

package diskstore

import (
	"io/fs"
	"syscall"
)

// diskBytes returns the bytes a file occupies on disk, which for Badger's
// sparse, preallocated files is less than its length.
func diskBytes(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512 // st_blocks counts 512-byte units whatever the block size.
	}
	return info.Size()
}
