package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in log.dir a running broker holds an exclusive
// lock on (flock; LockFileEx on Windows), with its pid inside, so a second broker on the same directory
// fails at once naming the holder instead of waiting on the Raft database.
const lockFileName = "sluice.lock"

// dirLock is a held log.dir lock.
type dirLock struct{ f *os.File }

// lockDataDir takes log.dir's lock without waiting.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log.dir: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("log.dir %s is in use by another broker (%s); stop it or choose another --data-dir", dir, holder(path))
		}
		return nil, fmt.Errorf("log.dir: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// holder describes the process named in a lock file: "pid 1234: sluice broker
// --data-dir data/1".
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "holder unknown"
	}
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		return "holder unknown"
	}
	desc := "pid " + pid
	if pid == strconv.Itoa(os.Getpid()) {
		return desc + ", this process"
	}
	if cmd, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline")); err == nil && len(cmd) > 0 {
		desc += ": " + strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return desc
}

// release drops the lock; the file stays.
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
