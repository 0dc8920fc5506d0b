package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/internal/testutil"
)

func quotaEntity(kv ...string) kadm.ClientQuotaEntity {
	var e kadm.ClientQuotaEntity
	for i := 0; i < len(kv); i += 2 {
		c := kadm.ClientQuotaEntityComponent{Type: kv[i]}
		if kv[i+1] != "<default>" {
			c.Name = kadm.StringPtr(kv[i+1])
		}
		e = append(e, c)
	}
	return e
}

func setQuota(ctx context.Context, t *testing.T, adm *kadm.Client, e kadm.ClientQuotaEntity, key string, v float64) {
	t.Helper()
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: e, Ops: []kadm.AlterClientQuotaOp{{Key: key, Value: v}}}})
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err, r.ErrMessage)
	}
}

func describeAll(ctx context.Context, t *testing.T, adm *kadm.Client, strict bool, comps ...kadm.DescribeClientQuotaComponent) []string {
	t.Helper()
	d, err := adm.DescribeClientQuotas(ctx, strict, comps)
	require.NoError(t, err)
	var out []string
	for _, q := range d {
		for _, v := range q.Values {
			out = append(out, q.Entity.String()+" "+v.Key+"="+itoa(int(v.Value)))
		}
	}
	sort.Strings(out)
	return out
}

func TestClientQuotasAdmin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tb := startTestBroker(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))

	setQuota(ctx, t, adm, quotaEntity("user", "alice"), "producer_byte_rate", 1024)
	setQuota(ctx, t, adm, quotaEntity("user", "alice", "client-id", "app"), "consumer_byte_rate", 2048)
	setQuota(ctx, t, adm, quotaEntity("client-id", "<default>"), "request_percentage", 50)
	setQuota(ctx, t, adm, quotaEntity("user", "<default>"), "controller_mutation_rate", 5)

	all := []string{
		"{client-id=<default>} request_percentage=50",
		"{client-id=app, user=alice} consumer_byte_rate=2048",
		"{user=<default>} controller_mutation_rate=5",
		"{user=alice} producer_byte_rate=1024",
	}
	require.Equal(t, all, describeAll(ctx, t, adm, false))
	require.Equal(t, []string{all[1], all[3]},
		describeAll(ctx, t, adm, false, kadm.DescribeClientQuotaComponent{Type: "user", MatchName: kadm.StringPtr("alice")}))
	require.Equal(t, []string{all[3]},
		describeAll(ctx, t, adm, true, kadm.DescribeClientQuotaComponent{Type: "user", MatchName: kadm.StringPtr("alice")}))
	require.Equal(t, []string{all[2]},
		describeAll(ctx, t, adm, false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: kmsg.QuotasMatchTypeDefault}))

	// Bad input gets an error and changes nothing.
	for _, tc := range []struct {
		name string
		e    kadm.ClientQuotaEntity
		op   kadm.AlterClientQuotaOp
		code *kerr.Error
	}{
		{"unknown key", quotaEntity("user", "bob"), kadm.AlterClientQuotaOp{Key: "bytes_please", Value: 1}, kerr.InvalidConfig},
		{"negative", quotaEntity("user", "bob"), kadm.AlterClientQuotaOp{Key: "producer_byte_rate", Value: -1}, kerr.InvalidConfig},
		{"fraction of a byte", quotaEntity("user", "bob"), kadm.AlterClientQuotaOp{Key: "producer_byte_rate", Value: 1.5}, kerr.InvalidConfig},
		{"unknown entity", quotaEntity("ip", "1.2.3.4"), kadm.AlterClientQuotaOp{Key: "producer_byte_rate", Value: 1}, kerr.InvalidRequest},
		{"twice one type", quotaEntity("user", "a", "user", "b"), kadm.AlterClientQuotaOp{Key: "producer_byte_rate", Value: 1}, kerr.InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: tc.e, Ops: []kadm.AlterClientQuotaOp{tc.op}}})
			require.NoError(t, err)
			require.Len(t, res, 1)
			require.ErrorIs(t, res[0].Err, tc.code)
		})
	}
	require.Equal(t, all, describeAll(ctx, t, adm, false))

	// Removing a key; the quotas survive a restart (they are in the metadata log).
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: quotaEntity("user", "<default>"),
		Ops: []kadm.AlterClientQuotaOp{{Key: "controller_mutation_rate", Remove: true}}}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	tb.stop(t)
	tb = startTestBroker(t, dir)
	adm = kadm.NewClient(newClient(t, tb.Addr()))
	require.Equal(t, []string{all[0], all[1], all[3]}, describeAll(ctx, t, adm, false))
}

// TestProduceQuotaHeld runs a producer with a 1 MiB/s quota beside one without:
// the first is held to its quota, within 10% over 20 s, and sees throttle times
// but no errors; the second keeps its throughput.
func TestProduceQuotaHeld(t *testing.T) {
	t.Parallel()
	const quota = 1 << 20
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.MetricsListen = "127.0.0.1:0" })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopics(ctx, 1, 1, nil, "throttled", "free")
	require.NoError(t, err)
	setQuota(ctx, t, adm, quotaEntity("client-id", "slow-app"), "producer_byte_rate", quota)

	type producer struct {
		acked, errs, throttles atomic.Int64
	}
	// run produces 16 KiB records as fast as the broker takes them, or at most
	// pace per second when pace > 0.
	run := func(ctx context.Context, clientID, topic string, pace int, p *producer) func() {
		hook := hookFunc(func(d time.Duration) {
			if d > 0 {
				p.throttles.Add(1)
			}
		})
		cl := newClient(t, tb.Addr(), kgo.ClientID(clientID), kgo.DefaultProduceTopic(topic),
			kgo.MaxBufferedRecords(64), kgo.WithHooks(hook), kgo.ProducerBatchMaxBytes(128<<10),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		ctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := make([]byte, 16<<10)
			rand.Read(value) // what the quota counts is what goes over the wire
			due := time.Now()
			for ctx.Err() == nil {
				if pace > 0 {
					// No catching up after a stall of the machine: that would
					// measure bursts, not the pace.
					if floor := time.Now().Add(-250 * time.Millisecond); due.Before(floor) {
						due = floor
					}
					due = due.Add(time.Duration(float64(len(value)) / float64(pace) * float64(time.Second)))
					select {
					case <-time.After(time.Until(due)):
					case <-ctx.Done():
						return
					}
				}
				cl.Produce(ctx, kgo.SliceRecord(value), func(r *kgo.Record, err error) {
					switch {
					case err == nil:
						p.acked.Add(int64(len(r.Value)))
					case ctx.Err() == nil:
						p.errs.Add(1)
					}
				})
			}
		}()
		return func() { stop(); wg.Wait(); cl.Close() }
	}
	rate := func(p *producer, d time.Duration) float64 {
		start := p.acked.Load()
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		return float64(p.acked.Load()-start) / d.Seconds()
	}

	// The unthrottled producer is paced at 4 MiB/s, which a busy machine still
	// sustains, so that its throughput beside the throttled one measures
	// interference rather than how many cores are free at the moment.
	var free, slow producer
	stopFree := run(ctx, "fast-app", "free", 4<<20, &free)
	defer stopFree()
	rate(&free, 2*time.Second) // warm up
	alone := rate(&free, 5*time.Second)

	stopSlow := run(ctx, "slow-app", "throttled", 0, &slow)
	defer stopSlow()
	rate(&slow, 3*time.Second) // the first burst and the throttling it causes
	var beside float64
	done := make(chan struct{})
	go func() { beside = rate(&free, 20*time.Second); close(done) }()
	held := rate(&slow, 20*time.Second)
	<-done

	t.Logf("throttled producer: %.0f B/s against a quota of %d B/s (%.1f%%), %d throttled responses", held, quota, 100*held/quota, slow.throttles.Load())
	t.Logf("unthrottled producer: %.0f B/s alone, %.0f B/s beside it (ratio %.2f)", alone, beside, beside/alone)
	require.InEpsilon(t, float64(quota), held, 0.10, "held to within 10%% of its quota")
	require.Positive(t, slow.throttles.Load(), "the throttled client saw throttle_time_ms")
	require.Zero(t, slow.errs.Load(), "throttling is not an error")
	require.Zero(t, free.errs.Load())
	require.Zero(t, free.throttles.Load(), "the other client is not throttled")
	require.Greater(t, beside/alone, 0.8, "the unthrottled producer keeps its throughput (a loaded machine, the race detector, parallel tests)")

	fams := testutil.Scrape(t, tb.MetricsAddr())
	require.Positive(t, value(fams, "sluice_quota_throttle_seconds_total", map[string]string{"quota": "producer_byte_rate", "client_id": "slow-app"}))
	require.Positive(t, value(fams, "sluice_quota_usage_total", map[string]string{"quota": "producer_byte_rate", "client_id": "slow-app"}))
}

// hookFunc is a kgo hook reporting throttle times.
type hookFunc func(time.Duration)

func (h hookFunc) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) { h(d) }

func TestControllerMutationQuota(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	// 1 partition per second with a burst of 11.
	setQuota(ctx, t, adm, quotaEntity("client-id", "creator"), "controller_mutation_rate", 1)

	// A new client for each request: franz-go waits out a throttle before its
	// next request to the broker, and the broker mutes the connection.
	create := func(name string, partitions int32) *kmsg.CreateTopicsResponse {
		cl := newClient(t, tb.Addr(), kgo.ClientID("creator"), kgo.RequestRetries(0))
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Topics = []kmsg.CreateTopicsRequestTopic{newTopic(name, partitions, 1)}
		req.TimeoutMillis = 10000
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		return resp
	}
	resp := create("first", 20) // within the burst when it starts; leaves the bucket below zero
	require.Zero(t, resp.Topics[0].ErrorCode)
	require.Positive(t, resp.ThrottleMillis)
	resp = create("second", 1)
	require.Equal(t, kerr.ThrottlingQuotaExceeded.Code, resp.Topics[0].ErrorCode)
	require.Positive(t, resp.ThrottleMillis)
	require.Nil(t, tb.quorum.Image().Topic("second"), "a throttled creation changes nothing")

	// Other clients are not limited by it.
	_, err := adm.CreateTopic(ctx, 5, 1, nil, "other")
	require.NoError(t, err)
}

func TestWindowedRateThrottle(t *testing.T) {
	var r windowedRate
	r.init(11, time.Second)
	now := time.Unix(1000, 0)
	// A first burst is measured over one window.
	r.record(5<<20, now)
	got, window := r.measure(now)
	require.Equal(t, time.Second, window)
	require.InDelta(t, float64(5<<20), got, 1)
	// Later, over the time the live samples span.
	r.record(1<<20, now.Add(3500*time.Millisecond))
	got, window = r.measure(now.Add(3500 * time.Millisecond))
	require.Equal(t, 3500*time.Millisecond, window)
	require.InDelta(t, float64(6<<20)/3.5, got, 1)
	// Samples older than the span expire.
	got, _ = r.measure(now.Add(12 * time.Second))
	require.InDelta(t, float64(1<<20)/8.5, got, 1)

	// Kafka's throttle: (rate - quota) / quota * window, at most the span.
	s := &sensor{limit: 1 << 20, usage: prometheus.NewCounter(prometheus.CounterOpts{Name: "u"}), throttleSeconds: prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})}
	s.rate.init(11, time.Second)
	require.Zero(t, s.record(1<<20, now))
	require.Equal(t, time.Second, s.record(1<<20, now), "2 MiB in one window is twice the quota")
	require.Equal(t, 11*time.Second, s.record(100<<20, now), "capped at the span")
}

func TestQuotaPrecedence(t *testing.T) {
	name := func(s string) *string { return &s }
	entity := func(user, client *string, hasUser, hasClient bool) metadata.QuotaEntity {
		var e metadata.QuotaEntity
		if hasClient {
			e = append(e, metadata.QuotaEntityPart{Type: metadata.QuotaEntityClientID, Name: client})
		}
		if hasUser {
			e = append(e, metadata.QuotaEntityPart{Type: metadata.QuotaEntityUser, Name: user})
		}
		return e
	}
	// Kafka's order, most specific first; each row's entity gets the row's
	// number as its quota, and removing rows from the top must fall through to
	// the next one.
	rows := []struct {
		e    metadata.QuotaEntity
		want sensorKey
	}{
		{entity(name("alice"), name("app"), true, true), sensorKey{"producer_byte_rate", "alice", "app"}},
		{entity(name("alice"), nil, true, true), sensorKey{"producer_byte_rate", "alice", "app"}},
		{entity(name("alice"), nil, true, false), sensorKey{"producer_byte_rate", "alice", ""}},
		{entity(nil, name("app"), true, true), sensorKey{"producer_byte_rate", "alice", "app"}},
		{entity(nil, nil, true, true), sensorKey{"producer_byte_rate", "alice", "app"}},
		{entity(nil, nil, true, false), sensorKey{"producer_byte_rate", "alice", ""}},
		{entity(nil, name("app"), false, true), sensorKey{"producer_byte_rate", "", "app"}},
		{entity(nil, nil, false, true), sensorKey{"producer_byte_rate", "", "app"}},
	}
	for skip := range rows {
		qt := &quotaTable{img: map[string]metadata.ClientQuota{}, byType: map[string]bool{"producer_byte_rate": true}}
		for i, r := range rows[skip:] {
			qt.img[r.e.Key()] = metadata.ClientQuota{Entity: r.e, Values: map[string]float64{"producer_byte_rate": float64(skip + i)}}
		}
		v, key, ok := qt.resolve("producer_byte_rate", "alice", "app")
		require.True(t, ok)
		require.Equal(t, float64(skip), v, "with the first %d rows removed, row %d applies", skip, skip)
		require.Equal(t, rows[skip].want, key)
		_, _, ok = qt.resolve("consumer_byte_rate", "alice", "app")
		require.False(t, ok)
	}
	// Another user matches only the default-user and client rows.
	qt := &quotaTable{img: map[string]metadata.ClientQuota{}, byType: map[string]bool{"producer_byte_rate": true}}
	for i, r := range rows {
		qt.img[r.e.Key()] = metadata.ClientQuota{Entity: r.e, Values: map[string]float64{"producer_byte_rate": float64(i)}}
	}
	v, key, _ := qt.resolve("producer_byte_rate", "bob", "other")
	require.Equal(t, 4.0, v)
	require.Equal(t, sensorKey{"producer_byte_rate", "bob", "other"}, key)
}

// TestQuotaSensorsBounded: client ids are the client's to choose, so a default
// client-id quota must not let one client make the broker keep a sensor and
// metric series per id forever.
func TestQuotaSensorsBounded(t *testing.T) {
	e := metadata.QuotaEntity{{Type: metadata.QuotaEntityClientID}}
	img := &metadata.Image{Index: 1, ClientQuotas: map[string]metadata.ClientQuota{
		e.Key(): {Entity: e, Values: map[string]float64{"producer_byte_rate": 1 << 20}},
	}}
	reg := prometheus.NewRegistry()
	m := newQuotaManager(DefaultConfig().Quotas, func() *metadata.Image { return img }, reg)
	for i := range maxSensors + 500 {
		require.NotNil(t, m.sensorFor("producer_byte_rate", anonymous, "id-"+itoa(i)))
	}
	require.LessOrEqual(t, len(m.sensors), maxSensors+1)
	require.Equal(t, maxSensorSeries, m.series)
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		require.LessOrEqual(t, len(f.Metric), maxSensorSeries+1, f.GetName())
	}
	// Idle sensors go, with their series.
	m.mu.Lock()
	m.sweep(time.Now().Add(sensorIdleExpiry + time.Second))
	m.mu.Unlock()
	require.Empty(t, m.sensors)
	require.Zero(t, m.series)
}

// BenchmarkQuotaBookkeeping is the work quotas add to each produce request:
// none without quotas; with quotas configured for every client but not
// reached, the lookup of the three that apply, recording and the check.
func BenchmarkQuotaBookkeeping(b *testing.B) {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	resp := req.ResponseKind()
	timing := &requestTiming{started: time.Now(), handled: time.Now().Add(50 * time.Microsecond)}
	for _, tc := range []struct {
		name   string
		quotas map[string]float64
	}{
		{"none", nil},
		{"configured", map[string]float64{"producer_byte_rate": 1e12, "consumer_byte_rate": 1e12, "request_percentage": 1e6, "controller_mutation_rate": 1e6}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			img := &metadata.Image{Index: 1}
			if tc.quotas != nil {
				e := metadata.QuotaEntity{{Type: metadata.QuotaEntityUser}}
				img.ClientQuotas = map[string]metadata.ClientQuota{e.Key(): {Entity: e, Values: tc.quotas}}
			}
			m := newQuotaManager(DefaultConfig().Quotas, func() *metadata.Image { return img }, prometheus.NewRegistry())
			cc := &conn{b: &Broker{quotas: m}, principal: anonymous, clientID: "bench"}
			b.ReportAllocs()
			for b.Loop() {
				cc.throttleResponse(req, resp, 1<<10, timing)
			}
			require.True(b, cc.muteUntil.IsZero(), "not reached")
		})
	}
}

// TestFetchAndRequestQuotasThrottle: a consumer over its consumer_byte_rate
// and a client over its request_percentage get throttle times, no errors,
// and the consumer is slowed to about its quota.
func TestFetchAndRequestQuotasThrottle(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopics(ctx, 1, 1, nil, "to-read")
	require.NoError(t, err)
	value := make([]byte, 16<<10)
	rand.Read(value)
	producer := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("to-read"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	const records = 96  // 1.5 MiB
	for range records { // one batch each, so that fetches can be small
		require.NoError(t, producer.ProduceSync(ctx, kgo.SliceRecord(value)).FirstErr())
	}
	const quota = 512 << 10
	setQuota(ctx, t, adm, quotaEntity("client-id", "reader"), "consumer_byte_rate", quota)
	setQuota(ctx, t, adm, quotaEntity("client-id", "chatty"), "request_percentage", 0.0001) // 1 µs of handler time per second

	var throttles atomic.Int64
	hook := hookFunc(func(d time.Duration) {
		if d > 0 {
			throttles.Add(1)
		}
	})
	reader := newClient(t, tb.Addr(), kgo.ClientID("reader"), kgo.WithHooks(hook), kgo.ConsumeTopics("to-read"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(256<<10), kgo.FetchMaxPartitionBytes(256<<10))
	start := time.Now()
	read := 0
	for read < records {
		fs := reader.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		for _, e := range fs.Errors() {
			require.NoError(t, e.Err)
		}
		read += fs.NumRecords()
	}
	took := time.Since(start)
	t.Logf("read 1.5 MiB in %s at a quota of 512 KiB/s, %d throttled responses", took, throttles.Load())
	require.Positive(t, throttles.Load())
	// One window's worth comes at once; the rest at the quota.
	require.Greater(t, took, time.Second, "the consumer was slowed down")

	// A raw connection: franz-go would first send ApiVersions and Metadata of
	// its own, and the muted connection would make it wait.
	c := rawConn(t, tb.Addr())
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	body := binary.BigEndian.AppendUint16(nil, 3) // Metadata v12
	body = binary.BigEndian.AppendUint16(body, 12)
	body = binary.BigEndian.AppendUint32(body, 7)
	body = binary.BigEndian.AppendUint16(body, uint16(len("chatty")))
	body = append(body, "chatty"...)
	body = append(body, 0) // header tags
	body = req.AppendTo(body)
	_, err = c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	require.NoError(t, err)
	_, err = c.Write(body)
	require.NoError(t, err)
	var size [4]byte
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	raw := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, raw)
	require.NoError(t, err)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Version = 12
	require.NoError(t, resp.ReadFrom(raw[5:])) // correlation id and header tags
	require.Positive(t, resp.ThrottleMillis, "a client over request_percentage is throttled")
}

// TestClientQuotasNeedClusterConfigRights: with an authorizer, describing
// quotas needs DESCRIBE_CONFIGS and altering them ALTER_CONFIGS on the cluster.
func TestClientQuotasNeedClusterConfigRights(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:admin"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, tb.Addr())

	alter := kmsg.NewPtrAlterClientQuotasRequest()
	e := kmsg.NewAlterClientQuotasRequestEntry()
	e.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr("mallory")}}
	e.Ops = []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1e12}}
	alter.Entries = append(alter.Entries, e)
	aresp, err := alter.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, aresp.Entries[0].ErrorCode)
	require.Empty(t, tb.quorum.Image().ClientQuotas, "a denied alteration changes nothing")

	dresp, err := kmsg.NewPtrDescribeClientQuotasRequest().RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, dresp.ErrorCode)
}
