package metadata

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// builder makes the next image from the previous one, copying on write: the broker and topic maps are
// cloned on the first change, a topic and its partition slice on its first change. An entry applies
// atomically: on any error the builder is dropped and the previous image stays.
type builder struct {
	next          *Image
	index         uint64
	brokersCloned bool
	topicsCloned  bool
	quotasCloned  bool
	scramCloned   bool
	touched       map[[16]byte]bool
	events        []Event
}

func newBuilder(prev *Image, index uint64) *builder {
	n := *prev
	n.Index = index
	return &builder{next: &n, index: index, touched: map[[16]byte]bool{}}
}

// applyEntry applies decoded records to prev as the entry at index. With keepEvents false the events
// are not materialized, which the controller uses to look ahead at what a proposal would do.
func applyEntry(prev *Image, index uint64, recs []stamped, keepEvents bool) (*Image, error) {
	b := newBuilder(prev, index)
	for _, r := range recs {
		if err := b.apply(r); err != nil {
			return nil, fmt.Errorf("%s: %w", r.rec.recordType(), err)
		}
	}
	if keepEvents {
		b.next.Events = appendEvents(prev.Events, b.events)
	}
	return b.next, nil
}

// appendEvents appends to the newest image's events, keeping the last MaxEvents. It may write into the
// backing array shared with older images, but only past their length, and only the FSM (one goroutine,
// always on the newest image) calls it, so older images never see a change.
func appendEvents(old, add []Event) []Event {
	if len(add) == 0 {
		return old
	}
	out := append(old, add...)
	if len(out) > MaxEvents {
		out = out[len(out)-MaxEvents:]
	}
	return out
}

func (b *builder) brokers() map[int32]Broker {
	if !b.brokersCloned {
		b.next.Brokers = maps.Clone(b.next.Brokers)
		b.brokersCloned = true
	}
	return b.next.Brokers
}

func (b *builder) topics() {
	if !b.topicsCloned {
		b.next.Topics = maps.Clone(b.next.Topics)
		b.next.topicsByID = maps.Clone(b.next.topicsByID)
		b.topicsCloned = true
	}
}

// topic returns a writable copy of the topic with the given ID, or nil.
func (b *builder) topic(id [16]byte) *Topic {
	t := b.next.topicsByID[id]
	if t == nil || b.touched[id] {
		return t
	}
	b.topics()
	c := *t
	c.Partitions = slices.Clone(t.Partitions)
	b.next.Topics[c.Name] = &c
	b.next.topicsByID[id] = &c
	b.touched[id] = true
	return &c
}

func (b *builder) event(t time.Time, typ EventType, broker int32, topic string, partition int32, detail string) {
	b.events = append(b.events, Event{Index: b.index, Time: t, Type: typ, Broker: broker, Topic: topic, Partition: partition, Detail: detail})
}

// newPartition is the initial state of a partition: the unfenced replicas are the ISR and the first
// of them leads. Without any (the controller never proposes that) it starts offline.
func (b *builder) newPartition(replicas []int32) Partition {
	p := Partition{Replicas: slices.Clone(replicas), Leader: -1}
	for _, r := range replicas {
		if br, ok := b.next.Brokers[r]; ok && !br.Fenced {
			p.ISR = append(p.ISR, r)
		}
	}
	if len(p.ISR) > 0 {
		p.Leader = p.ISR[0]
	} else {
		p.ISR = slices.Clone(replicas)
	}
	return p
}

func validReplicas(replicas []int32) error {
	if len(replicas) == 0 {
		return fmt.Errorf("empty replica list")
	}
	seen := map[int32]bool{}
	for _, r := range replicas {
		if r < 0 || seen[r] {
			return fmt.Errorf("replica list %v has a negative or repeated broker", replicas)
		}
		seen[r] = true
	}
	return nil
}

func (b *builder) apply(s stamped) error {
	t := s.time
	switch r := s.rec.(type) {
	case registerBrokerRecord:
		if r.ID < 0 {
			return fmt.Errorf("negative broker id %d", r.ID)
		}
		b.brokers()[r.ID] = Broker{ID: r.ID, Host: r.Host, Port: r.Port, Rack: r.Rack, IncarnationID: r.IncarnationID,
			Epoch: int64(b.index), Fenced: true, Listeners: slices.Clone(r.Listeners)}
		b.event(t, EventBrokerJoined, r.ID, "", -1, fmt.Sprintf("%s:%d rack=%q epoch=%d", r.Host, r.Port, r.Rack, b.index))

	case fenceBrokerRecord:
		br, ok := b.next.Brokers[r.ID]
		if !ok || br.Epoch != r.Epoch {
			return fmt.Errorf("broker %d epoch %d is not registered", r.ID, r.Epoch)
		}
		if !br.Fenced {
			br.Fenced = true
			b.brokers()[r.ID] = br
			b.event(t, EventBrokerFenced, r.ID, "", -1, r.Reason)
		}

	case unfenceBrokerRecord:
		br, ok := b.next.Brokers[r.ID]
		if !ok || br.Epoch != r.Epoch {
			return fmt.Errorf("broker %d epoch %d is not registered", r.ID, r.Epoch)
		}
		if br.Fenced {
			br.Fenced = false
			b.brokers()[r.ID] = br
			b.event(t, EventBrokerUnfenced, r.ID, "", -1, "")
		}

	case createTopicRecord:
		if r.Name == "" || b.next.Topics[r.Name] != nil || b.next.topicsByID[r.TopicID] != nil || r.TopicID == [16]byte{} {
			return fmt.Errorf("topic %q (or its ID) exists or is invalid", r.Name)
		}
		if len(r.Partitions) == 0 {
			return fmt.Errorf("topic %q has no partitions", r.Name)
		}
		nt := &Topic{Name: r.Name, ID: r.TopicID, Configs: maps.Clone(r.Configs)}
		if nt.Configs == nil {
			nt.Configs = map[string]string{}
		}
		for _, replicas := range r.Partitions {
			if err := validReplicas(replicas); err != nil {
				return err
			}
			nt.Partitions = append(nt.Partitions, b.newPartition(replicas))
		}
		b.topics()
		b.next.Topics[r.Name] = nt
		b.next.topicsByID[r.TopicID] = nt
		b.touched[r.TopicID] = true
		b.event(t, EventTopicCreated, -1, r.Name, -1,
			fmt.Sprintf("partitions=%d replication_factor=%d", len(r.Partitions), len(r.Partitions[0])))

	case deleteTopicRecord:
		old := b.next.topicsByID[r.TopicID]
		if old == nil {
			return fmt.Errorf("unknown topic id %x", r.TopicID)
		}
		b.topics()
		delete(b.next.Topics, old.Name)
		delete(b.next.topicsByID, r.TopicID)
		delete(b.touched, r.TopicID)
		b.event(t, EventTopicDeleted, -1, old.Name, -1, fmt.Sprintf("partitions=%d", len(old.Partitions)))

	case createPartitionsRecord:
		tp := b.topic(r.TopicID)
		if tp == nil {
			return fmt.Errorf("unknown topic id %x", r.TopicID)
		}
		from := len(tp.Partitions)
		for _, replicas := range r.NewReplicas {
			if err := validReplicas(replicas); err != nil {
				return err
			}
			tp.Partitions = append(tp.Partitions, b.newPartition(replicas))
		}
		b.event(t, EventPartitionsCreated, -1, tp.Name, -1, fmt.Sprintf("partitions %d -> %d", from, len(tp.Partitions)))

	case alterTopicConfigsRecord:
		tp := b.topic(r.TopicID)
		if tp == nil {
			return fmt.Errorf("unknown topic id %x", r.TopicID)
		}
		detail := configDiff(tp.Configs, r.Configs)
		tp.Configs = maps.Clone(r.Configs)
		if tp.Configs == nil {
			tp.Configs = map[string]string{}
		}
		b.event(t, EventConfigChanged, -1, tp.Name, -1, detail)

	case partitionChangeRecord:
		return b.applyPartitionChange(t, r)

	case alterBrokerConfigsRecord:
		old := b.next.BrokerConfigs[r.Resource]
		b.next.BrokerConfigs = maps.Clone(b.next.BrokerConfigs)
		if b.next.BrokerConfigs == nil {
			b.next.BrokerConfigs = map[string]map[string]string{}
		}
		if len(r.Configs) == 0 {
			delete(b.next.BrokerConfigs, r.Resource)
		} else {
			b.next.BrokerConfigs[r.Resource] = maps.Clone(r.Configs)
		}
		who := "cluster default"
		if r.Resource != "" {
			who = "broker " + r.Resource
		}
		b.event(t, EventConfigChanged, -1, "", -1, who+": "+configDiff(old, r.Configs))

	case allocateProducerIDsRecord:
		if r.BlockStart != b.next.NextProducerIDBlock || r.NextBlockStart <= r.BlockStart {
			return fmt.Errorf("producer id block [%d, %d) does not follow %d", r.BlockStart, r.NextBlockStart, b.next.NextProducerIDBlock)
		}
		b.next.NextProducerIDBlock = r.NextBlockStart

	case clientQuotaRecord:
		return b.applyClientQuota(r)
	case createACLsRecord, deleteACLsRecord:
		return b.applyACLs(r)
	case scramCredentialRecord, removeScramCredentialRecord:
		return b.applyScram(t, s.rec)
	case tenantRecord, removeTenantRecord, planRecord:
		return b.applyTenant(s.rec)
	case allocateNodeIDRecord, quorumChangeRecord, registerControllerRecord:
		return b.applyNodes(t, s.rec)
	case reassignPartitionRecord:
		return b.applyReassign(t, r)
	case unregisterBrokerRecord:
		return b.applyUnregister(t, r)

	default:
		return fmt.Errorf("unhandled record %T", s.rec)
	}
	return nil
}

func (b *builder) applyPartitionChange(t time.Time, r partitionChangeRecord) error {
	tp := b.topic(r.TopicID)
	if tp == nil {
		return fmt.Errorf("unknown topic id %x", r.TopicID)
	}
	if r.Partition < 0 || int(r.Partition) >= len(tp.Partitions) {
		return fmt.Errorf("topic %s has no partition %d", tp.Name, r.Partition)
	}
	old := tp.Partitions[r.Partition]
	if r.PartitionEpoch <= old.PartitionEpoch || r.LeaderEpoch < old.LeaderEpoch {
		return fmt.Errorf("%s-%d: stale change to partition epoch %d leader epoch %d (now %d, %d)",
			tp.Name, r.Partition, r.PartitionEpoch, r.LeaderEpoch, old.PartitionEpoch, old.LeaderEpoch)
	}
	if len(r.ISR) == 0 || (r.Leader >= 0 && !slices.Contains(r.ISR, r.Leader)) {
		return fmt.Errorf("%s-%d: ISR %v without leader %d", tp.Name, r.Partition, r.ISR, r.Leader)
	}
	for _, id := range r.ISR {
		if !slices.Contains(old.Replicas, id) {
			return fmt.Errorf("%s-%d: ISR member %d is not a replica", tp.Name, r.Partition, id)
		}
	}
	np := old
	np.Leader, np.LeaderEpoch, np.PartitionEpoch = r.Leader, r.LeaderEpoch, r.PartitionEpoch
	np.ISR = slices.Clone(r.ISR)
	tp.Partitions[r.Partition] = np

	if np.Leader != old.Leader {
		detail := fmt.Sprintf("leader %d -> %d, leader epoch %d, isr %v", old.Leader, np.Leader, np.LeaderEpoch, np.ISR)
		switch {
		case np.Leader < 0:
			b.event(t, EventPartitionOffline, old.Leader, tp.Name, r.Partition, detail)
		case r.Reason == reasonUnclean:
			b.event(t, EventUncleanLeaderElected, np.Leader, tp.Name, r.Partition, detail)
		case r.Reason == reasonPreferred:
			b.event(t, EventLeaderElected, np.Leader, tp.Name, r.Partition, "preferred: "+detail)
		default:
			b.event(t, EventLeaderElected, np.Leader, tp.Name, r.Partition, "clean: "+detail)
		}
	}
	removed, added := setDiff(old.ISR, np.ISR), setDiff(np.ISR, old.ISR)
	if len(removed) > 0 {
		b.event(t, EventISRShrink, np.Leader, tp.Name, r.Partition, fmt.Sprintf("isr %v -> %v (removed %v)", old.ISR, np.ISR, removed))
	}
	if len(added) > 0 {
		b.event(t, EventISRExpand, np.Leader, tp.Name, r.Partition, fmt.Sprintf("isr %v -> %v (added %v)", old.ISR, np.ISR, added))
	}
	return nil
}

// setDiff returns the members of a that are not in b.
func setDiff(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// configDiff describes a config change for the event log: keys set, changed and removed.
func configDiff(old, new map[string]string) string {
	var parts []string
	for k, v := range new {
		if ov, ok := old[k]; !ok || ov != v {
			parts = append(parts, fmt.Sprintf("%s=%s", k, v))
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			parts = append(parts, "-"+k)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
