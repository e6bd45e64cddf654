//go:build !unix

package diskstore

import "io/fs"

// diskBytes returns the file's length: this system reports no block count.
func diskBytes(info fs.FileInfo) int64 {
	return info.Size()
}
