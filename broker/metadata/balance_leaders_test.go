package metadata

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPlanBalanceFewLeaderChanges plays the scaling drill's scale-out (three brokers to five: a
// 40-partition topic with data, and two internal topics of 50 empty partitions, all at RF 3) move
// by move and counts preferred-leader changes, each a leader election and a stall for the
// partition's producers: they stay within a tenth of the fewest that even out the leaders, no
// partition's preferred leader changes twice, and the cluster ends balanced.
func TestPlanBalanceFewLeaderChanges(t *testing.T) {
	brokers := brokersN(5)
	var parts []BalancePartition
	for i, p := range partsOn("drill", 40, 3, []int32{1, 2, 3}, 0) {
		p.Bytes = int64(27000 + 37*i%11*100) // about 1 MB per broker, not all equal
		parts = append(parts, p)
	}
	parts = append(parts, partsOn("__consumer_offsets", 50, 3, []int32{1, 2, 3}, 0)...)
	parts = append(parts, partsOn("__transaction_state", 50, 3, []int32{2, 3, 1}, 0)...)
	cfg := BalanceConfig{MaxMoves: 2, ByteTolerance: 0.1, DiskThreshold: 0.85}

	_, before := counts(parts)
	changes := map[string]int{}
	total := 0
	for round := 1; ; round++ {
		require.Less(t, round, 1000, "no convergence")
		moves := PlanBalance(brokers, parts, cfg)
		if len(moves) == 0 {
			break
		}
		for _, m := range moves {
			if m.From[0] != m.To[0] {
				changes[fmt.Sprintf("%s-%d", m.Topic, m.Partition)]++
				total++
			}
		}
		parts = applyMoves(parts, moves)
	}
	replicas, after := counts(parts)
	least := 0
	for id := int32(1); id <= 5; id++ {
		least += max(0, after[id]-before[id])
		require.InDelta(t, 84, replicas[id], 1, "replicas of broker %d", id)
		require.InDelta(t, 28, after[id], 1, "preferred leaders of broker %d", id)
	}
	twice := 0
	for _, n := range changes {
		if n > 1 {
			twice++
		}
	}
	t.Logf("%d preferred-leader changes, %d needed at least, %d partitions changed twice or more", total, least, twice)
	require.LessOrEqual(t, total, least+least/10)
	require.Zero(t, twice)
}

// TestSmallPickLeaderThenSize: a count move from a broker that leads more than the target takes a
// partition it leads, unless that one is much larger than the smallest (a count move copies little);
// from a broker that does not lead more, one it does not lead.
func TestSmallPickLeaderThenSize(t *testing.T) {
	brokers := brokersN(3)
	pick := func(parts []BalancePartition) string {
		s := newBalanceState(brokers, parts)
		i, ok := s.smallPick(1, 2, func(BalancePartition) bool { return true })
		require.True(t, ok)
		return s.parts[i].Topic
	}
	lead := func(bytes int64) []BalancePartition {
		return []BalancePartition{
			{Topic: "led", Replicas: []int32{1, 3}, Bytes: bytes},
			{Topic: "follows", Replicas: []int32{3, 1}, Bytes: 1000},
			{Topic: "x", Partition: 1, Replicas: []int32{1, 3}, Bytes: 1 << 40}, // broker 1 leads 2 more than 2
		}
	}
	require.Equal(t, "led", pick(lead(2000)), "leads more: the led partition, about as small")
	require.Equal(t, "follows", pick(lead(100<<20)), "the led partition is far larger")
	require.Equal(t, "follows", pick([]BalancePartition{
		{Topic: "led", Replicas: []int32{1, 3}, Bytes: 500},
		{Topic: "follows", Replicas: []int32{3, 1}, Bytes: 1000},
		{Topic: "y", Replicas: []int32{2, 3}, Bytes: 1000},
	}), "leaders even: the partition broker 1 does not lead")
}
