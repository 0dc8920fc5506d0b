//go:build windows

package broker

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// errLocked is what tryLock returns when another process holds the lock.
var errLocked = errors.New("locked")

// tryLock takes an exclusive lock on f's first byte without waiting.
func tryLock(f *os.File) error {
	ol := new(windows.Overlapped)
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}
