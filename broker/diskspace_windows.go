package broker

import "golang.org/x/sys/windows"

// diskSpace is the total and available bytes of the volume holding dir, or -1, -1
// when unknown.
func diskSpace(dir string) (total, usable int64) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return -1, -1
	}
	var avail, tot, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &tot, &free); err != nil {
		return -1, -1
	}
	return int64(tot), int64(avail)
}
