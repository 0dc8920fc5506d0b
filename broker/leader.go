package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// partitionRef names a partition in a request, by topic name or ID.
type partitionRef struct {
	topic string
	id    [16]byte
	byID  bool
	index int32
}

// localReplica resolves a request's partition to the replica held here, with the
// Kafka error a client should see otherwise: an unknown topic or partition, or
// NOT_LEADER_OR_FOLLOWER when the partition exists but this broker holds no
// replica of it (the client refreshes its metadata).
func (b *Broker) localReplica(ref partitionRef) (*partition, error) {
	var p *partition
	if ref.byID {
		p = b.partitionByID(ref.id, ref.index)
	} else {
		p = b.partitionOf(ref.topic, ref.index)
	}
	if p != nil {
		return p, nil
	}
	img := b.quorum.Image()
	var exists bool
	if ref.byID {
		t := img.TopicByID(ref.id)
		if t == nil {
			return nil, kerr.UnknownTopicID
		}
		exists = ref.index >= 0 && int(ref.index) < len(t.Partitions)
	} else {
		_, exists = img.Partition(ref.topic, ref.index)
	}
	if exists {
		return nil, kerr.NotLeaderForPartition
	}
	return nil, kerr.UnknownTopicOrPartition
}

// leaderReplica is localReplica for requests only a leader serves; currentEpoch is
// the client's view of the leader epoch (-1: unknown), checked like Kafka does.
func (b *Broker) leaderReplica(ref partitionRef, currentEpoch int32) (*partition, error) {
	p, err := b.localReplica(ref)
	if err != nil {
		return nil, err
	}
	if err := p.checkEpoch(currentEpoch); err != nil {
		return p, err
	}
	_, _, isLeader := p.state()
	if !isLeader {
		return p, kerr.NotLeaderForPartition
	}
	return p, nil
}

// checkEpoch compares a request's current leader epoch with ours.
func (p *partition) checkEpoch(current int32) error {
	if current < 0 {
		return nil
	}
	_, epoch, _ := p.state()
	switch {
	case current < epoch:
		return kerr.FencedLeaderEpoch
	case current > epoch:
		return kerr.UnknownLeaderEpoch
	}
	return nil
}
