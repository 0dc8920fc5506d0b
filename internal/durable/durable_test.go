package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFileReplaces(t *testing.T) {
	for _, write := range []struct {
		name string
		fn   func(string, []byte, os.FileMode) error
	}{{"WriteFile", WriteFile}, {"WriteFileNoSync", WriteFileNoSync}} {
		t.Run(write.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "state.json")
			require.NoError(t, write.fn(p, []byte("old"), 0o600))
			require.NoError(t, write.fn(p, []byte("new"), 0o640))
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Equal(t, "new", string(b))
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary file left")
		})
	}
}

// TestWriteFileErrors: every failure is returned, path keeps its content and no temporary
// file is left behind.
func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600)
	require.ErrorContains(t, err, "missing")

	// The target is a directory: the rename fails after the temporary file was written.
	target := filepath.Join(dir, "target")
	require.NoError(t, os.Mkdir(target, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(target, "keep"), []byte("k"), 0o600))
	err = WriteFile(target, []byte("x"), 0o600)
	require.Error(t, err)
	require.Contains(t, err.Error(), target)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the temporary file was removed")

	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		require.NoError(t, os.Mkdir(ro, 0o555))
		require.Error(t, WriteFile(filepath.Join(ro, "f"), []byte("x"), 0o600))
	}
}
