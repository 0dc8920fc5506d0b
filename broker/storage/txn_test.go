package storage

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/record"
)

// txnBatch is a transactional batch of n records from pid at epoch, seq.
func txnBatch(pid int64, epoch int16, seq int32, n int) []byte {
	b := idem(pid, epoch, seq, n)
	h, _ := record.ParseHeader(b)
	recs, _ := record.Records(b)
	h.Attributes |= 0x10
	return record.Encode(nil, h, recs)
}

func marker(t testing.TB, l *Log, pid int64, epoch int16, commit bool, coordEpoch int32) AppendResult {
	t.Helper()
	res, err := l.AppendMarker(record.Marker{ProducerID: pid, ProducerEpoch: epoch, Commit: commit, CoordinatorEpoch: coordEpoch}, 0)
	require.NoError(t, err)
	return res
}

func TestTransactionMarkersAndLSO(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	require.EqualValues(t, -1, l.FirstUnstableOffset())

	mustAppend(t, l, plain(2).build())     // 0-1
	mustAppend(t, l, txnBatch(1, 0, 0, 3)) // 2-4 txn of producer 1
	require.EqualValues(t, 2, l.FirstUnstableOffset())
	mustAppend(t, l, txnBatch(2, 0, 0, 2)) // 5-6 txn of producer 2
	mustAppend(t, l, txnBatch(1, 0, 3, 1)) // 7
	require.EqualValues(t, 2, l.FirstUnstableOffset())
	m := marker(t, l, 1, 0, false, 5) // 8: abort producer 1
	require.EqualValues(t, 8, m.BaseOffset)
	require.EqualValues(t, 5, l.FirstUnstableOffset(), "producer 2 still open")
	require.Equal(t, []AbortedTxn{{ProducerID: 1, FirstOffset: 2, LastOffset: 8, LastStableOffset: 5}}, l.AbortedTxns(0, 100))
	marker(t, l, 2, 0, true, 5) // 9: commit producer 2
	require.EqualValues(t, -1, l.FirstUnstableOffset())
	require.Len(t, l.AbortedTxns(0, 100), 1, "a commit adds no index entry")
	require.Empty(t, l.AbortedTxns(9, 100), "the abort marker is before the range")
	require.Empty(t, l.AbortedTxns(0, 2), "the transaction starts at the range's end")

	// The marker is a control batch with the marker record.
	b, err := l.Read(8, 1<<20, 9)
	require.NoError(t, err)
	got, err := record.ParseMarker(b)
	require.NoError(t, err)
	require.Equal(t, record.Marker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 5}, got)

	// Producers report their transaction state.
	ps := l.Producers()
	require.Len(t, ps, 2)
	require.Equal(t, ProducerInfo{ProducerID: 1, ProducerEpoch: 0, LastSequence: 3, LastTimestamp: ps[0].LastTimestamp,
		CoordinatorEpoch: 5, CurrentTxnStartOffset: -1}, ps[0])
}

func TestTransactionRefusals(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	mustAppend(t, l, txnBatch(1, 3, 0, 1))
	leo := l.LogEndOffset()

	tests := []struct {
		name string
		do   func() error
		want *kerr.Error
	}{
		{"non-transactional write inside a transaction", func() error { _, err := l.Append(idem(1, 3, 1, 1), 0); return err }, kerr.InvalidTxnState},
		{"older producer epoch", func() error { _, err := l.Append(txnBatch(1, 2, 0, 1), 0); return err }, kerr.InvalidProducerEpoch},
		{"marker from an older producer epoch", func() error {
			_, err := l.AppendMarker(record.Marker{ProducerID: 1, ProducerEpoch: 2, CoordinatorEpoch: 9}, 0)
			return err
		}, kerr.InvalidProducerEpoch},
		{"control batch from a producer", func() error {
			_, err := l.Append(record.BuildMarker(0, 1, record.Marker{ProducerID: 1, ProducerEpoch: 3}), 0)
			return err
		}, kerr.InvalidRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.do(), tc.want)
			require.Equal(t, leo, l.LogEndOffset(), "nothing appended")
			require.EqualValues(t, 0, l.FirstUnstableOffset())
		})
	}

	// A newer coordinator's marker fences older coordinators.
	marker(t, l, 1, 3, true, 9)
	_, err := l.AppendMarker(record.Marker{ProducerID: 1, ProducerEpoch: 3, CoordinatorEpoch: 8}, 0)
	require.ErrorIs(t, err, kerr.TransactionCoordinatorFenced)
}

// TestAbortedIndexAcrossRollsAndRestart checks that the aborted transaction
// index survives segment rolls, a clean restart and a crash, and that a
// follower building the log from the leader's batches gets the same index.
func TestAbortedIndexAcrossRollsAndRestart(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 2048
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	var want []AbortedTxn
	seq := map[int64]int32{}
	for i := range 40 {
		pid := int64(i%3 + 1)
		first := l.LogEndOffset()
		mustAppend(t, l, txnBatch(pid, 0, seq[pid], 4))
		seq[pid] += 4
		mustAppend(t, l, plain(3).build())
		abort := i%2 == 0
		m := marker(t, l, pid, 0, !abort, 1)
		if abort {
			want = append(want, AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: m.BaseOffset, LastStableOffset: m.BaseOffset + 1})
		}
	}
	require.Greater(t, l.NumSegments(), 5)
	require.Equal(t, want, l.AbortedTxns(0, l.LogEndOffset()))
	// A txn left open over the restart.
	mustAppend(t, l, txnBatch(9, 0, 0, 2))
	open := l.LogEndOffset() - 2
	leo := l.LogEndOffset()

	// The follower's copy.
	fdir := t.TempDir()
	f := openLog(t, fdir, cfg)
	for off := int64(0); off < leo; {
		b, err := l.Read(off, 1<<20, leo)
		require.NoError(t, err)
		res, err := f.AppendReplicated(append([]byte(nil), b...))
		require.NoError(t, err)
		off = res.LastOffset + 1
	}
	require.Equal(t, want, f.AbortedTxns(0, leo))
	require.Equal(t, open, f.FirstUnstableOffset())
	require.NoError(t, f.Close())

	crashed := crashCopy(t, dir)
	require.NoError(t, l.Close())
	for _, d := range []string{dir, crashed} {
		l := openLog(t, d, cfg)
		require.Equal(t, want, l.AbortedTxns(0, leo), d)
		require.Equal(t, open, l.FirstUnstableOffset())
		// A fetch from the middle sees only the entries of its range.
		mid := want[len(want)/2]
		got := l.AbortedTxns(mid.FirstOffset, mid.LastOffset)
		require.Contains(t, got, mid)
		for _, a := range got {
			require.GreaterOrEqual(t, a.LastOffset, mid.FirstOffset)
		}
		require.NoError(t, l.Close())
	}
}

func TestTruncateRebuildsTransactionState(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	mustAppend(t, l, txnBatch(1, 0, 0, 2)) // 0-1
	marker(t, l, 1, 0, false, 0)           // 2
	mustAppend(t, l, txnBatch(1, 0, 2, 2)) // 3-4
	marker(t, l, 1, 0, false, 0)           // 5
	require.Len(t, l.AbortedTxns(0, 6), 2)
	require.NoError(t, l.TruncateTo(5))
	require.Len(t, l.AbortedTxns(0, 6), 1, "the second abort was truncated away")
	require.EqualValues(t, 3, l.FirstUnstableOffset(), "its transaction is open again")
	require.NoError(t, l.TruncateTo(3))
	require.EqualValues(t, -1, l.FirstUnstableOffset())
}

// TestVerificationGuard: a transactional batch verified before a marker ended
// the producer's transaction cannot open a new one (KIP-890's guard).
func TestVerificationGuard(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	open, guard := l.TxnGuard(1, 0)
	require.False(t, open)
	_, err := l.AppendTransactional(txnBatch(1, 0, 0, 1), 0, guard)
	require.NoError(t, err)
	open, guard = l.TxnGuard(1, 0)
	require.True(t, open, "no verification needed inside the open transaction")
	marker(t, l, 1, 0, false, 0)
	_, err = l.AppendTransactional(txnBatch(1, 0, 1, 1), 0, guard)
	require.ErrorIs(t, err, kerr.InvalidTxnState, "the transaction ended after the guard was taken")
	open, guard = l.TxnGuard(1, 0)
	require.False(t, open)
	_, err = l.AppendTransactional(txnBatch(1, 0, 1, 1), 0, guard)
	require.NoError(t, err, "verified again after the marker")
	open, _ = l.TxnGuard(1, 1)
	require.False(t, open, "a new epoch needs verification")
}

// keyedTxn is a transactional batch of pid holding key=value pairs.
func keyedTxn(pid int64, seq int32, ts int64, kv ...string) []byte {
	var recs []kmsg.Record
	for i := 0; i < len(kv); i += 2 {
		recs = append(recs, kmsg.Record{Key: []byte(kv[i]), Value: []byte(kv[i+1]), OffsetDelta: int32(i / 2)})
	}
	h := record.Header{
		PartitionLeaderEpoch: -1, LastOffsetDelta: int32(len(recs) - 1), Attributes: 0x10,
		BaseTimestamp: ts, MaxTimestamp: ts, ProducerID: pid, BaseSequence: seq,
	}
	return record.Encode(nil, h, recs)
}

// TestCompactionWithTransactions: aborted records are removed and never
// shadow a committed value; markers stay while their transaction keeps
// records, and go delete.retention.ms after the transaction's records are
// gone; an open transaction's records are not cleaned.
func TestCompactionWithTransactions(t *testing.T) {
	cfg := testConfig()
	cfg.CleanupPolicy = CleanupCompact
	cfg.DeleteRetentionMs = 1000
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	now := time.UnixMilli(1_000_000)
	l.now = func() time.Time { return now }
	ts := now.UnixMilli()

	_, err := l.Append(keyedTxn(1, 0, ts, "a", "committed-a", "b", "committed-b"), 0) // 0-1
	require.NoError(t, err)
	marker(t, l, 1, 0, true, 0)                                // 2
	_, err = l.Append(keyedTxn(2, 0, ts, "a", "aborted-a"), 0) // 3
	require.NoError(t, err)
	marker(t, l, 2, 0, false, 0)                                  // 4
	_, err = l.Append(keyedTxn(1, 2, ts, "b", "committed-b2"), 0) // 5
	require.NoError(t, err)
	marker(t, l, 1, 0, true, 0) // 6
	l.mu.Lock()
	require.NoError(t, l.roll(l.cfg))
	l.mu.Unlock()
	_, err = l.Append(keyedTxn(3, 0, ts, "c", "open-c"), 0) // 7: stays open
	require.NoError(t, err)
	l.mu.Lock()
	require.NoError(t, l.roll(l.cfg))
	l.mu.Unlock()
	_, err = l.Append(plain(1).build(), 0) // active segment not empty
	require.NoError(t, err)

	type entry struct {
		off     int64
		control bool
		val     string
	}
	collect := func() []entry {
		var out []entry
		for off := l.LogStartOffset(); off < l.LogEndOffset(); {
			b, err := l.Read(off, 1<<20, l.LogEndOffset())
			require.NoError(t, err)
			for h, batch := range record.Batches(b) {
				recs, err := record.Records(batch)
				require.NoError(t, err)
				for _, r := range recs {
					e := entry{h.BaseOffset + int64(r.OffsetDelta), h.IsControl(), string(r.Value)}
					if e.control {
						e.val = ""
					}
					out = append(out, e)
				}
				off = h.NextOffset()
			}
		}
		return out
	}
	require.NoError(t, l.Maintain(now))
	require.Equal(t, []entry{
		{0, false, "committed-a"}, {2, true, ""}, {4, true, ""}, {5, false, "committed-b2"}, {6, true, ""},
		{7, false, "open-c"}, {8, false, "v0\x00\x00\x00\x00\x00\x00\x00\x00"},
	}, collect(), "aborted and shadowed records go; the open transaction at 7 holds its segment back")

	// Once the open transaction commits, its segment is cleaned too, and the
	// abort marker (its transaction kept nothing) goes after
	// delete.retention.ms; markers of transactions with kept records stay.
	marker(t, l, 3, 0, true, 0)
	l.mu.Lock()
	require.NoError(t, l.roll(l.cfg))
	l.mu.Unlock()
	_, err = l.Append(plain(1).build(), 0)
	require.NoError(t, err)
	later := now.Add(2 * time.Second)
	l.now = func() time.Time { return later }
	require.NoError(t, l.Maintain(later))
	got := collect()
	require.Contains(t, got, entry{0, false, "committed-a"})
	require.Contains(t, got, entry{2, true, ""})
	require.NotContains(t, got, entry{3, false, "aborted-a"})
	require.NotContains(t, got, entry{4, true, ""}, "abort marker without records, past delete.retention.ms")
	require.Contains(t, got, entry{7, false, "open-c"})
}

// TestSnapshotVersion1StillLoads: a producer snapshot written before
// transactions (version 1) loads, its producers without transaction state.
func TestSnapshotVersion1StillLoads(t *testing.T) {
	v1 := binary.BigEndian.AppendUint16(nil, 1)
	v1 = binary.BigEndian.AppendUint32(v1, 1)
	v1 = binary.BigEndian.AppendUint64(v1, 42)   // producer id
	v1 = binary.BigEndian.AppendUint16(v1, 3)    // epoch
	v1 = binary.BigEndian.AppendUint64(v1, 1000) // last timestamp
	v1 = append(v1, 1)
	for _, v := range []uint32{0, 4} {
		v1 = binary.BigEndian.AppendUint32(v1, v)
	}
	for _, v := range []uint64{10, 14} {
		v1 = binary.BigEndian.AppendUint64(v1, v)
	}
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, castagnoli))
	ps, err := decodeProducerState(v1)
	require.NoError(t, err)
	e := ps.producers[42]
	require.NotNil(t, e)
	require.Equal(t, int16(3), e.epoch)
	require.Equal(t, int32(-1), e.coordEpoch)
	require.Equal(t, int64(-1), e.txnFirst)
	require.Equal(t, []producerBatch{{firstSeq: 0, lastSeq: 4, firstOffset: 10, lastOffset: 14}}, e.batches)
	require.EqualValues(t, -1, ps.firstUnstable())

	// Version 2 round-trips the transaction state.
	e.coordEpoch, e.txnFirst = 5, 12
	ps.ongoing[42] = 12
	back, err := decodeProducerState(ps.encode())
	require.NoError(t, err)
	require.Equal(t, ps, back)
}
