package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker/metadata"
)

// TestLeaderKeepsNewerISRThanImage: a leader that applied its AlterPartition answer (ISR 1,2,3 at
// partition epoch 6) and then applies a metadata image from before that commit (ISR 1,2 at epoch 5)
// keeps the newer ISR. Going back let the high watermark pass replica 3's log end while the
// controller counted 3 in sync, and 3 elected leader then lacked acknowledged records (the scaling
// drill lost records that way while the balancer churned the metadata).
func TestLeaderKeepsNewerISRThanImage(t *testing.T) {
	p := &partition{leader: 1, leaderEpoch: 2, partitionEpoch: 6, replicas: []int32{1, 2, 3}, isr: []int32{1, 2, 3}, isLeader: true}
	role := p.update(metadata.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 5}, 1)
	require.Equal(t, roleSame, role)
	require.Equal(t, []int32{1, 2, 3}, p.isr)
	require.Equal(t, int32(6), p.partitionEpoch)

	// The image that brings the commit, and a later one, apply as before.
	require.Equal(t, roleSame, p.update(metadata.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 6}, 1))
	require.Equal(t, []int32{1, 2, 3}, p.isr)
	// A new leader epoch always applies, whatever the partition epoch.
	require.Equal(t, roleFollower, p.update(metadata.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3}, Leader: 2, LeaderEpoch: 3, PartitionEpoch: 7}, 1))
	require.Equal(t, []int32{2, 3}, p.isr)
	require.False(t, p.isLeader)
}

// TestBalanceRoundGapConfig: auto.balance.round.gap.ms defaults to a second, reaches the balancer,
// and a value outside [1, 3600000] is refused by name.
func TestBalanceRoundGapConfig(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	require.Equal(t, int64(1000), c.Balance.AutoBalanceRoundGapMs)
	b := &Broker{cfg: c}
	require.Equal(t, time.Second, b.autoBalanceConfig().RoundGap)
	for _, v := range []int64{-1, 3600001} {
		c := DefaultConfig()
		c.Balance.AutoBalanceRoundGapMs = v
		require.ErrorContains(t, c.Validate(), "auto.balance.round.gap.ms")
	}
}
