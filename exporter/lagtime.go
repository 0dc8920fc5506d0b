package exporter

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Lag in seconds is the age of the first record a group has not consumed: the
// record at the committed offset (or at the log start, if retention removed
// it). Its timestamp is read directly with a Fetch from the partition leader,
// so the figure is exact up to the producer's clock (CreateTime) rather than
// extrapolated from consumption rates (kafka-lag-exporter) and it needs no
// history, so it is right from the first collection and for consumers that
// stopped before the exporter started. A record at an offset never changes,
// so timestamps are cached per (topic, partition, offset) and a collection
// only reads offsets that moved since the last one.

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

// recordKey names the record at an offset.
type recordKey struct {
	topicPartition
	offset int64
}

// timestampCache maps records to their timestamps (Unix ms). It is used by
// one collection at a time.
type timestampCache struct {
	ts   map[recordKey]int64
	seen map[recordKey]uint64 // the collection that last asked for the key
}

func newTimestampCache() *timestampCache {
	return &timestampCache{ts: map[recordKey]int64{}, seen: map[recordKey]uint64{}}
}

// prune forgets keys no collection asked for since cycle.
func (c *timestampCache) prune(cycle uint64) {
	for k, s := range c.seen {
		if s < cycle {
			delete(c.seen, k)
			delete(c.ts, k)
		}
	}
}

// partitionLeader is what a record read needs to know of a partition.
type partitionLeader struct {
	leader  int32
	topicID [16]byte
}

// fetchPartitionMaxBytes bounds the bytes read for one record. The broker
// returns whole batches, so this is the largest batch whose records get a
// timestamp; the first partition of a request is answered even beyond it.
const fetchPartitionMaxBytes = 256 << 10

// fetchMaxBytes bounds one Fetch response.
const fetchMaxBytes = 32 << 20

// readTimestamps fills cache with the timestamps of the records in want that
// it does not hold yet, reading at most limit records, and returns how many
// reads failed. Reads go to each partition's leader, one Fetch per leader and
// round; a round asks each partition for one offset, so several groups at
// different offsets of one partition take several rounds.
func readTimestamps(ctx context.Context, cl *kgo.Client, cache *timestampCache, cycle uint64, want []recordKey, leaders map[topicPartition]partitionLeader, limit int) (failed int, err error) {
	var missing []recordKey
	for _, k := range want {
		cache.seen[k] = cycle
		if _, ok := cache.ts[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > limit {
		missing = missing[:limit]
	}
	slices.SortFunc(missing, func(a, b recordKey) int {
		if c := compareTP(a.topicPartition, b.topicPartition); c != 0 {
			return c
		}
		return int(a.offset - b.offset)
	})
	decomp := kgo.DefaultDecompressor()
	var firstErr error
	for len(missing) > 0 && ctx.Err() == nil {
		// One offset per partition this round; the rest wait.
		byLeader := map[int32][]recordKey{}
		var rest []recordKey
		for i, k := range missing {
			if i > 0 && missing[i-1].topicPartition == k.topicPartition {
				rest = append(rest, k)
				continue
			}
			pl, ok := leaders[k.topicPartition]
			if !ok || pl.leader < 0 {
				failed++
				continue
			}
			byLeader[pl.leader] = append(byLeader[pl.leader], k)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for leader, keys := range byLeader {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := fetchRecords(ctx, cl, leader, keys, leaders, decomp)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for _, k := range keys {
					if ts, ok := got[k]; ok {
						cache.ts[k] = ts
					} else {
						failed++
					}
				}
				// Records in the same batch may answer other groups' offsets.
				for k, ts := range got {
					if _, asked := cache.seen[k]; asked {
						cache.ts[k] = ts
					}
				}
			}()
		}
		wg.Wait()
		missing = slices.DeleteFunc(rest, func(k recordKey) bool {
			_, ok := cache.ts[k]
			return ok
		})
	}
	return failed, firstErr
}

// fetchRecords reads from one broker the record at each key's offset and
// returns the timestamps of every record it decoded, keyed by offset. The
// first record at or after an offset stands for it, as a consumer would read
// it next (compaction can leave gaps).
func fetchRecords(ctx context.Context, cl *kgo.Client, leader int32, keys []recordKey, leaders map[topicPartition]partitionLeader, decomp kgo.Decompressor) (map[recordKey]int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = fetchMaxBytes
	byTopic := map[string]int{}
	asked := map[topicPartition]int64{}
	for _, k := range keys {
		i, ok := byTopic[k.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[k.topic] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = k.topic
			rt.TopicID = leaders[k.topicPartition].topicID
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = k.partition
		rp.FetchOffset = k.offset
		rp.PartitionMaxBytes = fetchPartitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		asked[k.topicPartition] = k.offset
	}
	byID := map[[16]byte]string{}
	for _, rt := range req.Topics {
		byID[rt.TopicID] = rt.Topic
	}
	kresp, err := cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("fetch from broker %d: %w", leader, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("fetch from broker %d: %w", leader, err)
	}
	got := map[recordKey]int64{}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		topic := rt.Topic
		if topic == "" {
			topic = byID[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			tp := topicPartition{topic, rp.Partition}
			off, ok := asked[tp]
			if !ok || rp.ErrorCode != 0 {
				continue
			}
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: off, Topic: topic, Partition: rp.Partition}, rp, decomp, nil)
			for n, r := range fp.Records {
				if n == 0 && r.Offset >= off {
					got[recordKey{tp, off}] = r.Timestamp.UnixMilli()
				}
				got[recordKey{tp, r.Offset}] = r.Timestamp.UnixMilli()
			}
		}
	}
	return got, nil
}

func compareTP(a, b topicPartition) int {
	if a.topic != b.topic {
		if a.topic < b.topic {
			return -1
		}
		return 1
	}
	return int(a.partition - b.partition)
}
