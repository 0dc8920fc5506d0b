//go:build unix

package loopback

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// lockPort takes the exclusive lock on port's file; the lock lasts until the file is closed or the
// process exits.
func lockPort(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
