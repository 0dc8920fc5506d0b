package broker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/record"
)

// TestProduceAnsweredWithinItsTimeout: an acks=all produce whose followers do not replicate is
// answered REQUEST_TIMED_OUT once its timeout_ms has passed, for all of its partitions together
// (Kafka's produce purgatory), not after a timeout per partition; and a parked produce whose
// partition moves off the leader is answered NOT_LEADER_OR_FOLLOWER at once, long before its
// timeout. The scaling drill saw producer records neither acknowledged nor failed for minutes.
func TestProduceAnsweredWithinItsTimeout(t *testing.T) {
	brokers := startTestCluster(t, 3, func(c *Config) { c.ReplicaLagTimeMaxMs = 600000 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const parts = 6
	assign := make([][]int32, parts)
	for i := range assign {
		assign[i] = []int32{1, 2, 3}
	}
	ctl := func() *testBroker {
		for _, tb := range brokers {
			if tb.quorum.IsController() {
				return tb
			}
		}
		return nil
	}
	waitUntil(t, 10*time.Second, "topic parked created", func() bool {
		c := ctl()
		if c == nil {
			return false
		}
		_, err := c.quorum.CreateTopic(ctx, "parked", -1, -1, assign, nil)
		return err == nil
	})
	waitUntil(t, 10*time.Second, "broker 1 leads every partition, followers applied", func() bool {
		for i := range parts {
			for _, tb := range brokers {
				p := tb.partitionOf("parked", int32(i))
				if p == nil {
					return false
				}
				if leader, _, _ := p.state(); leader != 1 {
					return false
				}
			}
		}
		return true
	})
	// The followers stop fetching: nothing is replicated, and the ISR stays (replica.lag.time.max.ms).
	for _, tb := range brokers[1:] {
		for i := range parts {
			tb.fetchers.remove(tb.partitionOf("parked", int32(i)))
		}
	}
	produce := func(timeoutMs int32, partitions ...int32) *kmsg.ProduceResponse {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, timeoutMs
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "parked"
		for _, i := range partitions {
			r := kmsg.NewRecord()
			r.Value = []byte("parked")
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = i, record.Build(0, time.Now().UnixMilli(), []kmsg.Record{r})
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		return request[*kmsg.ProduceResponse](t, brokers[0].Addr(), req)
	}

	all := make([]int32, parts)
	for i := range all {
		all[i] = int32(i)
	}
	start := time.Now()
	resp := produce(2000, all...)
	took := time.Since(start)
	for _, sp := range resp.Topics[0].Partitions {
		require.Equal(t, kerr.RequestTimedOut.Code, sp.ErrorCode, "partition %d", sp.Partition)
	}
	// One timeout of 2 s for the request; a timeout per partition would be 12 s.
	require.Less(t, took, 8*time.Second, "answered %v after a 2 s timeout", took)

	// A produce parked with a long timeout, then the partition moves off broker 1.
	answered := make(chan *kmsg.ProduceResponse, 1)
	go func() { answered <- produce(90000, 0) }()
	waitUntil(t, 10*time.Second, "the produce parked", func() bool {
		return brokers[0].partitionOf("parked", 0).log.LogEndOffset() == 2
	})
	errs, err := ctl().quorum.AlterPartitionReassignments(ctx, []metadata.ReassignmentRequest{{Topic: "parked", Partition: 0, Replicas: []int32{2, 3}}}, true)
	require.NoError(t, err)
	require.NoError(t, errs[0])
	select {
	case resp := <-answered:
		require.Equal(t, kerr.NotLeaderForPartition.Code, resp.Topics[0].Partitions[0].ErrorCode)
	case <-time.After(45 * time.Second):
		t.Fatal("a parked produce was not answered when its partition moved off the leader")
	}
}
