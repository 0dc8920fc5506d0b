package clienttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

func kafkaGoReader(addr, group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
		GroupID:           group,
		Topic:             topic,
		StartOffset:       kafka.FirstOffset,
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		RebalanceTimeout:  10 * time.Second,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		MaxAttempts:       5,
	})
}

// fetchAndCommit fetches n messages with r, committing each synchronously.
func fetchAndCommit(t *testing.T, r *kafka.Reader, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []kafka.Message
	for len(got) < n {
		m, err := r.FetchMessage(ctx)
		require.NoError(t, err, "after %d of %d messages", len(got), n)
		require.NoError(t, r.CommitMessages(ctx, m))
		got = append(got, m)
	}
	return got
}

func TestKafkaGo(t *testing.T) {
	b := startBroker(t)
	topic, group := uniqueName("kafkago"), uniqueName("kafkago-group")

	conn, err := kafka.Dial("tcp", b.Addr)
	require.NoError(t, err)
	defer conn.Close()
	controller, err := conn.Controller()
	require.NoError(t, err)
	cconn, err := kafka.Dial("tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	require.NoError(t, err)
	defer cconn.Close()
	require.NoError(t, cconn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1}))
	testutil.WaitFor(t, 10*time.Second, "three partitions of "+topic, func() bool {
		ps, err := conn.ReadPartitions(topic)
		return err == nil && len(ps) == 3
	})

	// An own Transport, not kafka.DefaultTransport, so its pooled
	// connections can be closed at the end instead of leaking.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Transport:    transport,
		Addr:         kafka.TCP(b.Addr),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	write := func(prefix string, n int) {
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("key-%d", i%7)), Value: []byte(fmt.Sprintf("%s/%d", prefix, i))}
		}
		require.NoError(t, w.WriteMessages(testCtx(t), msgs...))
	}
	write("first", 150)

	r1 := kafkaGoReader(b.Addr, group, topic)
	got := fetchAndCommit(t, r1, 150)
	require.NoError(t, r1.Close())

	keyPartition := map[string]int{}
	lastSeq := map[string]int{}
	values := map[string]bool{}
	for _, m := range got {
		k := string(m.Key)
		if p, ok := keyPartition[k]; ok {
			require.Equal(t, p, m.Partition, "key %s in two partitions", k)
		}
		keyPartition[k] = m.Partition
		seq, err := strconv.Atoi(strings.TrimPrefix(string(m.Value), "first/"))
		require.NoError(t, err)
		if last, ok := lastSeq[k]; ok {
			require.Greater(t, seq, last, "key %s out of order", k)
		}
		lastSeq[k] = seq
		require.False(t, values[string(m.Value)], "duplicate %s", m.Value)
		values[string(m.Value)] = true
	}

	// A new reader in the same group resumes after the committed messages.
	write("second", 30)
	r2 := kafkaGoReader(b.Addr, group, topic)
	defer r2.Close()
	got = fetchAndCommit(t, r2, 30)
	for _, m := range got {
		require.True(t, strings.HasPrefix(string(m.Value), "second/"), "committed message %s delivered again", m.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	m, err := r2.FetchMessage(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "expected no more messages, got %q (err %v)", m.Value, err)
}
