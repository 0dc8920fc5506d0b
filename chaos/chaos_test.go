package chaos

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosShort is a real chaos run, kept short: three brokers, three kills (one of the controller),
// then all brokers killed and restarted at once. Every acknowledged record must be read back once,
// in order.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-broker cluster")
	}
	bin := sluiceBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Bin:        bin,
		Dir:        t.TempDir(),
		Kills:      3,
		Rate:       600,
		MinDown:    200 * time.Millisecond,
		MaxDown:    700 * time.Millisecond,
		RestartAll: true,
		Seed:       1,
	}, testWriter{t})
	require.NoError(t, err)
	var buf bytes.Buffer
	rep.Write(&buf)
	t.Log(buf.String())
	require.True(t, rep.OK(), "chaos run failed; see the report above")
	require.Len(t, rep.Kills, 3)
	require.NotZero(t, rep.Check.Acked)
	require.NotNil(t, rep.AfterRestartAll)
}

// TestChaosTxnShort is a short transactional chaos run: the exactly-once pipeline copies the topic
// while four brokers are killed (the controller twice, transaction coordinators otherwise), then all
// brokers are killed and restarted at once. Every input record must be in the read_committed output
// exactly once, no record of an aborted transaction may be visible, and the group's offsets must
// match the output.
func TestChaosTxnShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-broker cluster")
	}
	bin := sluiceBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Bin:        bin,
		Dir:        t.TempDir(),
		Mode:       ModeTxn,
		Partitions: 3,
		Kills:      4,
		Rate:       300,
		MinDown:    200 * time.Millisecond,
		MaxDown:    700 * time.Millisecond,
		RestartAll: true,
		Seed:       1,
	}, testWriter{t})
	require.NoError(t, err)
	var buf bytes.Buffer
	rep.Write(&buf)
	t.Log(buf.String())
	require.True(t, rep.OK(), "chaos run failed; see the report above")
	require.NotNil(t, rep.Txn)
	require.NotZero(t, rep.Txn.Stats.Committed)
	require.NotZero(t, rep.Txn.Stats.MarkerTxns)
	require.NotZero(t, rep.Txn.Check.Input)
	require.Equal(t, rep.Txn.Check.Markers, rep.Txn.Check.MarkersSeenUncommitted)
	require.NotNil(t, rep.Txn.AfterRestartAll)
	coordinatorKills := 0
	for _, k := range rep.Kills {
		if k.WasCoordinator {
			coordinatorKills++
		}
	}
	require.NotZero(t, coordinatorKills, "some kill hit a transaction coordinator")
}

// TestClusterSingleBroker exercises the process harness on a one-broker cluster (no
// --controller-quorum): start, Metadata, SIGKILL, restart in place, SIGTERM.
func TestClusterSingleBroker(t *testing.T) {
	bin := sluiceBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := StartCluster(ctx, ClusterConfig{Bin: bin, Dir: t.TempDir(), Brokers: 1})
	require.NoError(t, err)
	defer cl.Close()
	defer func() {
		if t.Failed() {
			t.Log(cl.Logs(50))
		}
	}()
	v, err := cl.View(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []int32{1}, v.Brokers)
	require.NotContains(t, cl.Args(1), "--controller-quorum")

	require.NoError(t, cl.Kill(1))
	require.False(t, cl.Node(1).Running())
	require.Empty(t, cl.Running())
	require.Error(t, cl.Kill(1), "killing a dead node")
	require.NoError(t, cl.Restart(ctx, 1))
	require.Equal(t, 2, cl.Node(1).Runs())
	require.NoError(t, cl.WaitBrokers(ctx, 10*time.Second))
	ctl, err := cl.Controller(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), ctl)

	require.NoError(t, cl.Stop(1, 10*time.Second), "SIGTERM exits 0")
	require.Contains(t, cl.LogTail(1, 1000), "=== chaos: run 2 of node 1")
}
