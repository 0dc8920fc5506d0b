package storage

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestAppendReplicatedCopiesTheLeader(t *testing.T) {
	leader := openLog(t, t.TempDir(), testConfig())
	follower := openLog(t, t.TempDir(), testConfig())

	_, err := leader.Append(plain(3).build(), 1)
	require.NoError(t, err)
	idem := spec{n: 2, size: 10, pid: 7, epoch: 0, seq: 0, ts: 1000}
	_, err = leader.Append(idem.build(), 2)
	require.NoError(t, err)

	data, err := leader.Read(0, 1<<20, leader.LogEndOffset())
	require.NoError(t, err)
	res, err := follower.AppendReplicated(append([]byte(nil), data...))
	require.NoError(t, err)
	require.Equal(t, int64(0), res.BaseOffset)
	require.Equal(t, int64(4), res.LastOffset)
	require.Equal(t, leader.LogEndOffset(), follower.LogEndOffset())

	copyData, err := follower.Read(0, 1<<20, follower.LogEndOffset())
	require.NoError(t, err)
	require.Equal(t, data, copyData, "replicated batches are stored byte for byte")

	for _, epoch := range []int32{1, 2} {
		le, lo := leader.EndOffsetForEpoch(epoch)
		fe, fo := follower.EndOffsetForEpoch(epoch)
		require.Equal(t, le, fe)
		require.Equal(t, lo, fo)
	}
	require.Equal(t, int32(2), follower.LatestEpoch())

	// The follower knows the producer: after a failover a retry of the
	// last batch is a duplicate, answered with its original offsets.
	dup, err := follower.Append(idem.build(), 3)
	require.NoError(t, err)
	require.True(t, dup.Duplicate)
	require.Equal(t, int64(3), dup.BaseOffset)

	// A gap or an overlap is refused and changes nothing.
	_, err = follower.AppendReplicated(plain(1).build())
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)
	require.Equal(t, leader.LogEndOffset(), follower.LogEndOffset())
}

// TestTruncateFullyAndStartAt: a follower whose log ends below the leader's log start empties its
// log and starts at the leader's log start: it then takes the leader's batches from there, and the
// new start survives a restart.
func TestTruncateFullyAndStartAt(t *testing.T) {
	leader := openLog(t, t.TempDir(), testConfig())
	dir := t.TempDir()
	follower := openLog(t, dir, testConfig())
	for range 4 {
		_, err := leader.Append(plain(5).build(), 1)
		require.NoError(t, err)
	}
	data, err := leader.Read(0, 1<<20, 5)
	require.NoError(t, err)
	_, err = follower.AppendReplicated(append([]byte(nil), data...))
	require.NoError(t, err)
	_, err = leader.DeleteRecordsBefore(10)
	require.NoError(t, err)

	require.NoError(t, follower.TruncateFullyAndStartAt(leader.LogStartOffset()))
	require.Equal(t, int64(10), follower.LogStartOffset())
	require.Equal(t, int64(10), follower.LogEndOffset())
	require.Equal(t, int32(-1), follower.LatestEpoch())
	data, err = leader.Read(10, 1<<20, leader.LogEndOffset())
	require.NoError(t, err)
	_, err = follower.AppendReplicated(append([]byte(nil), data...))
	require.NoError(t, err)
	require.Equal(t, leader.LogEndOffset(), follower.LogEndOffset())
	got, err := follower.Read(10, 1<<20, follower.LogEndOffset())
	require.NoError(t, err)
	require.Equal(t, data, got)

	require.NoError(t, follower.Close())
	reopened := openLog(t, dir, testConfig())
	require.Equal(t, int64(10), reopened.LogStartOffset())
	require.Equal(t, int64(20), reopened.LogEndOffset())
	require.Equal(t, int32(1), reopened.LatestEpoch())
}
