package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/metadata"
)

// TestAutoBalancePause: auto.balance.enable is a dynamic broker config. Set to false as the cluster
// default, the controller's balancer starts no move on an unbalanced cluster; a value that is not a
// boolean is refused by name and changes nothing; set back to true, the balancer moves replicas
// onto the broker that had none.
func TestAutoBalancePause(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := startTestCluster(t, 3, func(c *Config) {
		c.Balance.AutoBalanceEnable = ptr(true)
		c.Balance.AutoBalanceIntervalMs = 100
		c.Balance.AutoBalanceRoundGapMs = 1
	})
	var seeds []string
	for _, tb := range brokers {
		seeds = append(seeds, tb.Addr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	set := func(v string) error {
		rs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "auto.balance.enable", Value: kadm.StringPtr(v)}})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Err != nil {
				return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
			}
		}
		return nil
	}
	require.NoError(t, set("false"))
	waitUntil(t, 10*time.Second, "every broker applied the pause", func() bool {
		for _, tb := range brokers {
			if v, _ := tb.brokerConfigValue("auto.balance.enable"); v != "false" {
				return false
			}
		}
		return true
	})
	err = set("maybe")
	require.ErrorIs(t, err, kerr.InvalidRequest) // as Kafka answers a bad dynamic broker config
	require.ErrorContains(t, err, "auto.balance.enable")
	v, _ := brokers[0].brokerConfigValue("auto.balance.enable")
	require.Equal(t, "false", v, "a refused value changed the setting")

	// Every replica on brokers 1 and 2: unbalanced, broker 3 holds none.
	createTopicOnController(t, ctx, brokers, 10*time.Second, "topic paused on brokers 1 and 2", "paused", [][]int32{{1, 2}, {2, 1}, {1, 2}, {2, 1}, {1, 2}, {2, 1}})
	// Thirty balancer intervals without a move (a negative: it waits the whole time).
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range brokers[0].quorum.Image().Events {
			if e.Topic == "paused" {
				require.NotEqual(t, metadata.EventReassignmentStarted, e.Type, "a move while paused: %+v", e)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}

	require.NoError(t, set("true"))
	waitUntil(t, 60*time.Second, "broker 3 holds replicas of paused", func() bool {
		n := 0
		for _, p := range brokers[0].quorum.Image().Topic("paused").Partitions {
			if slices.Contains(p.Replicas, 3) && !p.Reassigning() {
				n++
			}
		}
		return n >= 3
	})
}
