// Package durable writes files that must survive a crash: a checkpoint, a store of posted
// messages, a producer snapshot. A reader after a crash finds either the old or the new
// content, never a mix, and once WriteFile returns nil the new content is on disk.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// WriteFile replaces the file at path with data: it writes a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory, so that the rename
// itself survives a crash. Every error is returned; on error the temporary file is removed and
// path is unchanged.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, true)
}

// WriteFileNoSync replaces the file at path atomically like WriteFile but without the fsyncs:
// for files the caller can rebuild after a crash (a partition's offset index) and writes on a
// hot path where the fsync would cost more than the rebuild.
func WriteFileNoSync(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, false)
}

func write(path string, data []byte, perm os.FileMode, sync bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The name ends in .tmp so that directory scans can recognise and remove leftovers.
	f, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if sync {
		return syncDir(dir)
	}
	return nil
}

// syncDir makes the directory's entries (a rename, a new file) durable. Windows cannot open a
// directory for fsync (FlushFileBuffers needs write access); NTFS journals the rename itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
