package broker

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// franz-go's client keeps a few background goroutines until its
		// process-wide pools drain.
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kgo.(*Client).reapConnectionsLoop"),
		// sarama's metrics library starts one process-wide ticker.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	)
}

// testBroker is a broker running in-process on a port chosen by the kernel.
type testBroker struct {
	*Broker
	cfg Config
	run *testutil.Running
}

func startTestBroker(t *testing.T, dir string, mutate ...func(*Config)) *testBroker {
	t.Helper()
	tb := launchTestBroker(t, dir, append([]func(*Config){func(c *Config) {
		c.OffsetsTopicNumPartitions = 4
		c.TransactionStateLogNumPartitions = 4
	}}, mutate...)...)
	tb.waitReady(t, 20*time.Second)
	return tb
}

// stop stops the broker (testutil.Running.Stop); again, or at cleanup, it does nothing.
func (tb *testBroker) stop(t *testing.T) { tb.run.Stop(t) }

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func TestProduceConsumeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	tb := startTestBroker(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("86400000")}, "orders")
	require.NoError(t, err)

	cl := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("orders"))
	const n = 300
	for i := range n {
		r := kgo.StringRecord("value-" + itoa(i))
		r.Key = []byte("key-" + itoa(i%7))
		require.NoError(t, cl.ProduceSync(ctx, r).FirstErr())
	}
	commitGroup := newClient(t, tb.Addr(), kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g1"), kgo.DisableAutoCommit())
	got := 0
	for got < 100 {
		fs := commitGroup.PollRecords(ctx, 100-got)
		require.NoError(t, fs.Err0())
		got += fs.NumRecords()
	}
	require.NoError(t, commitGroup.CommitUncommittedOffsets(ctx))
	commitGroup.Close()
	cl.Close()
	adm.Close()

	topicID := tb.topicByName("orders").id
	tb.stop(t)
	tb = startTestBroker(t, dir)
	require.Equal(t, topicID, tb.topicByName("orders").id, "topic IDs are stable across restarts")

	adm = kadm.NewClient(newClient(t, tb.Addr()))
	ends, err := adm.ListEndOffsets(ctx, "orders")
	require.NoError(t, err)
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	require.Equal(t, int64(n), total)

	offs, err := adm.FetchOffsets(ctx, "g1")
	require.NoError(t, err)
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	require.Equal(t, int64(got), committed, "committed offsets survive restart")

	cfgs, err := adm.DescribeTopicConfigs(ctx, "orders")
	require.NoError(t, err)
	rc, err := cfgs.On("orders", nil)
	require.NoError(t, err)
	found := false
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			found = true
			require.Equal(t, "86400000", c.MaybeValue())
			require.Equal(t, kmsg.ConfigSourceDynamicTopicConfig, c.Source)
		}
	}
	require.True(t, found)

	resume := newClient(t, tb.Addr(), kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g1"))
	rest := 0
	for rest < n-got {
		fs := resume.PollFetches(ctx)
		require.NoError(t, fs.Err0())
		rest += fs.NumRecords()
	}
	require.Equal(t, n-got, rest, "a group resumes from its committed offsets")
}

func itoa(i int) string { return strconv.Itoa(i) }

// rawRequest sends one frame and returns the connection.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	return c
}

func frame(key, version int16, correlation int32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(correlation))
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.SocketRequestMaxBytes = 1 << 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("survivor"), kgo.AllowAutoTopicCreation())
	require.NoError(t, cl.ProduceSync(ctx, kgo.StringRecord("before")).FirstErr())

	cases := map[string][]byte{
		"oversized frame":  binary.BigEndian.AppendUint32(nil, 2<<20),
		"unknown api key":  frame(9999, 0, 1, nil),
		"unsupported ver":  frame(0, 99, 1, nil),
		"truncated body":   frame(3, 12, 1, []byte{0xff}),
		"negative size":    binary.BigEndian.AppendUint32(nil, 0xfffffff0),
		"short header":     {0, 0, 0, 2, 0, 3},
		"garbage metadata": frame(3, 1, 7, []byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, tb.Addr())
			_, err := c.Write(data)
			require.NoError(t, err)
			_, err = io.ReadAll(c)
			require.NoError(t, err, "the broker closes the connection (EOF), it does not hang")
		})
	}
	require.NoError(t, cl.ProduceSync(ctx, kgo.StringRecord("after")).FirstErr())
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, "survivor")
	require.NoError(t, err)
	o, _ := ends.Lookup("survivor", 0)
	require.Equal(t, int64(2), o.Offset)
}

func TestApiVersionsUnsupportedVersion(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	c := rawConn(t, tb.Addr())
	_, err := c.Write(frame(18, 99, 42, nil))
	require.NoError(t, err)
	var size [4]byte
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	require.Equal(t, uint32(42), binary.BigEndian.Uint32(body))
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	require.NoError(t, resp.ReadFrom(body[4:]))
	require.Equal(t, int16(35), resp.ErrorCode)
	require.Len(t, resp.ApiKeys, 1)
	require.Equal(t, int16(18), resp.ApiKeys[0].ApiKey)
	require.Equal(t, int16(4), resp.ApiKeys[0].MaxVersion)
}

func TestApiVersionsListsRegistrations(t *testing.T) {
	want := []int16{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 35, 36, 37, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 55, 56, 58, 60, 61, 62, 63, 64, 65, 66, 67, 80, 81}
	var got []int16
	for _, k := range apiVersionKeys() {
		got = append(got, k.ApiKey)
		require.LessOrEqual(t, k.MinVersion, k.MaxVersion)
	}
	require.Equal(t, want, got)
	require.Equal(t, int16(0), apis[11].min, "librdkafka needs JoinGroup v0")
}

func TestRecreatedTopicStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	tb := startTestBroker(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("again"))
	adm := kadm.NewClient(cl)
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "again")
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, cl.ProduceSync(ctx, kgo.StringRecord("old-"+itoa(i))).FirstErr())
	}
	_, err = adm.DeleteTopics(ctx, "again")
	require.NoError(t, err)
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "again")
	require.NoError(t, err)
	// A new client: kgo fails records of a client that saw the old topic ID.
	fresh := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("again"))
	require.NoError(t, fresh.ProduceSync(ctx, kgo.StringRecord("new")).FirstErr())
	fresh.Close()

	check := func(addr string) {
		c := newClient(t, addr, kgo.ConsumeTopics("again"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fs := c.PollFetches(ctx)
		require.NoError(t, fs.Err0())
		var got []string
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		require.Equal(t, []string{"new"}, got)
		c.Close()
	}
	check(tb.Addr())
	cl.Close()
	tb.stop(t)
	tb = startTestBroker(t, dir)
	check(tb.Addr())
}
