//go:build !unix

package loopback

import (
	"os"
	"path/filepath"
	"strconv"
)

// lockPort opens port's file. Without flock there is no lock between processes: ports come from
// below the ephemeral range, but two concurrent test binaries may pick the same one.
func lockPort(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	return f, true
}
