package clienttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

// topicConfig returns the value of one config of topic as described by the broker.
func topicConfig(t *testing.T, adm *kadm.Client, topic, name string) string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(testCtx(t), topic)
	require.NoError(t, err)
	rc, err := rcs.On(topic, nil)
	require.NoError(t, err)
	require.NoError(t, rc.Err)
	for _, c := range rc.Configs {
		if c.Key == name {
			return c.MaybeValue()
		}
	}
	t.Fatalf("topic %s has no config %s", topic, name)
	return ""
}

// TestKadm walks the admin APIs kadm offers over one broker. The steps share
// state (a topic, a group) and run in order.
func TestKadm(t *testing.T) {
	b := startBroker(t)
	// kgo answers kadm's Metadata requests from a cache younger than
	// MetadataMinAge (default 5s); keep it short so deletes show at once.
	cl := newKgo(t, b.Addr, kgo.MetadataMinAge(50*time.Millisecond))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	topic := uniqueName("kadm")
	other := uniqueName("kadm-other")

	t.Run("create topics", func(t *testing.T) {
		resps, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, topic, other)
		require.NoError(t, err)
		for _, r := range resps.Sorted() {
			require.NoError(t, r.Err, r.Topic)
			require.Equal(t, int32(3), r.NumPartitions)
		}
		_, err = adm.CreateTopic(ctx, 1, 1, nil, topic)
		require.ErrorIs(t, err, kerr.TopicAlreadyExists)
		listed, err := adm.ListTopics(ctx)
		require.NoError(t, err)
		require.True(t, listed.Has(topic))
		require.True(t, listed.Has(other))
	})

	t.Run("describe configs", func(t *testing.T) {
		require.Equal(t, "3600000", topicConfig(t, adm, topic, "retention.ms"))
		require.NotEmpty(t, topicConfig(t, adm, topic, "cleanup.policy"))
		brokers, err := adm.DescribeBrokerConfigs(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, brokers)
		for _, rc := range brokers {
			require.NoError(t, rc.Err)
		}
	})

	t.Run("incremental alter configs", func(t *testing.T) {
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")},
			{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("2000000")},
		}, topic)
		require.NoError(t, err)
		for _, r := range resps {
			require.NoError(t, r.Err)
		}
		require.Equal(t, "7200000", topicConfig(t, adm, topic, "retention.ms"))
		require.Equal(t, "2000000", topicConfig(t, adm, topic, "max.message.bytes"))

		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "max.message.bytes"}}, topic)
		require.NoError(t, err)
		for _, r := range resps {
			require.NoError(t, r.Err)
		}
		require.NotEqual(t, "2000000", topicConfig(t, adm, topic, "max.message.bytes"))
		require.Equal(t, "7200000", topicConfig(t, adm, topic, "retention.ms"), "incremental delete of one key kept the others")
	})

	t.Run("legacy alter configs", func(t *testing.T) {
		// AlterConfigs (key 33) replaces the whole set: retention.ms set
		// above must fall back to its default.
		resps, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{
			{Name: "segment.ms", Value: kadm.StringPtr("600000")},
		}, topic)
		require.NoError(t, err)
		for _, r := range resps {
			require.NoError(t, r.Err)
		}
		require.Equal(t, "600000", topicConfig(t, adm, topic, "segment.ms"))
		require.NotEqual(t, "7200000", topicConfig(t, adm, topic, "retention.ms"))
	})

	t.Run("invalid config is rejected", func(t *testing.T) {
		if isKfake {
			t.Skip("kfake does not validate config values")
		}
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("not-a-number")},
		}, topic)
		require.NoError(t, err)
		require.Len(t, resps, 1)
		require.Error(t, resps[0].Err)
	})

	t.Run("create partitions", func(t *testing.T) {
		resps, err := adm.CreatePartitions(ctx, 2, topic)
		require.NoError(t, err)
		r, err := resps.On(topic, nil)
		require.NoError(t, err)
		require.NoError(t, r.Err)
		testutil.WaitFor(t, 10*time.Second, "5 partitions in metadata", func() bool {
			md, err := adm.Metadata(ctx, topic)
			return err == nil && len(md.Topics[topic].Partitions) == 5
		})
	})

	// Ten records into partition 0 with timestamps base+0s .. base+9s.
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	t.Run("list offsets", func(t *testing.T) {
		prod := newKgo(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		var rs []*kgo.Record
		for i := range 10 {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Timestamp: base.Add(time.Duration(i) * time.Second), Value: []byte(fmt.Sprint(i))})
		}
		require.NoError(t, prod.ProduceSync(ctx, rs...).FirstErr())

		start, err := adm.ListStartOffsets(ctx, topic)
		require.NoError(t, err)
		require.NoError(t, start.Error())
		end, err := adm.ListEndOffsets(ctx, topic)
		require.NoError(t, err)
		require.NoError(t, end.Error())
		for p := range int32(5) {
			s, _ := start.Lookup(topic, p)
			e, _ := end.Lookup(topic, p)
			require.Equal(t, int64(0), s.Offset, "start of %d", p)
			if p == 0 {
				require.Equal(t, int64(10), e.Offset)
			} else {
				require.Equal(t, int64(0), e.Offset, "end of empty partition %d", p)
			}
		}
		for _, tc := range []struct {
			milli int64
			want  int64
		}{
			{base.UnixMilli(), 0},
			{base.Add(4 * time.Second).UnixMilli(), 4},
			{base.Add(4*time.Second + time.Millisecond).UnixMilli(), 5},
			{base.Add(time.Hour).UnixMilli(), 10}, // after the last: the end offset
		} {
			after, err := adm.ListOffsetsAfterMilli(ctx, tc.milli, topic)
			require.NoError(t, err)
			o, ok := after.Lookup(topic, 0)
			require.True(t, ok)
			require.NoError(t, o.Err)
			require.Equal(t, tc.want, o.Offset, "offset after %d", tc.milli)
		}
	})

	t.Run("delete records", func(t *testing.T) {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 6})
		resps, err := adm.DeleteRecords(ctx, os)
		require.NoError(t, err)
		require.NoError(t, resps.Error())
		r, ok := resps.Lookup(topic, 0)
		require.True(t, ok)
		require.Equal(t, int64(6), r.LowWatermark)
		start, err := adm.ListStartOffsets(ctx, topic)
		require.NoError(t, err)
		s, _ := start.Lookup(topic, 0)
		require.Equal(t, int64(6), s.Offset)

		cons := newKgo(t, b.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		got := consumeN(t, cons, 4, 10*time.Second)
		require.Equal(t, int64(6), got[0].Offset)
		require.Equal(t, "6", string(got[0].Value))
	})

	t.Run("describe log dirs", func(t *testing.T) {
		dirs, err := adm.DescribeAllLogDirs(ctx, nil)
		require.NoError(t, err)
		require.NotEmpty(t, dirs)
		found := false
		for _, bdirs := range dirs {
			require.NoError(t, bdirs.Error())
			if p, ok := bdirs.LookupPartition(topic, 0); ok {
				found = true
				require.Positive(t, p.Size, "partition 0 holds records")
			}
		}
		require.True(t, found, "topic %s partition 0 in some log dir", topic)
	})

	t.Run("describe cluster", func(t *testing.T) {
		brokers, err := adm.ListBrokers(ctx)
		require.NoError(t, err)
		require.Len(t, brokers, 1)
		require.Equal(t, b.Addr, fmt.Sprintf("%s:%d", brokers[0].Host, brokers[0].Port))

		req := kmsg.NewPtrDescribeClusterRequest()
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		require.Zero(t, resp.ErrorCode)
		require.NotEmpty(t, resp.ClusterID)
		require.Len(t, resp.Brokers, 1)
		require.Equal(t, brokers[0].NodeID, resp.ControllerID)
	})

	group := uniqueName("kadm-group")
	t.Run("list describe delete groups", func(t *testing.T) {
		cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(6*time.Second))
		require.NoError(t, err)
		defer cons.Close()
		consumeN(t, cons, 4, 20*time.Second)
		require.NoError(t, cons.CommitUncommittedOffsets(ctx))

		listed, err := adm.ListGroups(ctx)
		require.NoError(t, err)
		require.Contains(t, listed.Groups(), group)
		described, err := adm.DescribeGroups(ctx, group)
		require.NoError(t, err)
		dg := described[group]
		require.NoError(t, dg.Err)
		require.Equal(t, "Stable", dg.State)
		require.Equal(t, "consumer", dg.ProtocolType)
		require.Len(t, dg.Members, 1)

		fetched, err := adm.FetchOffsets(ctx, group)
		require.NoError(t, err)
		require.NoError(t, fetched.Error())
		o, ok := fetched.Lookup(topic, 0)
		require.True(t, ok)
		require.Equal(t, int64(10), o.At)

		// A group with members cannot be deleted.
		_, err = adm.DeleteGroup(ctx, group)
		require.ErrorIs(t, err, kerr.NonEmptyGroup)

		cons.Close()
		testutil.WaitFor(t, 10*time.Second, "group to be empty", func() bool {
			d, err := adm.DescribeGroups(ctx, group)
			return err == nil && d[group].State == "Empty"
		})
		_, err = adm.DeleteGroup(ctx, group)
		require.NoError(t, err)
		listed, err = adm.ListGroups(ctx)
		require.NoError(t, err)
		require.NotContains(t, listed.Groups(), group)
	})

	t.Run("delete topics", func(t *testing.T) {
		resps, err := adm.DeleteTopics(ctx, topic, other)
		require.NoError(t, err)
		for _, r := range resps.Sorted() {
			require.NoError(t, r.Err, r.Topic)
		}
		testutil.WaitFor(t, 10*time.Second, "deleted topics gone from metadata", func() bool {
			listed, err := adm.ListTopics(context.Background())
			return err == nil && !listed.Has(topic) && !listed.Has(other)
		})
		// The name can be used again, empty.
		createTopic(t, b.Addr, topic, 1, nil)
		testutil.WaitFor(t, 10*time.Second, "recreated topic to list end offset 0", func() bool {
			end, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				return false
			}
			e, ok := end.Lookup(topic, 0)
			return ok && e.Err == nil && e.Offset == 0
		})
	})
}
