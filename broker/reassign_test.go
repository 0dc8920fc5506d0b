package broker

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReassignmentThrottled moves a partition off its leader onto a new broker with
// follower.replication.throttled.rate, then (on a new cluster) leader.replication.throttled.rate, set
// through kadm: the copy cannot finish faster than the
// throttle allows (a lower bound, which a busy machine only lengthens), the reassignment is listed
// while it runs, and afterwards the old leader has deleted its copy and every record is read back
// from the new replicas.
func TestReassignmentThrottled(t *testing.T) {
	for _, side := range []string{"follower", "leader"} {
		t.Run(side, func(t *testing.T) { testReassignmentThrottled(t, side+".replication.throttled.rate") })
	}
}

func testReassignmentThrottled(t *testing.T, config string) {
	brokers := startTestCluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var seeds []string
	for _, tb := range brokers {
		seeds = append(seeds, tb.Addr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(64<<10), kgo.RequiredAcks(kgo.AllISRAcks()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopicOnController(t, ctx, brokers, 10*time.Second, "topic thr on brokers 1, 2, 3", "thr", [][]int32{{1, 2, 3}})
	waitUntil(t, 10*time.Second, "leader of thr-0", func() bool {
		p, ok := brokers[0].quorum.Image().Partition("thr", 0)
		return ok && p.Leader == 1 && len(p.ISR) == 3
	})

	// 2 MiB of records that do not compress.
	value := make([]byte, 1000)
	const n = 2048
	for i := range n {
		rand.Read(value)
		copy(value, fmt.Sprintf("record-%06d", i))
		r := &kgo.Record{Topic: "thr", Partition: 0, Value: slices.Clone(value)}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) { require.NoError(t, err) })
	}
	require.NoError(t, cl.Flush(ctx))

	const rate = 512 << 10
	ac, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: config, Value: kadm.StringPtr(fmt.Sprint(rate))}})
	require.NoError(t, err)
	for _, r := range ac {
		require.NoError(t, r.Err)
	}
	waitUntil(t, 10*time.Second, "throttle applied", func() bool {
		return brokers[3].throttles.follower.limited() || brokers[0].throttles.leader.limited()
	})

	start := time.Now()
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign("thr", 0, []int32{4, 2, 3})
	ar, err := adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	ar.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"thr": {0: {}}})
	require.NoError(t, err)
	require.Equal(t, []int32{4}, listed["thr"][0].AddingReplicas)
	require.Equal(t, []int32{1}, listed["thr"][0].RemovingReplicas)

	waitUntil(t, 90*time.Second, "thr-0 moved to 4,2,3 and led by 4", func() bool {
		p, _ := brokers[1].quorum.Image().Partition("thr", 0)
		return slices.Equal(p.Replicas, []int32{4, 2, 3}) && p.Leader == 4
	})
	took := time.Since(start)
	// About 2 MiB at 512 KiB/s with a one-second burst: at least 2 s.
	require.Greater(t, took, 2*time.Second, "the copy was not throttled")
	t.Logf("2 MiB copied under %s=%d in %v", config, rate, took.Round(time.Millisecond))
	waitUntil(t, 10*time.Second, "broker 1 deleted its copy", func() bool { return brokers[0].partitionOf("thr", 0) == nil })

	// Every record is there, read from the new leader.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds[1:]...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"thr": {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer consumer.Close()
	got := 0
	for got < n {
		fs := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) {
			require.Equal(t, fmt.Sprintf("record-%06d", got), string(r.Value[:13]))
			got++
		})
	}
}

// TestReassignmentAuthorization checks that a principal without ALTER (DESCRIBE for the list) on
// the cluster can neither move partitions, cancel, elect leaders, unregister a broker nor list
// reassignments, and that nothing changes; and that cluster ALTER and DESCRIBE allow them.
func TestReassignmentAuthorization(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:admin"))
	createTopics(t, tb, "guarded")
	ctx := context.Background()
	cl := newClient(t, tb.Addr())
	adm := kadm.NewClient(cl)

	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign("guarded", 0, []int32{1})
	_, err := adm.AlterPartitionAssignments(ctx, req)
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed)
	_, err = adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"guarded": {0: {}}})
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed)
	el := kmsg.NewPtrElectLeadersRequest()
	el.Version, el.ElectionType = 2, 1
	elResp, err := el.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, elResp.ErrorCode)
	un := kmsg.NewPtrUnregisterBrokerRequest()
	un.BrokerID = 1
	unResp, err := un.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, unResp.ErrorCode)
	_, registered := tb.quorum.Image().Brokers[1]
	require.True(t, registered, "the broker is still registered")
	require.Empty(t, tb.quorum.Image().Reassignments(nil))

	grant(t, tb, anon(kmsg.ACLResourceTypeCluster, kmsg.ACLResourcePatternTypeLiteral, "kafka-cluster", kmsg.ACLOperationAlter, kmsg.ACLPermissionTypeAllow))
	res, err := adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	res.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	elResp, err = el.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Zero(t, elResp.ErrorCode)
	_, err = adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"guarded": {0: {}}})
	require.NoError(t, err, "ALTER implies DESCRIBE")
}
