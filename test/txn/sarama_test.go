package txn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// saramaConfig is a sarama configuration for a transactional producer with the given id, and a
// read_committed consumer.
func saramaConfig(txnID string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_8_0_0
	c.ClientID = "sluice-txn-test"
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Retry.Max = 20
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Transaction.ID = txnID
	c.Producer.Transaction.Retry.Max = 100
	c.Producer.Transaction.Retry.Backoff = 200 * time.Millisecond
	c.Net.MaxOpenRequests = 1
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	return c
}

// saramaProducer returns a sarama transactional sync producer, closed at cleanup.
func (d *deployment) saramaProducer(t *testing.T, txnID string) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer(d.cl.Bootstrap(), saramaConfig(txnID))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// saramaRead reads every partition of topic from the start to the record whose value is until with a
// sarama consumer at the given isolation level.
func (d *deployment) saramaRead(t *testing.T, topic string, level sarama.IsolationLevel, until string) map[int32][]string {
	t.Helper()
	cfg := saramaConfig("")
	cfg.Consumer.IsolationLevel = level
	c, err := sarama.NewConsumer(d.cl.Bootstrap(), cfg)
	require.NoError(t, err)
	defer c.Close()
	parts, err := c.Partitions(topic)
	require.NoError(t, err)
	got := map[int32][]string{}
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		require.NoError(t, err)
		timeout := time.After(time.Minute)
	read:
		for {
			select {
			case m := <-pc.Messages():
				v := string(m.Value)
				if v == until {
					break read
				}
				if !strings.HasPrefix(v, sentinel) {
					got[p] = append(got[p], v)
				}
			case err := <-pc.Errors():
				t.Logf("sarama consume %s/%d: %v", topic, p, err)
			case <-timeout:
				t.Fatalf("sarama %v read of %s/%d did not reach %s within a minute; got %d values", level, topic, p, until, len(got[p]))
			}
		}
		require.NoError(t, pc.Close())
	}
	return got
}

// TestSaramaConsumeTransformProduce runs a consume-transform-produce loop with sarama's
// transactional producer: per input partition, one transaction writes the transformed records and
// commits the consumed offsets with AddMessageToTxn. A transaction that also commits offsets is
// aborted first. read_committed (franz-go and sarama alike) shows each input record once and nothing
// of the aborted transaction, read_uncommitted shows it, and the group's offsets are those of the
// committed transactions.
func TestSaramaConsumeTransformProduce(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		const (
			parts = 2
			n     = 40
		)
		in, out := uniqueName("sarama-in"), uniqueName("sarama-out")
		d.createTopic(t, in, parts)
		d.createTopic(t, out, parts)
		d.producePlain(t, in, -1, numbered("in-", n)...)
		group := uniqueName("sarama-etl")
		p := d.saramaProducer(t, uniqueName("sarama"))
		require.True(t, p.IsTransactional())

		c, err := sarama.NewConsumer(d.cl.Bootstrap(), saramaConfig(""))
		require.NoError(t, err)
		defer c.Close()
		for part := range int32(parts) {
			pc, err := c.ConsumePartition(in, part, sarama.OffsetOldest)
			require.NoError(t, err)
			var batch []*sarama.ConsumerMessage
			for len(batch) < n/parts {
				select {
				case m := <-pc.Messages():
					batch = append(batch, m)
				case err := <-pc.Errors():
					t.Fatalf("consume %s/%d: %v", in, part, err)
				case <-time.After(time.Minute):
					t.Fatalf("consume %s/%d: %d of %d records after a minute", in, part, len(batch), n/parts)
				}
			}
			require.NoError(t, pc.Close())

			// A transaction that writes and commits offsets, then aborts: none of it may count.
			require.NoError(t, p.BeginTxn())
			_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: out, Partition: part, Value: sarama.StringEncoder(fmt.Sprintf("ABORTED-%d", part))})
			require.NoError(t, err)
			require.NoError(t, p.AddMessageToTxn(batch[len(batch)-1], group, nil))
			require.NoError(t, p.AbortTxn())

			require.NoError(t, p.BeginTxn())
			for _, m := range batch {
				_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: out, Partition: part, Value: sarama.StringEncoder("out:" + string(m.Value))})
				require.NoError(t, err)
				require.NoError(t, p.AddMessageToTxn(m, group, nil))
			}
			require.NoError(t, p.CommitTxn())
			require.Equal(t, sarama.ProducerTxnFlagReady, p.TxnStatus())
		}

		s := d.writeSentinels(t, out)
		committed, err := d.readTo(t, out, kgo.ReadCommitted(), s, 2*time.Minute)
		require.NoError(t, err)
		want := make([]string, n)
		for i, v := range numbered("in-", n) {
			want[i] = "out:" + v
		}
		require.ElementsMatch(t, want, all(committed))
		require.Equal(t, committed, d.saramaRead(t, out, sarama.ReadCommitted, s), "sarama's read_committed consumer sees what franz-go's does")
		uncommitted := d.saramaRead(t, out, sarama.ReadUncommitted, s)
		require.ElementsMatch(t, append(want, "ABORTED-0", "ABORTED-1"), all(uncommitted))

		offs, err := d.admin(t).FetchOffsets(testCtx(t, 30*time.Second), group)
		require.NoError(t, err)
		offs.Each(func(o kadm.OffsetResponse) {
			require.Equal(t, int64(n/parts), o.At, "committed offset of %s/%d", o.Topic, o.Partition)
		})
	})
}

// TestSaramaFencing starts a transaction with one sarama producer and then creates a second one with
// the same transactional id: the first one's commit fails as fenced and its records stay invisible to
// read_committed.
func TestSaramaFencing(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		topic := uniqueName("sarama-fencing")
		d.createTopic(t, topic, 1)
		id := uniqueName("sarama-fencing")

		zombie := d.saramaProducer(t, id)
		require.NoError(t, zombie.BeginTxn())
		for _, v := range numbered("zombie-", 5) {
			_, _, err := zombie.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
			require.NoError(t, err)
		}

		fresh := d.saramaProducer(t, id) // InitProducerId fences the zombie
		require.NoError(t, fresh.BeginTxn())
		for _, v := range numbered("fresh-", 5) {
			_, _, err := fresh.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
			require.NoError(t, err)
		}
		require.NoError(t, fresh.CommitTxn())

		err := zombie.CommitTxn()
		require.Error(t, err, "the fenced producer's commit must fail")
		require.True(t, errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch),
			"want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH, got %v", err)
		require.NotZero(t, zombie.TxnStatus()&sarama.ProducerTxnFlagFatalError, "a fenced producer is in a fatal state")

		require.ElementsMatch(t, numbered("fresh-", 5), all(d.readBack(t, topic, kgo.ReadCommitted())))
		require.ElementsMatch(t, concat(numbered("zombie-", 5), numbered("fresh-", 5)), all(d.readBack(t, topic, kgo.ReadUncommitted())))
	})
}
