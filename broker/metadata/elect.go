package metadata

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ElectionType is Kafka's ElectLeaders election type.
type ElectionType int8

// Election types of ElectLeaders (KIP-460).
const (
	// ElectPreferred moves leadership to the preferred (first) replica if it is live and in sync.
	ElectPreferred ElectionType = 0
	// ElectUnclean elects a leader for a partition without one: an in-sync live replica if there
	// is one, else any live replica (which may lose acknowledged records).
	ElectUnclean ElectionType = 1
)

// ElectionResult is the outcome of one partition's election; Err is nil when a leader was elected.
type ElectionResult struct {
	Topic     string
	Partition int32
	Err       error
}

// TopicPartitions names partitions by topic.
type TopicPartitions map[string][]int32

// ElectLeaders elects leaders as Kafka's ElectLeaders does, in one entry, and returns a result per
// partition: ELECTION_NOT_NEEDED (the preferred replica leads already; the partition has a live
// leader, for unclean), PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
// UNKNOWN_TOPIC_OR_PARTITION. With partitions nil it elects for every partition and, like Kafka,
// leaves partitions that needed no election out of the results.
func (q *Quorum) ElectLeaders(ctx context.Context, typ ElectionType, partitions TopicPartitions) ([]ElectionResult, error) {
	if _, err := q.lockController(); err != nil {
		return nil, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	all := partitions == nil
	if all {
		partitions = TopicPartitions{}
		for _, t := range img.SortedTopics() {
			for i := range t.Partitions {
				partitions[t.Name] = append(partitions[t.Name], int32(i))
			}
		}
	}
	var results []ElectionResult
	var recs []record
	for _, t := range sortedKeys(partitions) {
		for _, i := range partitions[t] {
			res := ElectionResult{Topic: t, Partition: i}
			tp := img.Topic(t)
			if tp == nil || i < 0 || int(i) >= len(tp.Partitions) {
				res.Err = kafkaErrf(kerr.UnknownTopicOrPartition, "Partition %s-%d does not exist.", t, i)
				results = append(results, res)
				continue
			}
			rec, err := electOne(tp.Partitions[i], typ, img.Live)
			if err != nil {
				res.Err = kafkaErrf(err, "%s-%d: %s", t, i, err.Message)
				if all && err == kerr.ElectionNotNeeded {
					continue
				}
			} else {
				rec.TopicID, rec.Partition = tp.ID, i
				recs = append(recs, rec)
			}
			results = append(results, res)
		}
	}
	if len(recs) > 0 {
		if _, err := q.proposeLocked(ctx, recs); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// electOne decides one partition's election.
func electOne(p Partition, typ ElectionType, live func(int32) bool) (partitionChangeRecord, *kerr.Error) {
	change := func(leader int32, isr []int32, reason string) partitionChangeRecord {
		return partitionChangeRecord{Leader: leader, LeaderEpoch: p.LeaderEpoch + 1, ISR: isr, PartitionEpoch: p.PartitionEpoch + 1, Reason: reason}
	}
	switch typ {
	case ElectPreferred:
		pref := p.Replicas[0]
		switch {
		case p.Leader == pref:
			return partitionChangeRecord{}, kerr.ElectionNotNeeded
		case !live(pref) || !slices.Contains(p.ISR, pref):
			return partitionChangeRecord{}, kerr.PreferredLeaderNotAvailable
		}
		return change(pref, slices.Clone(p.ISR), reasonPreferred), nil
	case ElectUnclean:
		if p.Leader >= 0 && live(p.Leader) {
			return partitionChangeRecord{}, kerr.ElectionNotNeeded
		}
		for _, r := range p.Replicas {
			if live(r) && slices.Contains(p.ISR, r) {
				isr := slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return !live(id) })
				return change(r, isr, reasonClean), nil
			}
		}
		for _, r := range p.Replicas {
			if live(r) && !slices.Contains(p.AddingReplicas, r) {
				return change(r, []int32{r}, reasonUnclean), nil
			}
		}
		return partitionChangeRecord{}, kerr.EligibleLeadersNotAvailable
	}
	return partitionChangeRecord{}, kerr.InvalidRequest
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
