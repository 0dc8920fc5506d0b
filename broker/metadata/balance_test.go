package metadata

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// applyMoves returns parts after moves completed.
func applyMoves(parts []BalancePartition, moves []Move) []BalancePartition {
	out := slices.Clone(parts)
	for _, m := range moves {
		for i := range out {
			if out[i].Topic == m.Topic && out[i].Partition == m.Partition {
				out[i].Replicas = slices.Clone(m.To)
			}
		}
	}
	return out
}

// counts returns replica and preferred-leader counts by broker.
func counts(parts []BalancePartition) (replicas, leaders map[int32]int) {
	replicas, leaders = map[int32]int{}, map[int32]int{}
	for _, p := range parts {
		for i, r := range p.Replicas {
			replicas[r]++
			if i == 0 {
				leaders[r]++
			}
		}
	}
	return replicas, leaders
}

func brokersN(n int, racks ...string) []BalanceBroker {
	var out []BalanceBroker
	for i := 1; i <= n; i++ {
		b := BalanceBroker{ID: int32(i), Live: true}
		if len(racks) > 0 {
			b.Rack = racks[(i-1)%len(racks)]
		}
		out = append(out, b)
	}
	return out
}

// partsOn returns n partitions of topic t with rf replicas on the first brokers, round robin.
func partsOn(t string, n, rf int, brokers []int32, bytes int64) []BalancePartition {
	var out []BalancePartition
	for i := range n {
		var r []int32
		for j := range rf {
			r = append(r, brokers[(i+j)%len(brokers)])
		}
		out = append(out, BalancePartition{Topic: t, Partition: int32(i), Replicas: r, Bytes: bytes})
	}
	return out
}

// converge runs the balancer until it asks for nothing, completing each round's moves, and
// returns the final partitions and the number of rounds.
func converge(t *testing.T, brokers []BalanceBroker, parts []BalancePartition, cfg BalanceConfig) ([]BalancePartition, int) {
	for round := 1; round <= 100; round++ {
		moves := PlanBalance(brokers, parts, cfg)
		if len(moves) == 0 {
			return parts, round
		}
		for _, m := range moves {
			require.Len(t, m.To, len(m.From), "moves keep the replication factor")
		}
		parts = applyMoves(parts, moves)
	}
	t.Fatal("balancer did not converge in 100 rounds")
	return nil, 0
}

func TestPlanBalance(t *testing.T) {
	cfg := BalanceConfig{MaxMoves: 3, ByteTolerance: 0.1, DiskThreshold: 0.85}

	t.Run("balanced cluster moves nothing", func(t *testing.T) {
		require.Empty(t, PlanBalance(brokersN(3), partsOn("t", 6, 3, []int32{1, 2, 3}, 100), cfg))
	})

	t.Run("new broker gets replicas and leaders", func(t *testing.T) {
		parts := partsOn("t", 12, 3, []int32{1, 2, 3}, 100)
		first := PlanBalance(brokersN(4), parts, cfg)
		require.Len(t, first, 3+0, "at most MaxMoves data moves at once") // no reorder before counts are even
		for _, m := range first {
			require.Contains(t, m.To, int32(4))
			require.Equal(t, CauseBalance, m.Cause)
		}
		parts = append(parts, partsOn("u", 4, 2, []int32{1, 2}, 5000)...)
		final, _ := converge(t, brokersN(4), parts, cfg)
		replicas, leaders := counts(final)
		perTopic := map[string]map[int32]int{}
		for _, p := range final {
			if perTopic[p.Topic] == nil {
				perTopic[p.Topic] = map[int32]int{}
			}
			for _, r := range p.Replicas {
				perTopic[p.Topic][r]++
			}
		}
		for id := int32(1); id <= 4; id++ {
			require.InDelta(t, 9, perTopic["t"][id], 1, "topic t on %d: %v", id, perTopic)
			require.Equal(t, 2, perTopic["u"][id], "topic u on %d: %v", id, perTopic)
		}
		for id := int32(1); id <= 4; id++ {
			require.InDelta(t, 11, replicas[id], 1, "replicas of %d: %v", id, replicas)
			require.InDelta(t, 4, leaders[id], 1, "leaders of %d: %v", id, leaders)
		}
	})

	t.Run("moves in progress count against the budget", func(t *testing.T) {
		parts := partsOn("t", 12, 3, []int32{1, 2, 3}, 100)
		parts[0].Reassigning, parts[1].Reassigning = true, true
		moves := PlanBalance(brokersN(4), parts, cfg)
		dataMoves := 0
		for _, m := range moves {
			require.NotEqual(t, int32(0), m.Partition)
			require.NotEqual(t, int32(1), m.Partition)
			if !sameSet(m.From, m.To) {
				dataMoves++
			}
		}
		require.Equal(t, 1, dataMoves)
	})

	t.Run("cordoned broker is drained", func(t *testing.T) {
		brokers := brokersN(4)
		brokers[0].Cordoned = true
		parts := partsOn("t", 8, 3, []int32{1, 2, 3, 4}, 100)
		final, _ := converge(t, brokers, parts, BalanceConfig{MaxMoves: 100})
		replicas, leaders := counts(final)
		require.Zero(t, replicas[1])
		require.Zero(t, leaders[1])
		require.Equal(t, 24, replicas[2]+replicas[3]+replicas[4])
		moves := PlanBalance(brokers, parts, BalanceConfig{MaxMoves: 100})
		require.Equal(t, CauseDrain, moves[0].Cause)
	})

	t.Run("rack aware", func(t *testing.T) {
		// Brokers 1..6 on racks a,b,c,a,b,c; every partition starts on 1,2,3 (one per rack).
		brokers := brokersN(6, "a", "b", "c")
		parts := partsOn("t", 12, 3, []int32{1, 2, 3}, 100)
		final, _ := converge(t, brokers, parts, cfg)
		rack := map[int32]string{}
		for _, b := range brokers {
			rack[b.ID] = b.Rack
		}
		for _, p := range final {
			seen := map[string]bool{}
			for _, r := range p.Replicas {
				require.False(t, seen[rack[r]], "partition %d has two replicas on rack %s: %v", p.Partition, rack[r], p.Replicas)
				seen[rack[r]] = true
			}
		}
		replicas, _ := counts(final)
		for id := int32(1); id <= 6; id++ {
			require.InDelta(t, 6, replicas[id], 1, "replicas %v", replicas)
		}
	})

	t.Run("disk over threshold sheds largest partitions", func(t *testing.T) {
		brokers := brokersN(4)
		brokers[0].DiskTotal, brokers[0].DiskUsable = 1000, 100 // 90% used
		for i := 1; i < 4; i++ {
			brokers[i].DiskTotal, brokers[i].DiskUsable = 1000, 900
		}
		parts := []BalancePartition{
			{Topic: "big", Partition: 0, Replicas: []int32{1, 2}, Bytes: 80},
			{Topic: "small", Partition: 0, Replicas: []int32{1, 3}, Bytes: 10},
		}
		moves := PlanBalance(brokers, parts, BalanceConfig{MaxMoves: 5, DiskThreshold: 0.85})
		require.NotEmpty(t, moves)
		require.Equal(t, Move{Topic: "big", Partition: 0, From: []int32{1, 2}, To: []int32{4, 2}, Cause: CauseDisk}, moves[0])
		for _, m := range moves {
			require.NotContains(t, m.To, int32(1), "nothing moves onto the full broker")
		}
	})

	t.Run("bytes balance with even counts", func(t *testing.T) {
		// Counts are even (2 each) but broker 1 holds the two big partitions.
		parts := []BalancePartition{
			{Topic: "a", Partition: 0, Replicas: []int32{1}, Bytes: 1000},
			{Topic: "b", Partition: 0, Replicas: []int32{1}, Bytes: 1000},
			{Topic: "a", Partition: 1, Replicas: []int32{2}, Bytes: 10},
			{Topic: "b", Partition: 1, Replicas: []int32{2}, Bytes: 10},
		}
		final, _ := converge(t, brokersN(2), parts, BalanceConfig{MaxMoves: 1, ByteTolerance: 0.1})
		var on1 int64
		for _, p := range final {
			if p.Replicas[0] == 1 {
				on1 += p.Bytes
			}
		}
		require.Less(t, on1, int64(1500), "broker 1 shed a big partition: %v", final)
		replicas, _ := counts(final)
		require.Equal(t, 2, replicas[1], "counts stay even: %v", final)
	})

	t.Run("dead broker receives nothing", func(t *testing.T) {
		brokers := brokersN(4)
		brokers[3].Live = false
		require.Empty(t, PlanBalance(brokers, partsOn("t", 6, 3, []int32{1, 2, 3}, 100), cfg))
	})
}

func sameSet(a, b []int32) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
