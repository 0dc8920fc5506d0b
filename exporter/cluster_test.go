package exporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// TestUnderReplicatedAfterKill starts three `sluice broker` processes, kills
// one and expects the exporter to report its partitions under-replicated with
// two in-sync replicas; $SLUICE_BIN names a prebuilt binary.
func TestUnderReplicatedAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts a 3-broker process cluster")
	}
	cl := brokertest.StartProcesses(t, chaos.ClusterConfig{Brokers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	kcl := newClient(t, cl.Bootstrap()[0])
	adm := kadm.NewClient(kcl)
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "create topic", func(ctx context.Context) (bool, error) {
		resp, err := adm.CreateTopic(ctx, 3, 3, nil, "replicated")
		if err == nil {
			err = resp.Err
		}
		return err == nil, err
	}))
	require.NoError(t, cl.WaitHealthy(ctx, 30*time.Second, "replicated"))

	cfg := testConfig(cl.Bootstrap()[0])
	cfg.Bootstrap = cl.Bootstrap()
	cfg.CollectTimeout = 5 * time.Second
	e := newExporter(t, cfg)
	collect(t, e)
	m := scrape(t, e.Handler())
	require.Equal(t, 3.0, m.value(t, "kafka_brokers"))
	for p := range 3 {
		l := []string{"topic=replicated", fmt.Sprintf("partition=%d", p)}
		require.Equal(t, 3.0, m.value(t, "kafka_topic_partition_replicas", l...))
		require.Equal(t, 3.0, m.value(t, "kafka_topic_partition_in_sync_replica", l...))
		require.Equal(t, 0.0, m.value(t, "kafka_topic_partition_under_replicated_partition", l...))
	}

	killed := int32(3)
	require.NoError(t, cl.Kill(killed))
	testutil.WaitFor(t, 30*time.Second, "every partition under-replicated with 2 in-sync replicas", func() bool {
		if err := e.Collect(context.Background()); err != nil {
			t.Logf("collect: %v", err)
			return false
		}
		m = scrape(t, e.Handler())
		for p := range 3 {
			l := []string{"topic=replicated", fmt.Sprintf("partition=%d", p)}
			if v, _ := m.get("kafka_topic_partition_under_replicated_partition", l...); v != 1 {
				return false
			}
			if v, _ := m.get("kafka_topic_partition_in_sync_replica", l...); v != 2 {
				return false
			}
			if v, _ := m.get("kafka_topic_partition_leader", l...); v == float64(killed) || v < 0 {
				return false
			}
		}
		return true
	})
	require.Equal(t, 2.0, m.value(t, "kafka_brokers"))
	_, ok := m.get("kafka_broker_info", "address="+cl.Bootstrap()[killed-1], fmt.Sprintf("id=%d", killed))
	require.False(t, ok, "the killed broker is not listed")
	for p := range 3 {
		require.Equal(t, 3.0, m.value(t, "kafka_topic_partition_replicas", "topic=replicated", fmt.Sprintf("partition=%d", p)))
	}
}
