package diskstore

import (
	"os"
	"syscall"
)

// fdatasync syncs f's data and only the metadata needed to read it back: a
// segment is preallocated, so a write into it changes no size to sync.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
