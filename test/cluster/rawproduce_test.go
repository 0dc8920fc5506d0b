package cluster

import (
	"context"
	"hash/crc32"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluicemq/sluice/chaos"
)

// rawProduce sends one acks=all record straight to node id, without a client's retries, and returns
// the partition's error code from the response: what the broker itself answers.
func rawProduce(t *testing.T, cl *chaos.Cluster, id int32, topic string, partition int32, value []byte, timeout time.Duration) int16 {
	t.Helper()
	// Produce v13 names topics by ID; v12 by name is enough here.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.Produce.Int16(), 12)
	kcl, err := kgo.NewClient(kgo.SeedBrokers(cl.Node(id).Addr), kgo.MaxVersions(versions))
	require.NoError(t, err)
	defer kcl.Close()

	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = int32(timeout.Milliseconds())
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = recordBatch(value)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	resp, err := kcl.SeedBrokers()[0].Request(ctx, req)
	require.NoError(t, err)
	pr := resp.(*kmsg.ProduceResponse)
	require.Len(t, pr.Topics, 1)
	require.Len(t, pr.Topics[0].Partitions, 1)
	return pr.Topics[0].Partitions[0].ErrorCode
}

// recordBatch encodes a v2 record batch holding one record with value, not idempotent.
func recordBatch(value []byte) []byte {
	rec := kmsg.NewRecord()
	rec.Value = value
	body := rec.AppendTo(nil) // with Length 0: one varint byte
	rec.Length = int32(len(body) - 1)
	records := rec.AppendTo(nil)

	now := time.Now().UnixMilli()
	b := kmsg.NewRecordBatch()
	b.PartitionLeaderEpoch = -1
	b.Magic = 2
	b.FirstTimestamp = now
	b.MaxTimestamp = now
	b.ProducerID = -1
	b.ProducerEpoch = -1
	b.FirstSequence = -1
	b.NumRecords = 1
	b.Records = records
	enc := b.AppendTo(nil)
	// Length counts the bytes after FirstOffset (8) and Length (4); the CRC (crc32c) covers
	// everything from Attributes, after the CRC field at bytes 17-21.
	b.Length = int32(len(enc) - 12)
	enc = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(enc[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}
