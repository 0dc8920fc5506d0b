package broker

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupRejoinsRecreatedTopic: a librdkafka group consumer subscribed to a
// topic with 10 partitions keeps consuming after the topic is deleted and
// created again with 3.
func TestGroupRejoinsRecreatedTopic(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 10, 1, nil, "recreated")
	require.NoError(t, err)
	prod := newClient(t, tb.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(partitions int, prefix string) {
		for p := range partitions {
			r := kgo.StringRecord(prefix + strconv.Itoa(p))
			r.Topic, r.Partition = "recreated", int32(p)
			require.NoError(t, prod.ProduceSync(ctx, r).FirstErr())
		}
	}
	produce(10, "before-")

	c := startLibrdkafka(t, "consume.py", tb.Addr(), "recreate-group", "recreated", "120")
	seen := map[string]bool{}
	for len(seen) < 10 {
		e := c.next(t, 60*time.Second, "the records before", func(e rdkEvent) bool { return e.Event == "msg" })
		seen[e.Value] = true
	}

	_, err = adm.DeleteTopics(ctx, "recreated")
	require.NoError(t, err)
	_, err = adm.CreateTopic(ctx, 3, 1, nil, "recreated")
	require.NoError(t, err)
	prod.Close()
	prod = newClient(t, tb.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce(3, "after-")
	for len(seen) < 13 {
		e := c.next(t, 60*time.Second, "the records of the new topic", func(e rdkEvent) bool { return e.Event == "msg" })
		seen[e.Value] = true
	}
}

// TestLibrdkafkaConsumerCloseIsPrompt closes a librdkafka group consumer that
// is waiting in a long-poll fetch: LeaveGroup must end the member's fetch wait
// and the close must not wait for a broker-side timeout.
func TestLibrdkafkaConsumerCloseIsPrompt(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 3, 1, nil, "closing")
	require.NoError(t, err)
	prod := newClient(t, tb.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	c := startLibrdkafka(t, "consume.py", tb.Addr(), "closing-group", "closing", "120", `{"fetch.wait.max.ms": 5000}`)
	c.next(t, 60*time.Second, "the assignment", func(e rdkEvent) bool { return e.Event == "assign" })
	r := kgo.StringRecord("stop")
	r.Topic, r.Partition = "closing", 0
	require.NoError(t, prod.ProduceSync(ctx, r).FirstErr())
	e := c.next(t, 60*time.Second, "the consumer closed", func(e rdkEvent) bool { return e.Event == "closed" })
	t.Logf("librdkafka consumer close took %.3fs", e.Seconds)
}

// TestParkedFetchEndsOnNextRequestOrClose: a fetch waiting for data (60 s max
// wait) is answered as soon as the client sends another request on the same
// connection (clients that share a connection for fetches and group requests
// would otherwise hold their LeaveGroup for the max wait), and ends when the
// client closes the connection.
func TestParkedFetchEndsOnNextRequestOrClose(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := kadm.NewClient(newClient(t, tb.Addr())).CreateTopic(ctx, 1, 1, nil, "parked")
	require.NoError(t, err)

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.ReplicaID, fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 11, -1, 60000, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "parked"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	c := rawConn(t, tb.Addr()) // 10 s deadline, well below the fetch's 60 s
	_, err = c.Write(frame(1, 11, 1, fetch.AppendTo(nil)))
	require.NoError(t, err)
	_, err = c.Write(frame(18, 0, 2, nil))
	require.NoError(t, err)
	for _, want := range []uint32{1, 2} {
		var size [4]byte
		_, err = io.ReadFull(c, size[:])
		require.NoError(t, err, "response %d before the fetch's max wait", want)
		body := make([]byte, binary.BigEndian.Uint32(size[:]))
		_, err = io.ReadFull(c, body)
		require.NoError(t, err)
		require.Equal(t, want, binary.BigEndian.Uint32(body), "responses in request order")
	}

	// A parked fetch of a connection the client closed ends with it.
	base := connCount(tb.Broker)
	c2, err := net.Dial("tcp", tb.Addr())
	require.NoError(t, err)
	_, err = c2.Write(frame(1, 11, 1, fetch.AppendTo(nil)))
	require.NoError(t, err)
	waitUntil(t, 20*time.Second, "the fetch is parked", func() bool { return connCount(tb.Broker) == base+1 })
	require.NoError(t, c2.Close())
	waitUntil(t, 20*time.Second, "the connection is gone on the broker", func() bool { return connCount(tb.Broker) == base })
}

func connCount(b *Broker) int {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	return len(b.conns)
}
