package broker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
