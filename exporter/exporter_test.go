package exporter

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestOffsetsAndLag: known records and a known commit give exact offsets,
// lag per partition, sums, an explicitly uncommitted partition and lag in
// seconds from the timestamp of the record at the committed offset.
func TestOffsetsAndLag(t *testing.T) {
	b := startBroker(t)
	kcl := newClient(t, b.Addr())
	adm := kadm.NewClient(kcl)
	createTopic(t, adm, "orders", 3)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	produce(t, kcl, "orders", 0, 10, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	produce(t, kcl, "orders", 1, 5, nil)
	commit(t, adm, "g1", "orders", map[int32]int64{0: 4, 1: 5})

	e := newExporter(t, testConfig(b.Addr()))
	before := time.Now()
	collect(t, e)
	after := time.Now()
	m := scrape(t, e.Handler())

	assert.Equal(t, 1.0, m.value(t, "kafka_brokers"))
	assert.Equal(t, 1.0, m.value(t, "kafka_broker_info", "address="+b.Addr(), "id=1"))
	assert.Equal(t, 3.0, m.value(t, "kafka_topic_partitions", "topic=orders"))
	for p, end := range []float64{10, 5, 0} {
		l := []string{"topic=orders", fmt.Sprintf("partition=%d", p)}
		assert.Equal(t, end, m.value(t, "kafka_topic_partition_current_offset", l...), "partition %d", p)
		assert.Equal(t, 0.0, m.value(t, "kafka_topic_partition_oldest_offset", l...))
		assert.Equal(t, 1.0, m.value(t, "kafka_topic_partition_leader", l...))
		assert.Equal(t, 1.0, m.value(t, "kafka_topic_partition_replicas", l...))
		assert.Equal(t, 1.0, m.value(t, "kafka_topic_partition_in_sync_replica", l...))
		assert.Equal(t, 1.0, m.value(t, "kafka_topic_partition_leader_is_preferred", l...))
		assert.Equal(t, 0.0, m.value(t, "kafka_topic_partition_under_replicated_partition", l...))
	}

	g := func(p int) []string {
		return []string{"consumergroup=g1", "topic=orders", fmt.Sprintf("partition=%d", p)}
	}
	assert.Equal(t, 0.0, m.value(t, "kafka_consumergroup_members", "consumergroup=g1"))
	assert.Equal(t, 4.0, m.value(t, "kafka_consumergroup_current_offset", g(0)...))
	assert.Equal(t, 5.0, m.value(t, "kafka_consumergroup_current_offset", g(1)...))
	assert.Equal(t, 6.0, m.value(t, "kafka_consumergroup_lag", g(0)...))
	assert.Equal(t, 0.0, m.value(t, "kafka_consumergroup_lag", g(1)...))
	assert.Equal(t, 9.0, m.value(t, "kafka_consumergroup_current_offset_sum", "consumergroup=g1", "topic=orders"))
	assert.Equal(t, 6.0, m.value(t, "kafka_consumergroup_lag_sum", "consumergroup=g1", "topic=orders"))

	// Partition 2 has no commit: marked, and no -1 anywhere.
	assert.Equal(t, 1.0, m.value(t, "sluice_consumergroup_partition_committed", g(0)...))
	assert.Equal(t, 1.0, m.value(t, "sluice_consumergroup_partition_committed", g(1)...))
	assert.Equal(t, 0.0, m.value(t, "sluice_consumergroup_partition_committed", g(2)...))
	assert.Equal(t, 1.0, m.value(t, "sluice_consumergroup_uncommitted_partitions", "consumergroup=g1", "topic=orders"))
	for _, name := range []string{"kafka_consumergroup_current_offset", "kafka_consumergroup_lag", "sluice_consumergroup_lag_seconds"} {
		_, ok := m.get(name, g(2)...)
		assert.False(t, ok, "%s for an uncommitted partition", name)
	}

	// The first unconsumed record of partition 0 is offset 4, written at base+4s.
	ts := base.Add(4 * time.Second)
	lagSeconds := m.value(t, "sluice_consumergroup_lag_seconds", g(0)...)
	assert.GreaterOrEqual(t, lagSeconds, before.Sub(ts).Seconds()-0.001)
	assert.LessOrEqual(t, lagSeconds, after.Sub(ts).Seconds()+0.001)
	assert.Equal(t, 0.0, m.value(t, "sluice_consumergroup_lag_seconds", g(1)...))

	assert.Equal(t, "OK", m.status(t, "sluice_consumergroup_status", g(0)...))
	assert.Equal(t, "OK", m.status(t, "sluice_consumergroup_worst_status", "consumergroup=g1"))
	assert.Equal(t, 1.0, m.value(t, "sluice_exporter_up"))
	assert.Equal(t, 0.0, m.value(t, "sluice_exporter_lag_clamped_total"))
	for _, st := range stages {
		assert.Equal(t, 0.0, m.value(t, "sluice_exporter_collection_errors_total", "stage="+st), st)
	}
}

// TestStatusTransitions drives collections by hand over a window of 3 while
// records keep arriving on "busy".
func TestStatusTransitions(t *testing.T) {
	b := startBroker(t)
	kcl := newClient(t, b.Addr())
	adm := kadm.NewClient(kcl)
	createTopic(t, adm, "busy", 1)
	createTopic(t, adm, "idle", 1)
	produce(t, kcl, "idle", 0, 5, nil)
	commit(t, adm, "idle-reader", "idle", map[int32]int64{0: 5})
	commit(t, adm, "stopped", "busy", map[int32]int64{0: 0})
	commit(t, adm, "rewinder", "busy", map[int32]int64{0: 0})

	e := newExporter(t, testConfig(b.Addr()))
	status := func(m metrics, group, topic string) string {
		return m.status(t, "sluice_consumergroup_status", "consumergroup="+group, "topic="+topic, "partition=0")
	}
	var end int64
	for cycle := 1; cycle <= 4; cycle++ {
		produce(t, kcl, "busy", 0, 3, nil)
		end += 3
		// steady keeps up; falling commits one record per cycle and falls
		// two further behind each time; stopped and idle-reader commit nothing.
		commit(t, adm, "steady", "busy", map[int32]int64{0: end})
		commit(t, adm, "falling", "busy", map[int32]int64{0: int64(cycle)})
		if cycle == 3 {
			commit(t, adm, "rewinder", "busy", map[int32]int64{0: 6})
		}
		if cycle == 4 {
			commit(t, adm, "rewinder", "busy", map[int32]int64{0: 2})
		}
		collect(t, e)
		m := scrape(t, e.Handler())
		assert.Equal(t, "OK", status(m, "steady", "busy"), "cycle %d", cycle)
		assert.Equal(t, "OK", status(m, "idle-reader", "idle"), "cycle %d", cycle)
		assert.Equal(t, float64(end), m.value(t, "kafka_consumergroup_lag", "consumergroup=stopped", "topic=busy", "partition=0"))
		if cycle < 3 {
			// The window is not full yet: no alarm from one or two looks.
			assert.Equal(t, "OK", status(m, "stopped", "busy"), "cycle %d", cycle)
			assert.Equal(t, "OK", status(m, "falling", "busy"), "cycle %d", cycle)
			continue
		}
		assert.Equal(t, "STOP", status(m, "stopped", "busy"), "cycle %d", cycle)
		assert.Equal(t, "STOP", m.status(t, "sluice_consumergroup_worst_status", "consumergroup=stopped"))
		assert.Equal(t, "ERR", status(m, "falling", "busy"), "cycle %d", cycle)
		assert.Equal(t, "OK", m.status(t, "sluice_consumergroup_worst_status", "consumergroup=steady"))
		assert.Equal(t, "OK", m.status(t, "sluice_consumergroup_worst_status", "consumergroup=idle-reader"))
		if cycle == 4 {
			assert.Equal(t, "REWIND", status(m, "rewinder", "busy"))
		}
	}
}

// TestLiveConsumerGroup: a real consumer group member that consumes and
// commits is counted as a member, is caught up and OK.
func TestLiveConsumerGroup(t *testing.T) {
	b := startBroker(t)
	kcl := newClient(t, b.Addr())
	adm := kadm.NewClient(kcl)
	createTopic(t, adm, "events", 2)
	produce(t, kcl, "events", 0, 7, nil)
	produce(t, kcl, "events", 1, 3, nil)

	consumer := newClient(t, b.Addr(), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("events"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for consumed := 0; consumed < 10; {
		fs := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch error: %v", err) })
		consumed += fs.NumRecords()
	}
	require.NoError(t, consumer.CommitUncommittedOffsets(ctx))

	e := newExporter(t, testConfig(b.Addr()))
	var m metrics
	testutil.WaitFor(t, 20*time.Second, "the group with its member and commits", func() bool {
		collect(t, e)
		m = scrape(t, e.Handler())
		members, _ := m.get("kafka_consumergroup_members", "consumergroup=live")
		sum, _ := m.get("kafka_consumergroup_current_offset_sum", "consumergroup=live", "topic=events")
		return members == 1 && sum == 10
	})
	assert.Equal(t, 0.0, m.value(t, "kafka_consumergroup_lag_sum", "consumergroup=live", "topic=events"))
	assert.Equal(t, 0.0, m.value(t, "sluice_consumergroup_uncommitted_partitions", "consumergroup=live", "topic=events"))
	assert.Equal(t, "OK", m.status(t, "sluice_consumergroup_worst_status", "consumergroup=live"))
}

// TestRunAndClusterGone runs the exporter as a server with a short interval,
// then stops the broker: the last data stays, up drops to 0, errors are
// counted and the collection age grows.
func TestRunAndClusterGone(t *testing.T) {
	b := startBroker(t)
	kcl := newClient(t, b.Addr())
	adm := kadm.NewClient(kcl)
	createTopic(t, adm, "t", 1)
	produce(t, kcl, "t", 0, 2, nil)
	kcl.Close()

	cfg := testConfig(b.Addr())
	cfg.Interval = 100 * time.Millisecond
	// Generous: on a busy machine one collection can take seconds.
	cfg.CollectTimeout = 5 * time.Second
	e := newExporter(t, cfg)
	testutil.Start(t, "the exporter", e.Run).WaitReady(t, e.Ready(), time.Minute)
	base := "http://" + e.Addr()
	get := func(path string) (int, metrics) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		if path != "/metrics" {
			return resp.StatusCode, nil
		}
		return resp.StatusCode, parseMetrics(t, resp.Body)
	}
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	testutil.WaitFor(t, 30*time.Second, "/readyz", func() bool { c, _ := get("/readyz"); return c == http.StatusOK })
	// A collection that runs out of its timeout on a busy machine sets up to 0
	// until the next one succeeds, so the page is polled for a good one.
	var m metrics
	testutil.WaitFor(t, 30*time.Second, "a page from a successful collection", func() bool {
		_, m = get("/metrics")
		return m.value(t, "sluice_exporter_up") == 1
	})
	require.Equal(t, 2.0, m.value(t, "kafka_topic_partition_current_offset", "topic=t", "partition=0"))
	require.Greater(t, m.value(t, "sluice_exporter_last_collection_timestamp_seconds"), 0.0)
	// Go and process metrics come with the exporter's own registry.
	require.Contains(t, m, "go_goroutines")

	b.Stop(t)
	var last float64
	testutil.WaitFor(t, 30*time.Second, "up 0 and metadata errors", func() bool {
		_, m = get("/metrics")
		return m.value(t, "sluice_exporter_up") == 0 && m.value(t, "sluice_exporter_collection_errors_total", "stage=metadata") > 0
	})
	last = m.value(t, "sluice_exporter_last_collection_timestamp_seconds")
	age := m.value(t, "sluice_exporter_collection_age_seconds")
	testutil.WaitFor(t, 30*time.Second, "the collection age to grow past 1s", func() bool {
		_, m = get("/metrics")
		return m.value(t, "sluice_exporter_collection_age_seconds") > max(age, 1)
	})
	// The last completed collection is still served, marked by its time.
	assert.Equal(t, last, m.value(t, "sluice_exporter_last_collection_timestamp_seconds"))
	assert.Equal(t, 2.0, m.value(t, "kafka_topic_partition_current_offset", "topic=t", "partition=0"))
	code, _ = get("/readyz")
	assert.Equal(t, http.StatusOK, code)
}

// TestCollectFailsWithoutCluster: an exporter whose cluster never answered
// has no data, up 0, and an age counted from its start.
func TestCollectFailsWithoutCluster(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.CollectTimeout = 300 * time.Millisecond
	e := newExporter(t, cfg)
	err := e.Collect(context.Background())
	require.Error(t, err)
	m := scrape(t, e.Handler())
	assert.Equal(t, 0.0, m.value(t, "sluice_exporter_up"))
	assert.Equal(t, 1.0, m.value(t, "sluice_exporter_collection_errors_total", "stage=metadata"))
	assert.Equal(t, 0.0, m.value(t, "sluice_exporter_last_collection_timestamp_seconds"))
	assert.Greater(t, m.value(t, "sluice_exporter_collection_age_seconds"), 0.0)
	_, ok := m.get("kafka_brokers")
	assert.False(t, ok, "no cluster metrics before a completed collection")
	rec := httptestGet(e.Handler(), "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, rec)
}

// TestLSOLag leaves a transaction open on one partition while plain records are written after it:
// the exporter shows the records between the last stable offset and the high watermark, 0 on the
// other partitions, and 0 once the transaction commits.
func TestLSOLag(t *testing.T) {
	b := startBroker(t)
	kcl := newClient(t, b.Addr())
	adm := kadm.NewClient(kcl)
	createTopic(t, adm, "payments", 2)
	produce(t, kcl, "payments", 1, 4, nil)

	txn := newClient(t, b.Addr(), kgo.TransactionalID("exporter-lso-lag"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, txn.BeginTransaction())
	recs := make([]*kgo.Record, 5)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "payments", Partition: 0, Value: []byte("in a transaction")}
	}
	require.NoError(t, txn.ProduceSync(ctx, recs...).FirstErr())
	produce(t, kcl, "payments", 0, 3, nil)

	e := newExporter(t, testConfig(b.Addr()))
	collect(t, e)
	m := scrape(t, e.Handler())
	assert.Equal(t, 8.0, m.value(t, "kafka_topic_partition_current_offset", "topic=payments", "partition=0"))
	assert.Equal(t, 8.0, m.value(t, "kafka_topic_partition_lso_lag", "topic=payments", "partition=0"),
		"5 records of the open transaction and 3 written after it")
	assert.Equal(t, 0.0, m.value(t, "kafka_topic_partition_lso_lag", "topic=payments", "partition=1"))
	assert.Equal(t, 0.0, m.value(t, "sluice_exporter_collection_errors_total", "stage=stable_offsets"))

	require.NoError(t, txn.EndTransaction(ctx, kgo.TryCommit))
	testutil.WaitFor(t, 30*time.Second, "LSO lag 0 after the commit", func() bool {
		collect(t, e)
		v, ok := scrape(t, e.Handler()).get("kafka_topic_partition_lso_lag", "topic=payments", "partition=0")
		return ok && v == 0
	})
}
