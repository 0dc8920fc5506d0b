package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/storage"
)

// offsetsStore keeps the group coordinator's records in the __consumer_offsets
// partitions, in Kafka's key/value formats, so they are compacted and (later)
// replicated like any partition.
type offsetsStore struct{ b *Broker }

func (s offsetsStore) localPartition(p int32) (*partition, error) {
	part := s.b.partitionOf(offsetsTopic, p)
	if part == nil {
		return nil, fmt.Errorf("%s-%d does not exist", offsetsTopic, p)
	}
	return part, nil
}

// Append writes recs as one batch on the partition's leader and returns once the
// batch is replicated to the ISR, like a produce with acks=all, so a committed
// offset survives the loss of the leader.
func (s offsetsStore) Append(ctx context.Context, p int32, recs []group.Record) error {
	part, err := s.b.leaderReplica(partitionRef{topic: offsetsTopic, index: p}, -1)
	if err != nil {
		return err
	}
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	_, epoch, _ := part.state()
	var res storage.AppendResult
	if txn := recs[0].Txn; txn != nil {
		batch := record.BuildTransactional(time.Now().UnixMilli(), txn.ProducerID, txn.ProducerEpoch, krecs)
		res, err = part.log.AppendAsCoordinator(batch, epoch)
	} else {
		res, err = part.log.Append(record.Build(0, time.Now().UnixMilli(), krecs), epoch)
	}
	if err != nil {
		return fmt.Errorf("appending to %s-%d: %w", offsetsTopic, p, err)
	}
	part.maybeAdvanceHW()
	part.notifyAppend()
	return part.waitReplicated(ctx, res.LastOffset+1, 5*time.Second, 1)
}

// Load replays a partition from its log start offset to its end.
func (s offsetsStore) Load(p int32, fn func(group.Record) error) error {
	part, err := s.localPartition(p)
	if err != nil {
		return err
	}
	off, end := part.log.LogStartOffset(), part.log.LogEndOffset()
	for off < end {
		data, err := part.log.Read(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		for h, batch := range record.Batches(data) {
			if h.IsControl() {
				if m, err := record.ParseMarker(batch); err == nil && h.BaseOffset >= off {
					if err := fn(group.Record{Txn: &group.TxnRecord{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, Marker: true, Commit: m.Commit}}); err != nil {
						return err
					}
				}
				off = h.NextOffset()
				continue
			}
			var txn *group.TxnRecord
			if h.IsTransactional() {
				txn = &group.TxnRecord{ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch}
			}
			recs, err := record.Records(batch)
			if err != nil {
				return fmt.Errorf("%s-%d offset %d: %w", offsetsTopic, p, h.BaseOffset, err)
			}
			for i, r := range recs {
				if h.BaseOffset+int64(r.OffsetDelta) < off {
					continue
				}
				if err := fn(group.Record{Key: recs[i].Key, Value: recs[i].Value, Txn: txn}); err != nil {
					return err
				}
			}
			off = h.NextOffset()
		}
	}
	return nil
}
