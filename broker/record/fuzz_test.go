package record

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse feeds arbitrary bytes to every decoder in the package: none may
// panic, and whatever Validate accepts must decode consistently.
func FuzzParse(f *testing.F) {
	f.Add(Build(0, 1, testRecords()))
	f.Add(Build(5, -1, nil))
	for _, c := range []Compression{CompressionGzip, CompressionSnappy, CompressionSnappy + 8, CompressionLZ4, CompressionZstd} {
		f.Add(compressed(f, c, testRecords()))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		for h, batch := range Batches(b) {
			require.Equal(t, h.Size(), len(batch))
			n += len(batch)
		}
		require.LessOrEqual(t, n, len(b))
		h, err := Validate(b)
		if err != nil {
			return
		}
		recs, err := Records(b)
		if err != nil {
			return
		}
		require.Len(t, recs, int(h.RecordCount))
		if h.Compression() == CompressionNone {
			// Re-encoding what we decoded yields the same records bytes.
			re := Encode(nil, h, recs)
			require.Equal(t, b[HeaderSize:h.Size()], re[HeaderSize:])
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzParse from the seeds
// when SLUICE_WRITE_CORPUS is set; the files are committed.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SLUICE_WRITE_CORPUS") == "" {
		t.Skip("set SLUICE_WRITE_CORPUS=1 to rewrite testdata/fuzz/FuzzParse")
	}
	seeds := map[string][]byte{
		"plain":        Build(0, 1, testRecords()),
		"empty":        Build(5, -1, nil),
		"gzip":         compressed(t, CompressionGzip, testRecords()),
		"snappy":       compressed(t, CompressionSnappy, testRecords()),
		"snappyxerial": compressed(t, CompressionSnappy+8, testRecords()),
		"lz4":          compressed(t, CompressionLZ4, testRecords()),
		"zstd":         compressed(t, CompressionZstd, testRecords()),
		"two":          append(Build(0, 1, testRecords()), Build(3, 2, testRecords())...),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, b := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
}
