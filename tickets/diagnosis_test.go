package tickets

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/snapshot"
)

// TestDiagnosisNamesTheLostBroker stops one broker of a three-broker in-process
// cluster and checks the incident's snapshot names it and counts the partitions
// that lost it from their ISR.
func TestDiagnosisNamesTheLostBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := brokertest.Start(t, brokertest.Config{Configure: func(bc *broker.Config) {
		bc.OffsetsTopicNumPartitions = 1
		bc.BrokerSessionTimeoutMs = 1500
		bc.ReplicaLagTimeMaxMs = 1500
	}})
	kcl := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(kcl).CreateTopic(ctx, 6, 3, nil, "orders")
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	ts := startService(t, func(cfg *Config) {
		cfg.Snapshot.AdminURLs = []string{c.Brokers[1].AdminAddr(), c.Brokers[0].AdminAddr()}
		cfg.Snapshot.Timeout = 5 * time.Second
	})
	c.Brokers[1].Stop(t) // broker 2
	capt := snapshot.NewCapturer(snapshot.Config{AdminURLs: []string{c.Brokers[0].AdminAddr()}})
	testutil.WaitFor(t, 20*time.Second, "a snapshot showing the under-replicated partitions", func() bool {
		s := capt.Capture(context.Background(), snapshot.Target{}, time.Now())
		return s.Cluster != nil && len(s.UnderReplicated) >= 6
	})

	id := ts.notify(amPayload("SluiceUnderReplicatedPartitions", "firing", 0,
		amAlert{"SluiceUnderReplicatedPartitions", "fpu", "firing", t0, map[string]string{"topic": "orders"}})).Opened[0]
	var diag string
	testutil.WaitFor(t, 10*time.Second, "the incident's diagnosis", func() bool {
		d := ts.incident(id)
		if d.Snapshot != nil {
			diag = d.Snapshot.Diagnosis
		}
		return d.Snapshot != nil
	})
	t.Logf("diagnosis: %s", diag)
	require.Regexp(t, `^broker 2 unreachable since \d\d:\d\d:\d\d; ([6-9]|\d\d) partitions lost it from their ISR$`, diag)
}
