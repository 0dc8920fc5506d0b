package metadata

import (
	"math/rand/v2"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// uncleanConfig is the topic config that allows electing a leader outside the ISR, Kafka's
// `unclean.leader.election.enable` (default false).
const uncleanConfig = "unclean.leader.election.enable"

// planPartitions is the controller's level-triggered view of partition leadership: for every partition
// of img it returns the change that brings it in line with the live brokers, treating the brokers in
// dead as fenced too (they are being fenced in the same entry). With preferred set, it also moves
// leadership back to preferred replicas that are live and in sync.
func planPartitions(img *Image, dead map[int32]bool, preferred bool) []record {
	live := func(id int32) bool { return img.Live(id) && !dead[id] }
	var out []record
	for _, t := range img.SortedTopics() {
		unclean := t.Configs[uncleanConfig] == "true"
		for i, p := range t.Partitions {
			if c, ok := planPartition(p, live, unclean, preferred); ok {
				c.TopicID, c.Partition = t.ID, int32(i)
				out = append(out, c)
			}
		}
	}
	return out
}

// planPartition decides one partition's next leader and ISR:
//   - dead members leave the ISR, except that the ISR never becomes empty: its last members stay, so
//     one of them can lead cleanly when it returns;
//   - without a live leader, the first replica (in replica order, so preferably the preferred one) in
//     the live ISR leads (clean election); failing that, with unclean election enabled, the first live
//     replica that a reassignment is not adding leads with an ISR of itself (unclean), else the
//     partition is offline (leader -1);
//   - with preferred set, a live in-sync preferred replica takes leadership back.
//
// Every leader change bumps the leader epoch; every change bumps the partition epoch.
func planPartition(p Partition, live func(int32) bool, unclean, preferred bool) (partitionChangeRecord, bool) {
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return !live(id) })
	if len(isr) == 0 {
		isr = slices.Clone(p.ISR)
	}
	leader, reason := p.Leader, ""
	if leader >= 0 && live(leader) {
		if pref := p.Replicas[0]; preferred && pref != leader && live(pref) && slices.Contains(isr, pref) {
			leader, reason = pref, reasonPreferred
		}
	} else {
		leader, reason = -1, reasonOffline
		for _, r := range p.Replicas {
			if live(r) && slices.Contains(isr, r) {
				leader, reason = r, reasonClean
				break
			}
		}
		if leader < 0 && unclean {
			for _, r := range p.Replicas {
				// A replica a reassignment is adding may hold nothing yet: it is never
				// elected out of the ISR, not even uncleanly (as electOne).
				if live(r) && !slices.Contains(p.AddingReplicas, r) {
					leader, reason, isr = r, reasonUnclean, []int32{r}
					break
				}
			}
		}
	}
	if leader == p.Leader && slices.Equal(isr, p.ISR) {
		return partitionChangeRecord{}, false
	}
	if leader == p.Leader {
		reason = reasonISRShrink
	}
	c := partitionChangeRecord{Leader: leader, LeaderEpoch: p.LeaderEpoch, ISR: isr, PartitionEpoch: p.PartitionEpoch + 1, Reason: reason}
	if leader != p.Leader {
		c.LeaderEpoch++
	}
	return c, true
}

// assignReplicas spreads partitions over brokers like Kafka's rack-unaware assignment: partition p's
// first replica (its preferred leader) is broker (start+p) mod n, so leaders go round robin from a
// random start, and the followers follow at a shift that changes every n partitions, so followers of
// one broker's partitions spread over the others too. first is the number of the first new partition.
func assignReplicas(brokers []int32, count int32, rf int, first int, rng *rand.Rand) [][]int32 {
	n := len(brokers)
	start, shift := rng.IntN(n), rng.IntN(n)
	out := make([][]int32, 0, count)
	for i := 0; i < int(count); i++ {
		p := first + i
		if p > 0 && p%n == 0 {
			shift++
		}
		firstIdx := (p + start) % n
		replicas := []int32{brokers[firstIdx]}
		for j := 0; j < rf-1; j++ {
			replicas = append(replicas, brokers[(firstIdx+1+(shift+j)%(n-1))%n])
		}
		out = append(out, replicas)
	}
	return out
}

// checkAssignment validates a manual replica assignment like Kafka: no empty or repeated replica
// lists, every broker registered, each partition with at least one unfenced broker, and one
// replication factor throughout (rf, if positive, or the first partition's).
func checkAssignment(img *Image, asg [][]int32, rf int) error {
	for i, replicas := range asg {
		if len(replicas) == 0 {
			return kafkaErrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
		}
		if rf <= 0 {
			rf = len(replicas)
		}
		if len(replicas) != rf {
			return kafkaErrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).", len(replicas), rf)
		}
		seen := map[int32]bool{}
		anyLive := false
		for _, r := range replicas {
			if seen[r] {
				return kafkaErrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", r)
			}
			seen[r] = true
			if _, ok := img.Brokers[r]; !ok {
				return kafkaErrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", r)
			}
			anyLive = anyLive || img.Live(r)
		}
		if !anyLive {
			return kafkaErrf(kerr.InvalidReplicaAssignment, "All brokers specified in the manual partition assignment for partition %d are fenced or in controlled shutdown.", i)
		}
	}
	return nil
}
