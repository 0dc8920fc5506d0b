package clienttest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "sluice-clienttest"
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	return c
}

// saramaHandler is a sarama.ConsumerGroupHandler that marks every message and
// remembers how many partitions its member holds in the current session.
type saramaHandler struct {
	topic string
	onMsg func(*sarama.ConsumerMessage)

	mu     sync.Mutex
	claims int
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = len(s.Claims()[h.topic])
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = 0
	return nil
}

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		h.onMsg(msg)
		s.MarkMessage(msg, "")
	}
	return nil
}

func (h *saramaHandler) claimCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.claims
}

// startSaramaMember joins group and consumes topic until the returned stop
// function is called; stop closes the group, which commits marked offsets.
func startSaramaMember(t *testing.T, addr, group, topic string, cfg *sarama.Config, onMsg func(*sarama.ConsumerMessage)) (*saramaHandler, func()) {
	t.Helper()
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	require.NoError(t, err)
	h := &saramaHandler{topic: topic, onMsg: onMsg}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				if ctx.Err() == nil {
					t.Errorf("sarama consume: %v", err)
				}
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			require.NoError(t, cg.Close())
		})
	}
	t.Cleanup(stop)
	return h, stop
}

func TestSarama(t *testing.T) {
	b := startBroker(t)
	for _, version := range []sarama.KafkaVersion{sarama.V2_8_0_0, sarama.V0_11_0_0} {
		t.Run(version.String(), func(t *testing.T) {
			cfg := saramaConfig(version)
			topic, group := uniqueName("sarama"), uniqueName("sarama-group")

			admin, err := sarama.NewClusterAdmin([]string{b.Addr}, cfg)
			require.NoError(t, err)
			defer admin.Close()
			require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false))
			testutil.WaitFor(t, 10*time.Second, "topic in ListTopics", func() bool {
				topics, err := admin.ListTopics()
				return err == nil && topics[topic].NumPartitions == 4
			})

			prod, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
			require.NoError(t, err)
			defer prod.Close()
			produce := func(prefix string, n int) map[string]int32 {
				msgs := make([]*sarama.ProducerMessage, n)
				for i := range msgs {
					key := fmt.Sprintf("key-%d", i%9)
					msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(fmt.Sprintf("%s/%d", prefix, i))}
				}
				require.NoError(t, prod.SendMessages(msgs))
				keyPartition := map[string]int32{}
				for _, m := range msgs {
					k := string(m.Key.(sarama.StringEncoder))
					if p, ok := keyPartition[k]; ok {
						require.Equal(t, p, m.Partition, "key %s in two partitions", k)
					}
					keyPartition[k] = m.Partition
				}
				return keyPartition
			}
			keyPartition := produce("first", 200)

			var mu sync.Mutex
			seen := map[string]*sarama.ConsumerMessage{}
			lastOffset := map[int32]int64{}
			onMsg := func(m *sarama.ConsumerMessage) {
				mu.Lock()
				defer mu.Unlock()
				seen[string(m.Value)] = m
				if m.Offset <= lastOffset[m.Partition]-1 {
					t.Errorf("partition %d went back from %d to %d", m.Partition, lastOffset[m.Partition]-1, m.Offset)
				}
				lastOffset[m.Partition] = m.Offset + 1
			}
			seenCount := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

			h1, stop1 := startSaramaMember(t, b.Addr, group, topic, cfg, onMsg)
			h2, stop2 := startSaramaMember(t, b.Addr, group, topic, cfg, onMsg)
			testutil.WaitFor(t, 30*time.Second, "two members with two partitions each", func() bool {
				return h1.claimCount() == 2 && h2.claimCount() == 2
			})
			testutil.WaitFor(t, 20*time.Second, "200 records consumed", func() bool { return seenCount() == 200 })
			mu.Lock()
			for v, m := range seen {
				require.Equal(t, keyPartition[string(m.Key)], m.Partition, "record %s", v)
			}
			mu.Unlock()
			stop1()
			stop2()

			// Offsets were committed on close: a new member sees only new records.
			produce("second", 50)
			mu.Lock()
			seen = map[string]*sarama.ConsumerMessage{}
			mu.Unlock()
			_, stop3 := startSaramaMember(t, b.Addr, group, topic, cfg, onMsg)
			testutil.WaitFor(t, 30*time.Second, "50 new records consumed", func() bool { return seenCount() >= 50 })
			stop3()
			mu.Lock()
			require.Len(t, seen, 50)
			for v := range seen {
				require.Regexp(t, `^second/`, v, "committed record delivered again")
			}
			mu.Unlock()

			require.NoError(t, admin.DeleteTopic(topic))
			testutil.WaitFor(t, 10*time.Second, "topic gone from ListTopics", func() bool {
				topics, err := admin.ListTopics()
				_, exists := topics[topic]
				return err == nil && !exists
			})
		})
	}
}
