package storage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// crashChildEnv names the directory a re-executed test binary produces into
// until it is killed.
const crashChildEnv = "SLUICE_STORAGE_CRASH_CHILD_DIR"

func crashConfig() Config {
	cfg := testConfig()
	cfg.SegmentBytes = 64 << 10 // roll often, so kills land in rolls too
	cfg.IndexIntervalBytes = 512
	return cfg
}

// TestKillDuringProduce SIGKILLs a process that is appending as fast as it
// can and checks that the log always reopens with only valid batches, a
// contiguous offset range and producer state that accepts the next
// sequence.
func TestKillDuringProduce(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		produceForever(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for round := range 4 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringProduce$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		require.NoError(t, cmd.Start())
		want := int64(round+1) * 200 << 10
		testutil.WaitFor(t, 20*time.Second, `logBytes(dir) > want`, func() bool { return logBytes(dir) > want })
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()

		l := openLog(t, dir, crashConfig())
		leo := l.LogEndOffset()
		require.Positive(t, leo)
		hs := readAll(t, l, 0, 1<<20)
		require.Equal(t, leo, hs[len(hs)-1].NextOffset())
		for i := 1; i < len(hs); i++ {
			require.Equal(t, hs[i-1].NextOffset(), hs[i].BaseOffset)
		}
		// The child's sequence numbers equal offsets.
		res, err := l.Append(idem(1, 0, int32(leo), 10), 0)
		require.NoError(t, err)
		require.Equal(t, leo, res.BaseOffset)
		require.NoError(t, l.Close())
	}
}

func produceForever(t *testing.T, dir string) {
	l := openLog(t, dir, crashConfig())
	for seq := int32(0); ; seq += 10 {
		if _, err := l.Append(idem(1, 0, seq, 10), 0); err != nil {
			t.Fatal(err)
		}
	}
}

func logBytes(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), logSuffix) {
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}
