package txn

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// unhex reads bytes written as hex with spaces between the schema's fields.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// The bytes below are written by hand from Kafka's TransactionLogKey.json and
// TransactionLogValue.json, field by field.
func TestRecordFormat(t *testing.T) {
	key := unhex(t, "0000 0002 7478") // version 0, string "tx"
	valueV0 := unhex(t, "0000"+       // version 0
		" 0000000000000005"+ // ProducerId
		" 0001"+ // ProducerEpoch
		" 0000ea60"+ // TransactionTimeoutMs 60000
		" 01"+ // TransactionStatus Ongoing
		" 00000001 0001 74 00000002 00000000 00000002"+ // [{"t", [0, 2]}]
		" 0000000000000064"+ // TransactionLastUpdateTimestampMs 100
		" 000000000000005a") // TransactionStartTimestampMs 90
	valueV1 := unhex(t, "0001"+ // version 1, flexible
		" 0000000000000005 0001 0000ea60 01"+
		" 02 0274 03 00000000 00000002 00"+ // compact array of one topic, its tags
		" 0000000000000064 000000000000005a"+
		" 01 00 08 0000000000000003") // tag 0 PreviousProducerId 3

	m := &txnMeta{id: "tx", producerID: 5, lastProducerID: -1, epoch: 1, timeoutMs: 60000, state: Ongoing,
		partitions: map[TopicPartition]struct{}{{"t", 2}: {}, {"t", 0}: {}}, startMs: 90, updateMs: 100}
	rec := m.record()
	require.Equal(t, key, rec.Key)
	require.Equal(t, valueV0, rec.Value)

	m.lastProducerID = 3
	require.Equal(t, valueV1, m.record().Value)

	for name, v := range map[string][]byte{"v0": valueV0, "v1": valueV1} {
		id, got, err := decodeRecord(Record{Key: key, Value: v})
		require.NoError(t, err, name)
		require.Equal(t, "tx", id)
		require.Equal(t, int64(5), got.producerID)
		require.Equal(t, int16(1), got.epoch)
		require.Equal(t, Ongoing, got.state)
		require.Equal(t, []TopicPartition{{"t", 0}, {"t", 2}}, got.sortedPartitions())
		require.Equal(t, int64(90), got.startMs)
		require.Equal(t, int64(100), got.updateMs)
		if name == "v1" {
			require.Equal(t, int64(3), got.lastProducerID)
		} else {
			require.Equal(t, int64(-1), got.lastProducerID)
		}
	}

	id, tomb, err := decodeRecord(Record{Key: key})
	require.NoError(t, err)
	require.Equal(t, "tx", id)
	require.Nil(t, tomb)
}

func TestRecordBadInput(t *testing.T) {
	key := unhex(t, "0000 0002 7478")
	good := (&txnMeta{id: "tx", producerID: 1, lastProducerID: -1, state: Empty, startMs: -1}).record().Value
	badState := append([]byte(nil), good...)
	badState[2+8+2+4] = 9
	badVersion := append([]byte(nil), good...)
	badVersion[1] = 7
	for name, r := range map[string]Record{
		"short key":     {Key: []byte{0}},
		"short value":   {Key: key, Value: good[:10]},
		"unknown state": {Key: key, Value: badState},
		"value version": {Key: key, Value: badVersion},
	} {
		_, _, err := decodeRecord(r)
		require.Error(t, err, name)
	}
	_, _, err := decodeRecord(Record{Key: unhex(t, "0001 0002 7478"), Value: good})
	require.ErrorIs(t, err, errNotTxnRecord)
}

func FuzzDecodeRecord(f *testing.F) {
	m := &txnMeta{id: "tx", producerID: 5, lastProducerID: 3, epoch: 1, state: Ongoing,
		partitions: map[TopicPartition]struct{}{{"t", 1}: {}}}
	r := m.record()
	f.Add(r.Key, r.Value)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		id, got, err := decodeRecord(Record{Key: k, Value: v})
		if err != nil || got == nil {
			return
		}
		// What decodes encodes to a record that decodes the same.
		id2, again, err := decodeRecord(got.record())
		require.NoError(t, err)
		require.Equal(t, id, id2)
		require.Equal(t, got.sortedPartitions(), again.sortedPartitions())
		require.Equal(t, got.state, again.state)
	})
}

func TestStateTransitions(t *testing.T) {
	legal := map[State][]State{
		Empty:             {Empty, Ongoing, Dead},
		Ongoing:           {Ongoing, PrepareCommit, PrepareAbort, PrepareEpochFence},
		PrepareCommit:     {CompleteCommit},
		PrepareAbort:      {CompleteAbort},
		CompleteCommit:    {Empty, Ongoing, Dead},
		CompleteAbort:     {Empty, Ongoing, Dead},
		PrepareEpochFence: {PrepareAbort},
		Dead:              nil,
	}
	for from := Empty; from <= PrepareEpochFence; from++ {
		for to := Empty; to <= PrepareEpochFence; to++ {
			want := false
			for _, s := range legal[from] {
				want = want || s == to
			}
			require.Equal(t, want, CanTransition(from, to), "%v -> %v", from, to)
		}
	}
	for s := Empty; s <= PrepareEpochFence; s++ {
		got, ok := ParseState(s.String())
		require.True(t, ok)
		require.Equal(t, s, got)
	}
	_, ok := ParseState("Bogus")
	require.False(t, ok)
}
