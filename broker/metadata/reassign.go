package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Partition reassignment follows Kafka's KIP-455. Starting a reassignment makes the replica set the
// union of the target and the current replicas (target first, so the preferred leader is the
// target's), with AddingReplicas (target minus current) and RemovingReplicas (current minus target).
// The adding replicas open the partition and fetch from the leader like any follower; its leader
// adds each to the ISR once caught up (AlterPartition). When every target replica is in the ISR the
// controller completes the reassignment in one record: the replicas become the target, the ISR
// loses the removing replicas, and a leader that is leaving hands leadership to the first in-sync
// target replica (a new leader epoch). Brokers that are no longer replicas stop fetching and delete
// their copy of the partition. Cancelling reverts to the current replicas minus the adding ones.

// Causes of a reassignment, kept in the record for the event log and the partition move metric.
const (
	// CauseAdmin is a reassignment asked for with AlterPartitionReassignments.
	CauseAdmin = "admin"
	// CauseBalance is a move the automatic balancer made for replica, leader or byte balance.
	CauseBalance = "balance"
	// CauseDisk is a move the balancer made off a broker whose disk crossed auto.balance.disk.threshold.
	CauseDisk = "disk"
)

// Reasons of a reassignment record.
const (
	reasonReassignStart    = "reassignment_started"
	reasonReassignComplete = "reassignment_completed"
	reasonReassignCancel   = "reassignment_cancelled"
)

// reassignPartitionRecord is the whole new replication state of a partition whose replica set changes:
// a reassignment starting, completing or being cancelled.
type reassignPartitionRecord struct {
	TopicID        [16]byte `json:"topic_id"`
	Partition      int32    `json:"partition"`
	Replicas       []int32  `json:"replicas"`
	Adding         []int32  `json:"adding,omitempty"`
	Removing       []int32  `json:"removing,omitempty"`
	Leader         int32    `json:"leader"`
	LeaderEpoch    int32    `json:"leader_epoch"`
	ISR            []int32  `json:"isr"`
	PartitionEpoch int32    `json:"partition_epoch"`
	Reason         string   `json:"reason"`
	Cause          string   `json:"cause,omitempty"`
}

// unregisterBrokerRecord removes a broker that holds no replica from the metadata (Kafka's
// UnregisterBroker).
type unregisterBrokerRecord struct {
	ID    int32 `json:"id"`
	Epoch int64 `json:"epoch"`
}

func (reassignPartitionRecord) recordType() string { return "reassign_partition" }
func (unregisterBrokerRecord) recordType() string  { return "unregister_broker" }

// state returns the partition the record describes.
func (r reassignPartitionRecord) state() Partition {
	return Partition{Replicas: slices.Clone(r.Replicas), ISR: slices.Clone(r.ISR), Leader: r.Leader, LeaderEpoch: r.LeaderEpoch,
		PartitionEpoch: r.PartitionEpoch, AddingReplicas: slices.Clone(r.Adding), RemovingReplicas: slices.Clone(r.Removing)}
}

func (b *builder) applyReassign(t time.Time, r reassignPartitionRecord) error {
	tp := b.topic(r.TopicID)
	if tp == nil {
		return fmt.Errorf("unknown topic id %x", r.TopicID)
	}
	if r.Partition < 0 || int(r.Partition) >= len(tp.Partitions) {
		return fmt.Errorf("topic %s has no partition %d", tp.Name, r.Partition)
	}
	old := tp.Partitions[r.Partition]
	if r.PartitionEpoch <= old.PartitionEpoch || r.LeaderEpoch < old.LeaderEpoch {
		return fmt.Errorf("%s-%d: stale reassignment to partition epoch %d leader epoch %d (now %d, %d)",
			tp.Name, r.Partition, r.PartitionEpoch, r.LeaderEpoch, old.PartitionEpoch, old.LeaderEpoch)
	}
	if err := validReplicas(r.Replicas); err != nil {
		return err
	}
	if len(r.ISR) == 0 || (r.Leader >= 0 && !slices.Contains(r.ISR, r.Leader)) {
		return fmt.Errorf("%s-%d: ISR %v without leader %d", tp.Name, r.Partition, r.ISR, r.Leader)
	}
	for _, set := range [][]int32{r.ISR, r.Adding, r.Removing} {
		for _, id := range set {
			if !slices.Contains(r.Replicas, id) {
				return fmt.Errorf("%s-%d: %d is not a replica of %v", tp.Name, r.Partition, id, r.Replicas)
			}
		}
	}
	for _, id := range r.Adding {
		if slices.Contains(r.Removing, id) {
			return fmt.Errorf("%s-%d: replica %d both added and removed", tp.Name, r.Partition, id)
		}
	}
	np := r.state()
	tp.Partitions[r.Partition] = np
	cause := r.Cause
	if cause == "" {
		cause = CauseAdmin
	}
	switch r.Reason {
	case reasonReassignStart:
		b.event(t, EventReassignmentStarted, -1, tp.Name, r.Partition, fmt.Sprintf("replicas %v -> %v (adding %v, removing %v), cause %s",
			old.Replicas, targetReplicas(np), np.AddingReplicas, np.RemovingReplicas, cause))
	case reasonReassignComplete:
		b.event(t, EventReassignmentCompleted, np.Leader, tp.Name, r.Partition, fmt.Sprintf("replicas %v -> %v, isr %v, cause %s",
			old.Replicas, np.Replicas, np.ISR, cause))
	case reasonReassignCancel:
		b.event(t, EventReassignmentCancelled, np.Leader, tp.Name, r.Partition, fmt.Sprintf("replicas %v -> %v", old.Replicas, np.Replicas))
	}
	if np.Leader != old.Leader {
		detail := fmt.Sprintf("reassignment: leader %d -> %d, leader epoch %d, isr %v", old.Leader, np.Leader, np.LeaderEpoch, np.ISR)
		if np.Leader < 0 {
			b.event(t, EventPartitionOffline, old.Leader, tp.Name, r.Partition, detail)
		} else {
			b.event(t, EventLeaderElected, np.Leader, tp.Name, r.Partition, detail)
		}
	}
	return nil
}

func (b *builder) applyUnregister(t time.Time, r unregisterBrokerRecord) error {
	br, ok := b.next.Brokers[r.ID]
	if !ok || br.Epoch != r.Epoch {
		return fmt.Errorf("broker %d epoch %d is not registered", r.ID, r.Epoch)
	}
	if !br.Fenced {
		return fmt.Errorf("broker %d is not fenced", r.ID)
	}
	if tp, i, ok := b.next.hostedBy(r.ID); ok {
		return fmt.Errorf("broker %d is a replica of %s-%d", r.ID, tp, i)
	}
	delete(b.brokers(), r.ID)
	key := fmt.Sprint(r.ID)
	if _, ok := b.next.BrokerConfigs[key]; ok {
		b.next.BrokerConfigs = maps.Clone(b.next.BrokerConfigs)
		delete(b.next.BrokerConfigs, key)
	}
	b.event(t, EventBrokerUnregistered, r.ID, "", -1, fmt.Sprintf("%s:%d rack=%q", br.Host, br.Port, br.Rack))
	return nil
}

// hostedBy returns a partition broker id is a replica of, if any.
func (img *Image) hostedBy(id int32) (topic string, partition int32, ok bool) {
	for _, t := range img.SortedTopics() {
		for i, p := range t.Partitions {
			if slices.Contains(p.Replicas, id) {
				return t.Name, int32(i), true
			}
		}
	}
	return "", 0, false
}

// Reassigning reports whether a reassignment of the partition is in progress.
func (p Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// targetReplicas is the replica set a reassignment of p ends with (Replicas when none is in progress).
func targetReplicas(p Partition) []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return slices.Contains(p.RemovingReplicas, id) })
}

// TargetReplicas returns the replica set the partition's reassignment ends with, or its replicas when
// no reassignment is in progress.
func (p Partition) TargetReplicas() []int32 { return targetReplicas(p) }

// startReassignment returns the state that starts moving p to target: replicas target followed by
// the current replicas not in it. Kafka computes a reassignment that replaces one in progress the
// same way, from the current (union) replicas.
func startReassignment(p Partition, target []int32) Partition {
	removing := setDiff(p.Replicas, target)
	np := p
	np.Replicas = append(slices.Clone(target), removing...)
	np.AddingReplicas = setDiff(target, p.Replicas)
	np.RemovingReplicas = removing
	np.ISR = slices.Clone(p.ISR)
	np.PartitionEpoch++
	return np
}

// completeReassignment returns the state that ends p's reassignment, if it can end: every target
// replica is in the ISR, and a live one can lead. The leader stays if it is a live target replica;
// otherwise the first in-sync live target replica leads at a new leader epoch.
func completeReassignment(p Partition, live func(int32) bool) (Partition, bool) {
	if !p.Reassigning() {
		return p, false
	}
	target := targetReplicas(p)
	for _, id := range target {
		if !slices.Contains(p.ISR, id) {
			return p, false
		}
	}
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return !slices.Contains(target, id) })
	leader := p.Leader
	if leader < 0 || !live(leader) || !slices.Contains(target, leader) {
		leader = -1
		for _, id := range target {
			if live(id) && slices.Contains(isr, id) {
				leader = id
				break
			}
		}
		if leader < 0 {
			return p, false
		}
	}
	np := Partition{Replicas: target, ISR: isr, Leader: leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch + 1}
	if leader != p.Leader {
		np.LeaderEpoch++
	}
	return np, true
}

// cancelReassignment returns the state that reverts p's reassignment: the adding replicas leave the
// replicas and the ISR, and a leader among them hands leadership to the first in-sync live original
// replica (none: the partition is offline until one returns). It fails when no original replica is
// in sync, since that would leave the partition without an ISR.
func cancelReassignment(p Partition, live func(int32) bool) (Partition, error) {
	orig := setDiff(p.Replicas, p.AddingReplicas)
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return !slices.Contains(orig, id) })
	if len(isr) == 0 {
		return p, fmt.Errorf("no original replica of %v is in the ISR %v", orig, p.ISR)
	}
	leader := p.Leader
	if leader < 0 || !slices.Contains(isr, leader) {
		leader = -1
		for _, id := range orig {
			if live(id) && slices.Contains(isr, id) {
				leader = id
				break
			}
		}
	}
	np := Partition{Replicas: orig, ISR: isr, Leader: leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch + 1}
	if leader != p.Leader {
		np.LeaderEpoch++
	}
	return np, nil
}

// reassignRecord is the record that moves a partition of topic id to state np.
func reassignRecord(id [16]byte, partition int32, np Partition, reason, cause string) reassignPartitionRecord {
	return reassignPartitionRecord{TopicID: id, Partition: partition, Replicas: np.Replicas, Adding: np.AddingReplicas,
		Removing: np.RemovingReplicas, Leader: np.Leader, LeaderEpoch: np.LeaderEpoch, ISR: np.ISR, PartitionEpoch: np.PartitionEpoch,
		Reason: reason, Cause: cause}
}

// planReassignments returns the records that complete every reassignment of img that can complete.
func planReassignments(img *Image) []record {
	var out []record
	for _, t := range img.SortedTopics() {
		for i, p := range t.Partitions {
			if np, ok := completeReassignment(p, img.Live); ok {
				out = append(out, reassignRecord(t.ID, int32(i), np, reasonReassignComplete, ""))
			}
		}
	}
	return out
}

// partitionKey names a partition by topic ID.
type partitionKey struct {
	topic     [16]byte
	partition int32
}

// ReassignmentRequest asks for one partition's replicas to become Replicas, or, with Replicas nil,
// for its reassignment to be cancelled (Kafka's AlterPartitionReassignments).
type ReassignmentRequest struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// AlterPartitionReassignments starts, replaces or cancels reassignments, all in one entry, and
// returns one error per request (nil for success): UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_REPLICA_ASSIGNMENT (an empty or repeated list, an unregistered broker, no live broker),
// INVALID_REPLICATION_FACTOR (the count changes and allowRFChange is false, KIP-860),
// NO_REASSIGNMENT_IN_PROGRESS (a cancel without one), or ErrNotController for all. A target equal to
// the current replicas in another order completes at once (the preferred leader changes).
func (q *Quorum) AlterPartitionReassignments(ctx context.Context, reqs []ReassignmentRequest, allowRFChange bool) ([]error, error) {
	return q.alterReassignments(ctx, reqs, allowRFChange, CauseAdmin)
}

func (q *Quorum) alterReassignments(ctx context.Context, reqs []ReassignmentRequest, allowRFChange bool, cause string) ([]error, error) {
	if _, err := q.lockController(); err != nil {
		return nil, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	errs := make([]error, len(reqs))
	var recs []record
	seen := map[partitionKey]bool{}
	for i, r := range reqs {
		t := img.Topic(r.Topic)
		if t == nil || r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
			errs[i] = kafkaErrf(kerr.UnknownTopicOrPartition, "Topic or partition %s-%d does not exist.", r.Topic, r.Partition)
			continue
		}
		key := partitionKey{t.ID, r.Partition}
		if seen[key] {
			errs[i] = kafkaErrf(kerr.InvalidRequest, "Partition %s-%d appears more than once in the request.", r.Topic, r.Partition)
			continue
		}
		rec, err := reassignOne(img, t, r, allowRFChange, cause)
		if err != nil {
			errs[i] = err
			continue
		}
		seen[key] = true
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return errs, nil
	}
	if _, err := q.proposeLocked(ctx, recs); err != nil {
		return nil, err
	}
	q.kick()
	return errs, nil
}

// reassignOne validates one request against img and returns its record.
func reassignOne(img *Image, t *Topic, r ReassignmentRequest, allowRFChange bool, cause string) (reassignPartitionRecord, error) {
	p := t.Partitions[r.Partition]
	if r.Replicas == nil {
		if !p.Reassigning() {
			return reassignPartitionRecord{}, kafkaErrf(kerr.NoReassignmentInProgress, "No reassignment of %s-%d is in progress.", t.Name, r.Partition)
		}
		np, err := cancelReassignment(p, img.Live)
		if err != nil {
			return reassignPartitionRecord{}, kafkaErrf(kerr.InvalidReplicaAssignment, "Cannot cancel the reassignment of %s-%d: %v.", t.Name, r.Partition, err)
		}
		return reassignRecord(t.ID, r.Partition, np, reasonReassignCancel, cause), nil
	}
	if err := checkAssignment(img, [][]int32{r.Replicas}, 0); err != nil {
		return reassignPartitionRecord{}, err
	}
	if !allowRFChange && len(r.Replicas) != len(targetReplicas(p)) {
		return reassignPartitionRecord{}, kafkaErrf(kerr.InvalidReplicationFactor, "The replication factor of %s-%d would change from %d to %d.",
			t.Name, r.Partition, len(targetReplicas(p)), len(r.Replicas))
	}
	np := startReassignment(p, r.Replicas)
	reason := reasonReassignStart
	if !np.Reassigning() {
		reason = reasonReassignComplete // a reorder: only the preferred leader changes
	} else if done, ok := completeReassignment(np, img.Live); ok {
		// Nothing to copy (a reorder or a shrink of in-sync replicas): done in one step.
		done.PartitionEpoch = np.PartitionEpoch
		np, reason = done, reasonReassignComplete
	}
	return reassignRecord(t.ID, r.Partition, np, reason, cause), nil
}

// Reassignment is a reassignment in progress, as ListPartitionReassignments reports it.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
	Adding    []int32
	Removing  []int32
}

// Reassignments lists the reassignments in progress in img, by topic and partition; with filter
// non-nil, only those of the named topics' listed partitions.
func (img *Image) Reassignments(filter map[string][]int32) []Reassignment {
	var out []Reassignment
	for _, t := range img.SortedTopics() {
		want, named := filter[t.Name]
		if filter != nil && !named {
			continue
		}
		for i, p := range t.Partitions {
			if !p.Reassigning() || (filter != nil && !slices.Contains(want, int32(i))) {
				continue
			}
			out = append(out, Reassignment{Topic: t.Name, Partition: int32(i), Replicas: slices.Clone(p.Replicas),
				Adding: slices.Clone(p.AddingReplicas), Removing: slices.Clone(p.RemovingReplicas)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// UnregisterBroker removes a broker from the metadata (Kafka's UnregisterBroker): it must be stopped
// (fenced) and hold no replica, so that nothing refers to it afterwards; its dynamic configs go too.
// Errors: BROKER_ID_NOT_REGISTERED, INVALID_REQUEST (still running, or still a replica: drain it
// first), or ErrNotController.
func (q *Quorum) UnregisterBroker(ctx context.Context, id int32) error {
	c, err := q.lockController()
	if err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	br, ok := img.Brokers[id]
	switch {
	case !ok:
		return kafkaErrf(kerr.BrokerIDNotRegistered, "Broker %d is not registered.", id)
	case !br.Fenced:
		return kafkaErrf(kerr.InvalidRequest, "Broker %d is still running; stop it before unregistering it.", id)
	}
	if tp, i, ok := img.hostedBy(id); ok {
		return kafkaErrf(kerr.InvalidRequest, "Broker %d is still a replica of %s-%d; drain it before unregistering it.", id, tp, i)
	}
	if _, err := q.proposeLocked(ctx, []record{unregisterBrokerRecord{ID: id, Epoch: br.Epoch}}); err != nil {
		return err
	}
	c.sessions.end(id)
	// A broker-only node also leaves the Raft configuration (nodes.go); a voter stays until
	// it is removed from the quorum (RemoveRaftVoter).
	if err := q.forgetObserver(id); err != nil && !errors.Is(err, kerr.InvalidRequest) {
		q.log.Warn("unregistered broker is still an observer of the metadata quorum", "broker", id, "err", err)
	}
	return nil
}
