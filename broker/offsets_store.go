package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/broker/record"
)

// offsetsStore keeps the group coordinator's records in the __consumer_offsets
// partitions, in Kafka's key/value formats, so they are compacted and (later)
// replicated like any partition.
type offsetsStore struct{ b *Broker }

func (s offsetsStore) partition(p int32) (*partition, error) {
	part := s.b.partitionOf(offsetsTopic, p)
	if part == nil {
		return nil, fmt.Errorf("%s-%d does not exist", offsetsTopic, p)
	}
	return part, nil
}

// Append writes recs as one batch; with any flush policy but always, durability
// follows the broker's flush policy like any other partition.
func (s offsetsStore) Append(_ context.Context, p int32, recs []group.Record) error {
	part, err := s.partition(p)
	if err != nil {
		return err
	}
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	batch := record.Build(0, time.Now().UnixMilli(), krecs)
	if _, err := part.log.Append(batch, part.leaderEpoch); err != nil {
		return fmt.Errorf("appending to %s-%d: %w", offsetsTopic, p, err)
	}
	return nil
}

// Load replays a partition from its log start offset to its end.
func (s offsetsStore) Load(p int32, fn func(group.Record) error) error {
	part, err := s.partition(p)
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
			recs, err := record.Records(batch)
			if err != nil {
				return fmt.Errorf("%s-%d offset %d: %w", offsetsTopic, p, h.BaseOffset, err)
			}
			for i, r := range recs {
				if h.BaseOffset+int64(r.OffsetDelta) < off {
					continue
				}
				if err := fn(group.Record{Key: recs[i].Key, Value: recs[i].Value}); err != nil {
					return err
				}
			}
			off = h.NextOffset()
		}
	}
	return nil
}
