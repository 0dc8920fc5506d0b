package group

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestKafkaGoReader runs segmentio/kafka-go's group reader, which speaks
// FindCoordinator v0, JoinGroup v1/v2, SyncGroup/Heartbeat/LeaveGroup v0,
// OffsetCommit v2 and OffsetFetch v1.
func TestKafkaGoReader(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, testConfig(), newMemStore())
	srv := startWireServer(t, c, map[string]int32{"t": 4})
	adm := kadm.NewClient(newAdminClient(t, srv.addr()))

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{srv.addr()},
		GroupID:           "kg",
		Topic:             "t",
		HeartbeatInterval: 50 * time.Millisecond,
		SessionTimeout:    2 * time.Second,
		RebalanceTimeout:  2 * time.Second,
		MaxWait:           100 * time.Millisecond,
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rctx.Err() == nil {
			_, _ = r.FetchMessage(rctx)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; r.Close() })

	testutil.WaitFor(t, 10*time.Second, `stableWith(ctx, adm, "kg", 1, 4)`, func() bool { return stableWith(ctx, adm, "kg", 1, 4) })
	require.NoError(t, r.CommitMessages(ctx, kafka.Message{Topic: "t", Partition: 2, Offset: 9}))
	require.Equal(t, int64(10), c.CommittedOffsets("kg")["t"][2])
	for _, api := range []string{"JoinGroup", "SyncGroup", "Heartbeat", "OffsetCommit", "OffsetFetch"} {
		t.Logf("kafka-go %s versions: %v", api, srv.versionsSeen(api))
	}
}

// TestSaramaConsumerGroup runs IBM/sarama's consumer group at the Kafka 2.8
// protocol versions.
func TestSaramaConsumerGroup(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, testConfig(), newMemStore())
	srv := startWireServer(t, c, map[string]int32{"t": 4})
	adm := kadm.NewClient(newAdminClient(t, srv.addr()))

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.Group.Heartbeat.Interval = 50 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 2 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 2 * time.Second
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cg, err := sarama.NewConsumerGroup([]string{srv.addr()}, "sg", cfg)
	require.NoError(t, err)
	h := &saramaHandler{claimed: make(chan sarama.ConsumerGroupSession, 1)}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for gctx.Err() == nil {
			if err := cg.Consume(gctx, []string{"t"}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				t.Logf("sarama consume: %v", err)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; require.NoError(t, cg.Close()) })

	testutil.WaitFor(t, 10*time.Second, `stableWith(ctx, adm, "sg", 1, 4)`, func() bool { return stableWith(ctx, adm, "sg", 1, 4) })
	sess := recv(t, h.claimed)
	sess.MarkOffset("t", 1, 5, "")
	sess.Commit()
	require.Equal(t, int64(5), c.CommittedOffsets("sg")["t"][1])
	for _, api := range []string{"JoinGroup", "SyncGroup", "Heartbeat", "OffsetCommit", "OffsetFetch"} {
		t.Logf("sarama %s versions: %v", api, srv.versionsSeen(api))
	}
}

type saramaHandler struct {
	claimed chan sarama.ConsumerGroupSession
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	select {
	case h.claimed <- s:
	default:
	}
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-claim.Messages():
		case <-s.Context().Done():
			return nil
		}
	}
}
