package txn

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of the __transaction_state topic. A nil Value is a
// tombstone: the transactional id expired.
type Record struct {
	Key, Value []byte
}

// TopicPartition names one partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// txnMeta is one transactional id's metadata, Kafka's TransactionMetadata.
type txnMeta struct {
	id             string
	producerID     int64
	lastProducerID int64 // before the last producer id rotation, -1 if none
	epoch          int16
	lastEpoch      int16 // before the last bump, for InitProducerId retries (KIP-360)
	timeoutMs      int32
	state          State
	partitions     map[TopicPartition]struct{}
	startMs        int64 // when the ongoing transaction started, -1 if none
	updateMs       int64

	// pending is the state being written, 0xff-free: valid only with hasPending.
	pending    State
	hasPending bool

	// completed is closed when the completion of a PrepareCommit or
	// PrepareAbort is written; nil in other states.
	completed chan struct{}
}

func (m *txnMeta) clone() *txnMeta {
	c := *m
	c.partitions = make(map[TopicPartition]struct{}, len(m.partitions))
	for tp := range m.partitions {
		c.partitions[tp] = struct{}{}
	}
	c.hasPending = false
	c.completed = nil
	return &c
}

// sortedPartitions returns the partitions of m, by topic then partition.
func (m *txnMeta) sortedPartitions() []TopicPartition {
	out := make([]TopicPartition, 0, len(m.partitions))
	for tp := range m.partitions {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// encodeKey is TransactionLogKey version 0: the key version, then the
// transactional id as a (non-flexible) string.
func encodeKey(id string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.TransactionalID = id
	return k.AppendTo(nil)
}

// encodeValue is TransactionLogValue: version 0, as Kafka 3.x writes it, or
// version 1 (flexible) when there is a previous producer id to keep, in its
// tagged field.
func encodeValue(m *txnMeta) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.ProducerID = m.producerID
	v.ProducerEpoch = m.epoch
	v.TimeoutMillis = m.timeoutMs
	v.State = kmsg.TransactionState(m.state)
	v.LastUpdateTimestamp = m.updateMs
	v.StartTimestamp = m.startMs
	if m.lastProducerID >= 0 {
		v.Version = 1
		v.PreviousProducerID = m.lastProducerID
	}
	var topics []kmsg.TxnMetadataValueTopic
	for _, tp := range m.sortedPartitions() {
		if n := len(topics); n == 0 || topics[n-1].Topic != tp.Topic {
			t := kmsg.NewTxnMetadataValueTopic()
			t.Topic = tp.Topic
			topics = append(topics, t)
		}
		t := &topics[len(topics)-1]
		t.Partitions = append(t.Partitions, tp.Partition)
	}
	if topics == nil {
		topics = []kmsg.TxnMetadataValueTopic{}
	}
	v.Topics = topics
	return v.AppendTo(nil)
}

// Record returns m's record for __transaction_state.
func (m *txnMeta) record() Record {
	return Record{Key: encodeKey(m.id), Value: encodeValue(m)}
}

// errNotTxnRecord is a record of another type in the topic, which Kafka skips.
var errNotTxnRecord = errors.New("not a transaction log record")

// decodeRecord reads one record of __transaction_state. A tombstone returns
// the transactional id with a nil txnMeta.
func decodeRecord(r Record) (string, *txnMeta, error) {
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(r.Key); err != nil {
		return "", nil, fmt.Errorf("transaction log key: %w", err)
	}
	if k.Version != 0 {
		return "", nil, fmt.Errorf("%w: key version %d", errNotTxnRecord, k.Version)
	}
	if r.Value == nil {
		return k.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(r.Value); err != nil {
		return "", nil, fmt.Errorf("transaction log value of %q: %w", k.TransactionalID, err)
	}
	if v.Version < 0 || v.Version > 1 {
		return "", nil, fmt.Errorf("transaction log value of %q: unknown version %d", k.TransactionalID, v.Version)
	}
	st := State(v.State)
	if !st.Valid() {
		return "", nil, fmt.Errorf("transaction log value of %q: unknown state %d", k.TransactionalID, v.State)
	}
	m := &txnMeta{
		id:             k.TransactionalID,
		producerID:     v.ProducerID,
		lastProducerID: -1,
		epoch:          v.ProducerEpoch,
		lastEpoch:      -1,
		timeoutMs:      v.TimeoutMillis,
		state:          st,
		partitions:     map[TopicPartition]struct{}{},
		startMs:        v.StartTimestamp,
		updateMs:       v.LastUpdateTimestamp,
	}
	if v.Version >= 1 {
		m.lastProducerID = v.PreviousProducerID
	}
	for _, t := range v.Topics {
		for _, p := range slices.Compact(slices.Sorted(slices.Values(t.Partitions))) {
			m.partitions[TopicPartition{t.Topic, p}] = struct{}{}
		}
	}
	return m.id, m, nil
}
