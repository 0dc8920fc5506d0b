package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/internal/testutil"
)

// createTopicsRaw sends one CreateTopics request on a plain connection through
// franz-go's wire encoding, as an attacker would, at the newest version.
func createTopicsRaw(ctx context.Context, t *testing.T, addr string, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsResponse {
	t.Helper()
	cl := newClient(t, addr, kgo.RequestRetries(0))
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = topics
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Len(t, resp.Topics, len(topics))
	return resp
}

func newTopic(name string, partitions int32, rf int16) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	return rt
}

// requireServes checks that the broker still creates, produces to and serves a topic.
func requireServes(ctx context.Context, t *testing.T, addr, topic string) {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	require.NoError(t, cl.ProduceSync(ctx, kgo.StringRecord("still serving")).FirstErr())
}

func TestHugeCreateTopicsRejected(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), func(c *Config) {
		c.MaxPartitionsPerTopic = 100
		c.MaxPartitionsPerRequest = 150
		c.MaxPartitionsPerBroker = 200
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	long := strings.Repeat("delete,", 1000)
	withConfig := newTopic("long-config", 1, 1)
	withConfig.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "cleanup.policy", Value: &long}}
	assigned := newTopic("wide-assignment", -1, -1)
	assigned.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{{Partition: 0, Replicas: make([]int32, 100000)}}

	for _, tc := range []struct {
		name   string
		topics []kmsg.CreateTopicsRequestTopic
		codes  []*kerr.Error
	}{
		{"max int32 partitions", []kmsg.CreateTopicsRequestTopic{newTopic("huge", 2147483647, 1)}, []*kerr.Error{kerr.InvalidPartitions}},
		{"per topic", []kmsg.CreateTopicsRequestTopic{newTopic("big", 101, 1)}, []*kerr.Error{kerr.InvalidPartitions}},
		{"per request", []kmsg.CreateTopicsRequestTopic{newTopic("a", 100, 1), newTopic("b", 100, 1)}, []*kerr.Error{nil, kerr.PolicyViolation}},
		{"per broker", []kmsg.CreateTopicsRequestTopic{newTopic("c", 100, 1)}, []*kerr.Error{kerr.PolicyViolation}},
		{"replication factor", []kmsg.CreateTopicsRequestTopic{newTopic("rf", 1, 32767)}, []*kerr.Error{kerr.InvalidReplicationFactor}},
		{"replica list", []kmsg.CreateTopicsRequestTopic{assigned}, []*kerr.Error{kerr.InvalidReplicaAssignment}},
		{"config value", []kmsg.CreateTopicsRequestTopic{withConfig}, []*kerr.Error{kerr.InvalidConfig}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := createTopicsRaw(ctx, t, tb.Addr(), tc.topics...)
			for i, want := range tc.codes {
				got := resp.Topics[i]
				if want == nil {
					require.Zero(t, got.ErrorCode, "topic %s", got.Topic)
					continue
				}
				require.Nil(t, tb.quorum.Image().Topic(got.Topic), "rejected topic %s reached the metadata log", got.Topic)
				require.Equal(t, want.Code, got.ErrorCode, "topic %s: %v", got.Topic, kerr.ErrorForCode(got.ErrorCode))
				require.NotNil(t, got.ErrorMessage)
				require.NotEmpty(t, *got.ErrorMessage)
			}
		})
	}

	// CreatePartitions is held to the same limits.
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "a", 2147483647
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	presp, err := req.RequestWith(ctx, newClient(t, tb.Addr()))
	require.NoError(t, err)
	require.Equal(t, kerr.InvalidPartitions.Code, presp.Topics[0].ErrorCode)
	require.Len(t, tb.quorum.Image().Topic("a").Partitions, 100)

	requireServes(ctx, t, tb.Addr(), "after-huge")
}

func TestHugeCreateTopicsForwarded(t *testing.T) {
	t.Parallel()
	brokers := startTestCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var follower *testBroker
	testutil.WaitFor(t, 20*time.Second, "a controller", func() bool {
		for _, tb := range brokers {
			if !tb.quorum.IsController() && tb.quorum.ControllerID() >= 0 {
				follower = tb
			}
		}
		return follower != nil
	})
	resp := createTopicsRaw(ctx, t, follower.Addr(), newTopic("huge", 2147483647, 1))
	require.Equal(t, kerr.InvalidPartitions.Code, resp.Topics[0].ErrorCode, "%v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	for _, tb := range brokers {
		require.Nil(t, tb.quorum.Image().Topic("huge"))
	}
	resp = createTopicsRaw(ctx, t, follower.Addr(), newTopic("fine", 2, 2))
	require.Zero(t, resp.Topics[0].ErrorCode)
	for _, tb := range brokers {
		requireServes(ctx, t, tb.Addr(), "fine")
	}

	// Client quotas set through a forwarding broker are in every broker's image.
	setQuota(ctx, t, kadm.NewClient(newClient(t, follower.Addr())), quotaEntity("user", "alice"), "producer_byte_rate", 4096)
	for _, tb := range brokers {
		testutil.WaitFor(t, 10*time.Second, "the quota on every broker", func() bool {
			return tb.quorum.Image().ClientQuotas[metadata.QuotaEntity{{Type: "user", Name: ptr("alice")}}.Key()].Values["producer_byte_rate"] == 4096
		})
	}
}

func TestHandlerPanicClosesOneConnection(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.MetricsListen = "127.0.0.1:0" })
	tb.beforeHandle = func(cc *conn, req kmsg.Request) {
		if cc.clientID == "panicky" && req.Key() == 3 {
			panic("injected")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	good := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("steady"), kgo.AllowAutoTopicCreation())
	require.NoError(t, good.ProduceSync(ctx, kgo.StringRecord("before")).FirstErr())

	bad := newClient(t, tb.Addr(), kgo.ClientID("panicky"), kgo.RequestRetries(0))
	_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, bad)
	require.Error(t, err, "the panicking request's connection must be closed")
	require.False(t, errors.Is(err, context.DeadlineExceeded), "closed, not left hanging: %v", err)

	require.NoError(t, good.ProduceSync(ctx, kgo.StringRecord("after")).FirstErr(), "other connections keep being served")
	fams := testutil.Scrape(t, tb.MetricsAddr())
	require.Equal(t, 1.0, value(fams, "sluice_request_handler_panics_total", map[string]string{"api": "Metadata"}))
}
