package tickets

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker"
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
	var voters []string
	ctrl := make([]string, 3)
	for i := range ctrl {
		ctrl[i] = testutil.Addrs(t, 1)[0]
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, ctrl[i]))
	}
	type node struct {
		b    *broker.Broker
		stop func()
	}
	nodes := make([]node, 3)
	for i := range nodes {
		cfg := broker.DefaultConfig()
		cfg.NodeID = int32(i + 1)
		cfg.Listen = testutil.Addrs(t, 1)[0]
		cfg.ControllerListen = ctrl[i]
		cfg.ControllerQuorumVoters = strings.Join(voters, ",")
		cfg.DataDir = t.TempDir()
		cfg.AdminListen = "127.0.0.1:0"
		cfg.OffsetsTopicNumPartitions = 1
		cfg.BrokerSessionTimeoutMs = 1500
		cfg.ReplicaLagTimeMaxMs = 1500
		b, err := broker.New(cfg, testLogger())
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		stopped := false
		nodes[i] = node{b, func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
			}
		}}
		t.Cleanup(nodes[i].stop)
	}
	for _, n := range nodes {
		select {
		case <-n.b.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("cluster did not start")
		}
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(nodes[0].b.Addr()))
	require.NoError(t, err)
	defer kcl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(kcl).CreateTopic(ctx, 6, 3, nil, "orders")
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	ts := startService(t, func(c *Config) {
		c.Snapshot.AdminURLs = []string{nodes[1].b.AdminAddr(), nodes[0].b.AdminAddr()}
		c.Snapshot.Timeout = 5 * time.Second
	})
	nodes[1].stop() // broker 2
	capt := snapshot.NewCapturer(snapshot.Config{AdminURLs: []string{nodes[0].b.AdminAddr()}})
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
