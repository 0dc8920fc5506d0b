package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/storage"
	"github.com/sluicemq/sluice/internal/durable"
)

const offsetsTopic = "__consumer_offsets"

// topic is this broker's view of a topic in the metadata image: its partitions
// slice has one entry per partition, nil where this broker holds no replica.
// Fields change only in applyImage, under Broker.mu.
type topic struct {
	name       string
	id         [16]byte
	internal   bool
	configs    map[string]string // overrides only; defaults come from the broker config
	partitions []*partition
}

// partition is a replica of a partition held by this broker, leader or follower.
type partition struct {
	b     *Broker
	topic *topic
	index int32
	log   *storage.Log

	// hw is the high watermark: consumers read below it, and acks=all produce
	// completes when it passes the batch.
	hw atomic.Int64

	mu             sync.Mutex // guards everything below
	leader         int32
	leaderEpoch    int32
	partitionEpoch int32
	replicas       []int32
	isr            []int32
	isLeader       bool
	followers      map[int32]*followerState // leader only
	// epochStartOffset is the log end offset when this broker became leader
	// for the current epoch (Kafka's leaderEpochStartOffset): a follower joins
	// the ISR only once it has everything up to it, so a replica missing data
	// of earlier epochs can never be elected.
	epochStartOffset int64
	// pendingISR is an ISR change asked for and not yet known to be committed or
	// refused (Kafka's PendingPartitionChange): the high watermark waits for its
	// members (maximalISR) until the controller's answer or a metadata image
	// settles it, since a request whose answer was lost may have been committed.
	// pendingBase is the partition epoch it was asked at; isrInFlight reports an
	// AlterPartition on its way, isrRetry that none is and the change may be
	// asked again (its last attempt's outcome is unknown).
	pendingISR  []int32
	pendingBase int32
	isrInFlight bool
	isrRetry    bool
	waiters     []chan struct{}
	deleted     bool
	// movedAway: deleted because a reassignment took this broker off the
	// replicas, while the topic lives on (waiters get NOT_LEADER_OR_FOLLOWER).
	movedAway bool
}

// followerState is what a leader knows of one follower, from its fetches.
type followerState struct {
	leo          int64     // the follower's log end offset: its last fetch offset
	lastFetch    time.Time // when it last fetched
	lastFetchLEO int64     // the leader's log end offset at that fetch
	lastCaughtUp time.Time // the last time it had everything the leader had, Kafka's lastCaughtUpTimeMs
}

// state returns the leadership fields under the lock.
func (p *partition) state() (leader, epoch int32, isLeader bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader, p.leaderEpoch, p.isLeader
}

// notifyAppend wakes fetches and acks=all produces waiting on this partition.
func (p *partition) notifyAppend() {
	p.mu.Lock()
	ws := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// addWaiter registers ch to be signalled on the next append, high watermark move
// or leadership change.
func (p *partition) addWaiter(ch chan struct{}) {
	p.mu.Lock()
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
}

// removeWaiter drops ch if it is still registered.
func (p *partition) removeWaiter(ch chan struct{}) {
	p.mu.Lock()
	p.waiters = slices.DeleteFunc(p.waiters, func(w chan struct{}) bool { return w == ch })
	p.mu.Unlock()
}

// applyImage makes the local replicas match a metadata image: it opens logs of
// new replicas, deletes those of deleted topics, applies config changes and
// moves each partition into its role (leader or follower) for its leader epoch.
// ctx bounds what a new leadership starts (loading a coordinator's state).
func (b *Broker) applyImage(ctx context.Context, img *metadata.Image) {
	// Replicas that go away are deleted before any new one is opened: a topic
	// deleted and created again under the same name reuses the directory.
	deletedTopics, resizedTopics := b.topicChanges(img)
	removed := b.detachRemoved(img)
	defaultsChanged := b.applyBrokerConfigs(img)
	for _, p := range removed {
		b.fetchers.remove(p)
		p.mu.Lock()
		p.deleted, p.isLeader = true, false
		p.movedAway = img.TopicByID(p.topic.id) != nil
		p.mu.Unlock()
		p.notifyAppend()
		if err := p.log.Delete(); err != nil {
			b.logger.Warn("deleting partition data", "topic", p.topic.name, "partition", p.index, "err", err)
		}
		if p.topic.name == offsetsTopic {
			b.groups.UnloadPartition(p.index)
		}
	}

	b.mu.Lock()
	var becameLeader, becameFollower, resynced []*partition
	for _, mt := range img.SortedTopics() {
		t := b.topicIDs[mt.ID]
		if t == nil {
			t = &topic{name: mt.Name, id: mt.ID, internal: internalTopic(mt.Name), configs: map[string]string{}}
			b.topics[t.name] = t
			b.topicIDs[t.id] = t
		}
		configsChanged := !maps.Equal(t.configs, mt.Configs)
		if configsChanged {
			t.configs = maps.Clone(mt.Configs)
			if t.configs == nil {
				t.configs = map[string]string{}
			}
		}
		scfg, err := b.storageConfig(t.configs)
		if err != nil {
			b.logger.Error("topic configs", "topic", t.name, "err", err)
		}
		for len(t.partitions) < len(mt.Partitions) {
			t.partitions = append(t.partitions, nil)
		}
		for i, mp := range mt.Partitions {
			if !slices.Contains(mp.Replicas, b.cfg.NodeID) {
				continue
			}
			p := t.partitions[i]
			if p == nil {
				if p = b.openReplica(t, int32(i), scfg); p == nil {
					continue
				}
				t.partitions[i] = p
			} else if configsChanged || defaultsChanged {
				p.log.SetConfig(scfg)
			}
			switch p.update(mp, b.cfg.NodeID) {
			case roleLeader:
				becameLeader = append(becameLeader, p)
			case roleFollower:
				becameFollower = append(becameFollower, p)
			case roleReplicasChanged:
				resynced = append(resynced, p)
			}
		}
	}
	b.mu.Unlock()

	for _, p := range becameFollower {
		b.becomeFollower(p)
	}
	for _, p := range becameLeader {
		b.becomeLeader(ctx, p)
	}
	for _, p := range resynced {
		p.maybeAdvanceHW() // removed replicas no longer hold the high watermark back
	}
	b.groups.TopicsChanged(deletedTopics, resizedTopics)
	b.appliedIndex.Store(img.Index)
	if len(becameLeader) > 0 {
		// The controller waits for new leaders to report this image.
		select {
		case b.heartbeatNow <- struct{}{}:
		default:
		}
	}
	b.appliedMu.Lock()
	close(b.applied)
	b.applied = make(chan struct{})
	b.appliedMu.Unlock()
}

// topicChanges lists, against the topics applied so far, the names of topics
// the image deleted (their ID is gone, even if the name was created again) and
// of topics created or whose partition count changed, for the group
// coordinator.
func (b *Broker) topicChanges(img *metadata.Image) (deleted, resized []string) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for id, t := range b.topicIDs {
		mt := img.TopicByID(id)
		switch {
		case mt == nil:
			deleted = append(deleted, t.name)
		case len(mt.Partitions) != len(t.partitions):
			resized = append(resized, t.name)
		}
	}
	for name, mt := range img.Topics {
		if t := b.topics[name]; t == nil || t.id != mt.ID {
			resized = append(resized, name) // created, maybe again
		}
	}
	return deleted, resized
}

// detachRemoved takes the replicas the image no longer assigns here (deleted
// topics, or replicas moved away) out of the broker's maps and returns them.
func (b *Broker) detachRemoved(img *metadata.Image) []*partition {
	b.mu.Lock()
	defer b.mu.Unlock()
	var removed []*partition
	for id, t := range b.topicIDs {
		mt := img.TopicByID(id)
		if mt == nil {
			delete(b.topicIDs, id)
			if b.topics[t.name] == t {
				delete(b.topics, t.name)
			}
			for _, p := range t.partitions {
				if p != nil {
					removed = append(removed, p)
				}
			}
			continue
		}
		for i, p := range t.partitions {
			if p != nil && (i >= len(mt.Partitions) || !slices.Contains(mt.Partitions[i].Replicas, b.cfg.NodeID)) {
				t.partitions[i] = nil
				removed = append(removed, p)
			}
		}
	}
	return removed
}

// partitionMetadataFile records which topic a partition directory belongs to,
// like Kafka's partition.metadata: a directory left by a deleted topic of the
// same name (deleted while this broker was down) is recognised and emptied
// instead of being taken for the new topic's data.
const partitionMetadataFile = "partition.metadata"

// openReplica opens (creating if needed) the log of a local replica; nil on error.
func (b *Broker) openReplica(t *topic, index int32, scfg storage.Config) *partition {
	dir := filepath.Join(b.cfg.DataDir, fmt.Sprintf("%s-%d", t.name, index))
	want := fmt.Sprintf("version: 0\ntopic_id: %x\n", t.id)
	if have, err := os.ReadFile(filepath.Join(dir, partitionMetadataFile)); err == nil && string(have) != want {
		b.logger.Warn("partition directory belongs to a deleted topic of the same name; removing it", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			b.logger.Error("removing stale partition directory", "dir", dir, "err", err)
			return nil
		}
	}
	l, err := storage.Open(dir, scfg, b.logger.With("topic", t.name, "partition", index))
	if err != nil {
		b.logger.Error("opening partition", "topic", t.name, "partition", index, "err", err)
		return nil
	}
	if err := durable.WriteFile(filepath.Join(dir, partitionMetadataFile), []byte(want), 0o644); err != nil {
		b.logger.Error("writing partition metadata", "dir", dir, "err", err)
	}
	p := &partition{b: b, topic: t, index: index, log: l, leader: -1, leaderEpoch: -1}
	p.hw.Store(min(b.hwCheckpoint[checkpointKey(t.name, index)], l.LogEndOffset()))
	return p
}

type roleChange int

const (
	roleSame roleChange = iota
	roleLeader
	roleFollower
	// roleReplicasChanged: still leading at the same epoch, with other replicas (reassignment)
	// or a smaller ISR (the controller removed a fenced follower): the high watermark is
	// computed again, since no follower's fetch may come to move it.
	roleReplicasChanged
)

// update takes the partition's state from the image and reports a role change:
// a new leader epoch makes this replica leader or follower anew.
func (p *partition) update(mp metadata.Partition, self int32) roleChange {
	p.mu.Lock()
	defer p.mu.Unlock()
	newEpoch := mp.LeaderEpoch != p.leaderEpoch
	if !newEpoch && mp.PartitionEpoch < p.partitionEpoch {
		// An image older than the AlterPartition answer this leader already
		// applied (changeISR): the controller committed a newer ISR, which the
		// image will bring. Going back to the older ISR would leave a replica
		// the controller counts as in sync out of the high watermark, and that
		// replica could then be elected without records acknowledged meanwhile.
		return roleSame
	}
	if !newEpoch && p.isLeader && mp.PartitionEpoch > p.partitionEpoch {
		// The controller changed the ISR of a partition led here (a fenced
		// follower removed, or our own AlterPartition committed).
		switch {
		case len(mp.ISR) < len(p.isr):
			p.b.metrics.isrShrinks.Inc()
		case len(mp.ISR) > len(p.isr):
			p.b.metrics.isrExpands.Inc()
		}
	}
	replicasChanged := !slices.Equal(p.replicas, mp.Replicas)
	isrShrank := slices.ContainsFunc(p.isr, func(r int32) bool { return !slices.Contains(mp.ISR, r) })
	p.replicas, p.isr, p.partitionEpoch = mp.Replicas, mp.ISR, mp.PartitionEpoch
	if p.pendingISR != nil && (slices.Equal(p.pendingISR, mp.ISR) || mp.PartitionEpoch > p.pendingBase) {
		// Committed, or the partition moved past the epoch it was asked at, so
		// the controller can no longer commit it: the image is the outcome.
		p.clearPendingISRLocked()
	}
	if !newEpoch {
		if replicasChanged && p.isLeader {
			p.syncFollowersLocked() // replica.go: a reassignment added or removed replicas
			return roleReplicasChanged
		}
		if isrShrank && p.isLeader {
			return roleReplicasChanged
		}
		return roleSame
	}
	p.leader, p.leaderEpoch = mp.Leader, mp.LeaderEpoch
	p.clearPendingISRLocked()
	if mp.Leader == self {
		p.isLeader = true
		return roleLeader
	}
	p.isLeader = false
	p.followers = nil
	return roleFollower
}

// hwCheckpointFile holds each local partition's high watermark, like Kafka's
// replication-offset-checkpoint, so a restarted broker does not expose data that
// was never committed and knows what was.
const hwCheckpointFile = "replication-offset-checkpoint"

func checkpointKey(topic string, p int32) string { return fmt.Sprintf("%s-%d", topic, p) }

func loadHWCheckpoint(dir string) (map[string]int64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, hwCheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", hwCheckpointFile, err)
	}
	return m, nil
}

func (b *Broker) writeHWCheckpoint() error {
	m := map[string]int64{}
	for _, p := range b.allPartitions() {
		m[checkpointKey(p.topic.name, p.index)] = p.hw.Load()
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(b.cfg.DataDir, hwCheckpointFile), raw, 0o644)
}

var legalTopicChars = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// validTopicName applies Kafka's topic name rules.
func validTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is illegal", name)
	case len(name) > 249:
		return fmt.Errorf("topic name is longer than 249 characters")
	case !legalTopicChars.MatchString(name):
		return fmt.Errorf("topic name %q contains characters other than ASCII alphanumerics, '.', '_' and '-'", name)
	}
	return nil
}

// topicByName returns the topic or nil.
func (b *Broker) topicByName(name string) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name]
}

// topicByID returns the topic or nil.
func (b *Broker) topicByID(id [16]byte) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topicIDs[id]
}

// partitionOf returns the local replica or nil.
func (b *Broker) partitionOf(name string, index int32) *partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[name]
	if t == nil || index < 0 || int(index) >= len(t.partitions) {
		return nil
	}
	return t.partitions[index]
}

// partitionByID is partitionOf for requests that name topics by ID.
func (b *Broker) partitionByID(id [16]byte, index int32) *partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topicIDs[id]
	if t == nil || index < 0 || int(index) >= len(t.partitions) {
		return nil
	}
	return t.partitions[index]
}

// sortedTopics returns all topics ordered by name.
func (b *Broker) sortedTopics() []*topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ts := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts
}

// partitionsOf snapshots a topic's local replicas (nil entries included).
func (b *Broker) partitionsOf(t *topic) []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.Clone(t.partitions)
}

func (b *Broker) allPartitions() []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var ps []*partition
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if p != nil {
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// imageApplied returns a channel closed after the next applyImage.
func (b *Broker) imageApplied() <-chan struct{} {
	b.appliedMu.Lock()
	defer b.appliedMu.Unlock()
	return b.applied
}
