package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record formats of __consumer_offsets, as written by Kafka 2.1 to 3.x.
const (
	offsetKeyVersion     = 1 // OffsetCommitKey; 0 and 1 are read
	groupKeyVersion      = 2 // GroupMetadataKey
	groupValueVersion    = 3 // GroupMetadataValue with instance ids (KIP-345)
	offsetValueVersion   = 3 // OffsetCommitValue with leader epoch (KIP-320)
	offsetValueV1Version = 1 // OffsetCommitValue with an explicit expire timestamp
)

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = offsetKeyVersion
	k.Group, k.Topic, k.Partition = group, topic, partition
	return k.AppendTo(nil)
}

func offsetValue(oc offsetCommit) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset = oc.offset
	v.LeaderEpoch = oc.leaderEpoch
	v.Metadata = oc.metadata
	v.CommitTimestamp = oc.commitTime.UnixMilli()
	if !oc.expireTime.IsZero() {
		// Kafka keeps the v1 layout for commits that carry their own retention.
		v.Version = offsetValueV1Version
		v.ExpireTimestamp = oc.expireTime.UnixMilli()
	}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = groupKeyVersion
	k.Group = group
	return k.AppendTo(nil)
}

// metadataRecord encodes the group as it stands, with the given assignments
// (nil: the members' current ones).
func (g *group) metadataRecord(assignments map[string][]byte) Record {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" && len(g.members) > 0 {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, m := range g.orderedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		if m.static() {
			vm.InstanceID = kmsg.StringPtr(m.instanceID)
		}
		vm.ClientID, vm.ClientHost = m.clientID, m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalance.Milliseconds())
		vm.SessionTimeoutMillis = int32(m.session.Milliseconds())
		vm.Subscription = nonNil(m.metadataFor(g.protocol))
		if assignments != nil {
			vm.Assignment = nonNil(assignments[m.id])
		} else {
			vm.Assignment = nonNil(m.assignment)
		}
		v.Members = append(v.Members, vm)
	}
	return Record{Key: groupKey(g.id), Value: v.AppendTo(nil)}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// storeMetadata appends the group's metadata record with the members'
// current assignments.
func (g *group) storeMetadata(ctx context.Context) error {
	return g.c.store.Append(ctx, g.partition, []Record{g.metadataRecord(nil)})
}

// appendCode translates a Store.Append error into the response code Kafka
// gives for it (GroupMetadataManager's storeOffsets/storeGroup mappings).
func appendCode(err error, commit bool) int16 {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		if commit {
			return kerr.InvalidCommitOffsetSize.Code
		}
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}

// decoded is one replayed record: exactly one of offset or meta is set, or
// neither for record types that do not concern classic groups.
type decoded struct {
	group     string
	topic     string
	partition int32
	offset    *offsetCommit // nil with isOffset: tombstone
	isOffset  bool
	meta      *kmsg.GroupMetadataValue // nil with isMeta: tombstone
	isMeta    bool
}

// decodeRecord parses a __consumer_offsets record. Keys of other record types
// (transactions, KIP-848 groups) are skipped; malformed bytes are an error.
func decodeRecord(r Record) (decoded, error) {
	var d decoded
	if len(r.Key) < 2 {
		return d, fmt.Errorf("record key of %d bytes is too short", len(r.Key))
	}
	switch version := int16(binary.BigEndian.Uint16(r.Key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(r.Key); err != nil {
			return d, fmt.Errorf("decode offset commit key: %w", err)
		}
		d.group, d.topic, d.partition, d.isOffset = k.Group, k.Topic, k.Partition, true
		if r.Value == nil {
			return d, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(r.Value); err != nil {
			return d, fmt.Errorf("decode offset commit value for group %q: %w", k.Group, err)
		}
		oc := offsetCommit{
			offset:      v.Offset,
			leaderEpoch: -1,
			metadata:    v.Metadata,
			commitTime:  time.UnixMilli(v.CommitTimestamp),
		}
		if v.Version >= 3 {
			oc.leaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 && v.ExpireTimestamp >= 0 {
			oc.expireTime = time.UnixMilli(v.ExpireTimestamp)
		}
		d.offset = &oc
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(r.Key); err != nil {
			return d, fmt.Errorf("decode group metadata key: %w", err)
		}
		d.group, d.isMeta = k.Group, true
		if r.Value == nil {
			return d, nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(r.Value); err != nil {
			return d, fmt.Errorf("decode group metadata value for group %q: %w", k.Group, err)
		}
		d.meta = &v
	}
	return d, nil
}

// replay rebuilds the groups of partition p from the Store, like Kafka's
// GroupMetadataManager.doLoadGroupsAndOffsets.
func (c *Coordinator) replay(ctx context.Context, p int32) ([]*group, error) {
	offsets := make(map[string]map[string]map[int32]offsetCommit)
	metas := make(map[string]*kmsg.GroupMetadataValue)
	// pending holds transactional offsets by producer, then group, until
	// their marker.
	pending := make(map[int64]map[string]map[topicPartition]offsetCommit)
	n := 0
	err := c.store.Load(p, func(r Record) error {
		n++
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.Txn != nil && r.Txn.Marker {
			for gid, ps := range pending[r.Txn.ProducerID] {
				for tp, oc := range ps {
					if !r.Txn.Commit {
						break
					}
					if offsets[gid] == nil {
						offsets[gid] = make(map[string]map[int32]offsetCommit)
					}
					if offsets[gid][tp.topic] == nil {
						offsets[gid][tp.topic] = make(map[int32]offsetCommit)
					}
					if cur, ok := offsets[gid][tp.topic][tp.partition]; !ok || cur.order < oc.order {
						offsets[gid][tp.topic][tp.partition] = oc
					}
				}
			}
			delete(pending, r.Txn.ProducerID)
			return nil
		}
		d, err := decodeRecord(r)
		if err != nil {
			return fmt.Errorf("record %d: %w", n-1, err)
		}
		if d.isOffset && d.offset != nil {
			d.offset.order = c.commitOrder.Add(1)
		}
		if r.Txn != nil && d.isOffset && d.offset != nil {
			pid := r.Txn.ProducerID
			if pending[pid] == nil {
				pending[pid] = make(map[string]map[topicPartition]offsetCommit)
			}
			if pending[pid][d.group] == nil {
				pending[pid][d.group] = make(map[topicPartition]offsetCommit)
			}
			pending[pid][d.group][topicPartition{d.topic, d.partition}] = *d.offset
			return nil
		}
		switch {
		case d.isOffset:
			if d.offset == nil {
				if ts := offsets[d.group][d.topic]; ts != nil {
					delete(ts, d.partition)
					if len(ts) == 0 {
						delete(offsets[d.group], d.topic)
					}
				}
				return nil
			}
			if offsets[d.group] == nil {
				offsets[d.group] = make(map[string]map[int32]offsetCommit)
			}
			if offsets[d.group][d.topic] == nil {
				offsets[d.group][d.topic] = make(map[int32]offsetCommit)
			}
			offsets[d.group][d.topic][d.partition] = *d.offset
		case d.isMeta:
			if d.meta == nil {
				delete(metas, d.group)
			} else {
				metas[d.group] = d.meta
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*group, len(metas)+len(offsets))
	for id, meta := range metas {
		g := newGroup(c, id, p)
		g.restore(meta)
		byID[id] = g
	}
	for id, os := range offsets {
		if len(os) == 0 {
			continue
		}
		g := byID[id]
		if g == nil {
			// Offsets only: a simple consumer or a group whose metadata was
			// never written. When it emptied is unknown, so offsets expire
			// by their commit time.
			g = newGroup(c, id, p)
			g.stateTime = time.Time{}
			byID[id] = g
		}
		g.offsets = os
	}
	// Transactions still open at the end of the log keep their offsets
	// pending until their marker arrives.
	for pid, groups := range pending {
		for id, ps := range groups {
			g := byID[id]
			if g == nil {
				g = newGroup(c, id, p)
				g.stateTime = time.Time{}
				byID[id] = g
			}
			for tp, oc := range ps {
				g.setPendingTxnOffset(pid, tp, oc)
			}
		}
	}
	return slicesOfValues(byID), nil
}

// restore installs stored group metadata: Stable with its members and their
// assignments if it had any, else Empty, as Kafka's loadGroup does.
func (g *group) restore(v *kmsg.GroupMetadataValue) {
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	now := g.c.now()
	for _, vm := range v.Members {
		m := &member{
			id:           vm.MemberID,
			clientID:     vm.ClientID,
			clientHost:   vm.ClientHost,
			protocolType: v.ProtocolType,
			protocols:    []protocol{{name: g.protocol, metadata: vm.Subscription}},
			session:      time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalance:    time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			assignment:   vm.Assignment,
		}
		if m.rebalance <= 0 {
			m.rebalance = m.session
		}
		if vm.InstanceID != nil {
			m.instanceID = *vm.InstanceID
		}
		m.deadline = now.Add(m.session)
		leader := g.leader
		g.addMember(m)
		g.leader = leader
	}
	if len(g.members) > 0 {
		if g.members[g.leader] == nil {
			g.leader = g.orderedMembers()[0].id
		}
		g.transition(stateStable)
		g.subscribed = g.computeSubscribed()
	} else {
		g.leader = ""
		g.transition(stateEmpty)
		if v.Version >= 2 && v.CurrentStateTimestamp > 0 {
			g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
		}
	}
}
