//go:build unix

package sim

import (
	"errors"
	"os"
	"syscall"
)

// flock locks belong to the open file, so goroutines of one process that open the lock file
// separately exclude each other just as processes do.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
