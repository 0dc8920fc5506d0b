//go:build unix

package broker

import "golang.org/x/sys/unix"

// diskSpace is the total and available bytes of the file system holding dir, or
// -1, -1 when unknown.
func diskSpace(dir string) (total, usable int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1, -1
	}
	// Bsize is int64 on Linux and uint32 on the BSDs and macOS.
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize)
}
