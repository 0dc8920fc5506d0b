package tickets

import (
	"sort"

	"github.com/sluicemq/sluice/tickets/snapshot"
)

// summaryPartitions is how many partitions the incident page lists before
// linking to the full list.
const summaryPartitions = 10

// topicImpact counts one topic's affected partitions.
type topicImpact struct {
	Topic           string
	UnderReplicated int
	Offline         int
}

// impactSummary is what the incident page shows after the diagnosis: the
// brokers the snapshot found down, the affected partitions counted per topic,
// and the first of them, so the page stays short with hundreds affected.
type impactSummary struct {
	DownBrokers []snapshot.BrokerInfo
	Partitions  int // under-replicated and offline
	Offline     int
	Topics      []topicImpact
	First       []snapshot.PartitionState
	More        int // partitions not in First
}

func summarizeImpact(s *snapshot.Snapshot) impactSummary {
	var sum impactSummary
	if s.Cluster != nil {
		for _, b := range s.Cluster.Brokers {
			if b.Fenced || !b.Reachable {
				sum.DownBrokers = append(sum.DownBrokers, b)
			}
		}
	}
	byTopic := map[string]*topicImpact{}
	topic := func(name string) *topicImpact {
		t := byTopic[name]
		if t == nil {
			t = &topicImpact{Topic: name}
			byTopic[name] = t
		}
		return t
	}
	all := append(append([]snapshot.PartitionState{}, s.Offline...), s.UnderReplicated...)
	for _, p := range s.Offline {
		topic(p.Topic).Offline++
	}
	for _, p := range s.UnderReplicated {
		topic(p.Topic).UnderReplicated++
	}
	sum.Partitions, sum.Offline = len(all), len(s.Offline)
	for _, t := range byTopic {
		sum.Topics = append(sum.Topics, *t)
	}
	// Offline first, then the topics with most affected partitions.
	sort.Slice(sum.Topics, func(i, j int) bool {
		a, b := sum.Topics[i], sum.Topics[j]
		if a.Offline != b.Offline {
			return a.Offline > b.Offline
		}
		if a.UnderReplicated != b.UnderReplicated {
			return a.UnderReplicated > b.UnderReplicated
		}
		return a.Topic < b.Topic
	})
	sort.SliceStable(all, func(i, j int) bool {
		oi, oj := all[i].Leader < 0, all[j].Leader < 0
		if oi != oj {
			return oi
		}
		if all[i].Topic != all[j].Topic {
			return all[i].Topic < all[j].Topic
		}
		return all[i].Partition < all[j].Partition
	})
	if len(all) > summaryPartitions {
		sum.First, sum.More = all[:summaryPartitions], len(all)-summaryPartitions
	} else {
		sum.First = all
	}
	return sum
}

// plural is "1 partition", "2 partitions", "0 partitions".
func plural(n int, one, many string) string { return snapshot.Plural(n, one, many) }
