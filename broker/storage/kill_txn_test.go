package storage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/internal/testutil"
)

// crashTxnChildEnv names the directory a re-executed test binary writes
// transactions into until it is killed.
const crashTxnChildEnv = "SLUICE_STORAGE_CRASH_TXN_CHILD_DIR"

// TestKillDuringTransactions SIGKILLs a process that writes transactions of
// three producers (every third aborted, markers interleaved with data, so
// kills land between data and marker and inside rolls) and checks that the
// reopened log's aborted transaction index and first unstable offset equal
// those of a log rebuilt from the data alone (no .txnindex, no snapshot).
func TestKillDuringTransactions(t *testing.T) {
	if dir := os.Getenv(crashTxnChildEnv); dir != "" {
		transactForever(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringTransactions$")
		cmd.Env = append(os.Environ(), crashTxnChildEnv+"="+dir)
		require.NoError(t, cmd.Start())
		want := int64(round+1) * 150 << 10
		testutil.WaitFor(t, 30*time.Second, "the writer to pass the log size to kill at", func() bool { return logBytes(dir) > want })
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()

		rebuilt := crashCopy(t, dir)
		ents, err := os.ReadDir(rebuilt)
		require.NoError(t, err)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), txnIndexSuffix) || strings.HasSuffix(e.Name(), snapshotSuffix) {
				require.NoError(t, os.Remove(filepath.Join(rebuilt, e.Name())))
			}
		}
		l := openLog(t, dir, crashConfig())
		r := openLog(t, rebuilt, crashConfig())
		leo := l.LogEndOffset()
		require.Equal(t, leo, r.LogEndOffset())
		require.NotEmpty(t, r.AbortedTxns(0, leo), "the child aborted transactions")
		require.Equal(t, r.AbortedTxns(0, leo), l.AbortedTxns(0, leo))
		require.Equal(t, r.FirstUnstableOffset(), l.FirstUnstableOffset())
		require.Equal(t, r.Producers(), l.Producers())
		require.NoError(t, l.Close())
		require.NoError(t, r.Close())
	}
}

func transactForever(t *testing.T, dir string) {
	l := openLog(t, dir, crashConfig())
	seq := map[int64]int32{}
	for i := 0; ; i++ {
		pid := int64(i%3 + 1)
		if _, err := l.Append(txnBatch(pid, 0, seq[pid], 10), 0); err != nil {
			t.Fatal(err)
		}
		seq[pid] += 10
		if i%7 == 6 {
			end := int64(i/7%3 + 1)
			if _, err := l.AppendMarker(record.Marker{ProducerID: end, Commit: i%21 != 6}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
}
