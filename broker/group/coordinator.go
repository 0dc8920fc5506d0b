package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Record is one record of the __consumer_offsets topic. A nil Value is a
// tombstone that deletes the key.
type Record struct {
	Key, Value []byte
	// Txn is set for the records of a transaction: offsets committed with
	// TxnOffsetCommit, which the Store writes as one transactional batch of
	// the producer, and, when loading, the transaction markers that end them.
	Txn *TxnRecord
}

// TxnRecord ties a Record to a producer's transaction.
type TxnRecord struct {
	ProducerID    int64
	ProducerEpoch int16
	// Marker is set for a transaction marker read back by Load (Key and
	// Value are then empty); Commit tells a commit from an abort.
	Marker, Commit bool
}

// Store is the durable log behind the coordinator: the broker implements it
// over the partitions of __consumer_offsets.
type Store interface {
	// Append writes recs to partition and returns once they are durable; recs
	// with Txn set (all or none) go in one transactional batch of that
	// producer and epoch, whose epoch the log checks. The
	// coordinator calls it with a group lock held, so it must not call back into
	// the Coordinator. An error that is a *kerr.Error is translated into the
	// response code Kafka would send for it; any other error is answered with
	// COORDINATOR_NOT_AVAILABLE so that clients retry.
	Append(ctx context.Context, partition int32, recs []Record) error
	// Load calls fn for every record of partition, oldest first. An error from
	// fn must stop the replay and be returned.
	Load(partition int32, fn func(Record) error) error
}

// Config holds the coordinator settings, named after the Kafka broker
// settings they mirror. Zero values are replaced by the defaults of
// DefaultConfig in New.
type Config struct {
	// NumPartitions is the number of __consumer_offsets partitions, like
	// Kafka's offsets.topic.num.partitions, default 50. It must never change
	// for an existing log, because it decides which partition holds a group.
	NumPartitions int32
	// MinSessionTimeout is the shortest session a member may ask for, like
	// Kafka's group.min.session.timeout.ms, default 6s.
	MinSessionTimeout time.Duration
	// MaxSessionTimeout is the longest session a member may ask for, like
	// Kafka's group.max.session.timeout.ms, default 30m.
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long the first rebalance of a new group
	// waits for more members, like Kafka's group.initial.rebalance.delay.ms,
	// default 3s. Each member arriving in the window extends it by the same
	// amount, up to the group's rebalance timeout. Negative disables the delay.
	InitialRebalanceDelay time.Duration
	// OffsetsRetention is how long committed offsets of an empty group are
	// kept, like Kafka's offsets.retention.minutes, default 7 days.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is how often expired offsets are looked
	// for, like Kafka's offsets.retention.check.interval.ms, default 10m.
	OffsetsRetentionCheckInterval time.Duration
	// OffsetMetadataMaxBytes bounds the metadata string of one committed
	// offset, like Kafka's offset.metadata.max.bytes, default 4096.
	OffsetMetadataMaxBytes int
	// MaxGroupSize caps the members of one group, like Kafka's
	// group.max.size; 0, the default, means unlimited.
	MaxGroupSize int
}

// DefaultConfig returns the defaults of a Kafka 3.x broker.
func DefaultConfig() Config {
	return Config{
		NumPartitions:                 50,
		MinSessionTimeout:             6 * time.Second,
		MaxSessionTimeout:             30 * time.Minute,
		InitialRebalanceDelay:         3 * time.Second,
		OffsetsRetention:              7 * 24 * time.Hour,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		OffsetMetadataMaxBytes:        4096,
	}
}

func (cfg *Config) applyDefaults() {
	def := DefaultConfig()
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = def.NumPartitions
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = def.MinSessionTimeout
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = def.MaxSessionTimeout
	}
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = def.InitialRebalanceDelay
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = def.OffsetsRetention
	}
	if cfg.OffsetsRetentionCheckInterval <= 0 {
		cfg.OffsetsRetentionCheckInterval = def.OffsetsRetentionCheckInterval
	}
	if cfg.OffsetMetadataMaxBytes <= 0 {
		cfg.OffsetMetadataMaxBytes = def.OffsetMetadataMaxBytes
	}
	if cfg.MaxGroupSize < 0 {
		cfg.MaxGroupSize = 0
	}
}

type partitionState int8

const (
	partitionLoading partitionState = iota + 1
	partitionLoaded
)

type partitionEntry struct {
	state partitionState
	epoch uint64 // distinguishes a load from a later unload and reload
}

// Coordinator is the group coordinator of one broker. It is safe for
// concurrent use; see the package documentation for its locking.
type Coordinator struct {
	cfg    Config
	store  Store
	logger *slog.Logger
	now    func() time.Time

	topicChecker atomic.Pointer[func(topic string, partition int32) bool]

	topicMu       sync.Mutex // guards the topic changes not yet applied by Run
	topicsDeleted map[string]bool
	topicsResized map[string]bool
	topicWake     chan struct{}

	mu         sync.RWMutex
	partitions map[int32]partitionEntry
	groups     map[string]*group
	epoch      uint64
	closed     bool
	// commitOrder numbers offset commit records in append (and replay)
	// order; see offsetCommit.order.
	commitOrder atomic.Uint64
	// loadingTxns are transaction completions (CompleteTxnOffsets) for
	// partitions still loading, applied once their groups are installed.
	loadingTxns map[int32][]txnCompletion

	timers     timerQueue
	rebalances atomic.Uint64 // rebalances started, for Stats
	running    atomic.Bool
	done       chan struct{}
	close      sync.Once
}

// New returns a Coordinator that persists through store. It coordinates no
// partition until LoadPartition is called, and its timers only fire while Run
// is running. A nil logger discards logs.
func New(cfg Config, store Store, logger *slog.Logger) *Coordinator {
	cfg.applyDefaults()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Coordinator{
		cfg:        cfg,
		store:      store,
		logger:     logger,
		now:        time.Now,
		partitions: make(map[int32]partitionEntry),
		groups:     make(map[string]*group),
		done:       make(chan struct{}),
		topicWake:  make(chan struct{}, 1),
	}
	c.timers.init()
	return c
}

// SetTopicChecker installs fn to validate the partitions of OffsetCommit and
// OffsetDelete requests; partitions for which fn returns false are answered
// with UNKNOWN_TOPIC_OR_PARTITION. By default every partition is accepted.
func (c *Coordinator) SetTopicChecker(fn func(topic string, partition int32) bool) {
	if fn == nil {
		c.topicChecker.Store(nil)
		return
	}
	c.topicChecker.Store(&fn)
}

func (c *Coordinator) topicExists(topic string, partition int32) bool {
	fn := c.topicChecker.Load()
	return fn == nil || (*fn)(topic, partition)
}

type clientInfoKey struct{}

type clientInfo struct{ id, host string }

// WithClientInfo returns a context carrying the client.id and the remote host
// of the connection a request arrived on. JoinGroup uses them to build member
// ids and DescribeGroups reports them, as Kafka does; without them both are
// empty.
func WithClientInfo(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientInfoKey{}, clientInfo{id: clientID, host: clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientInfoKey{}).(clientInfo)
	return ci
}

// PartitionFor returns the __consumer_offsets partition that holds group,
// computed exactly as Kafka does (Utils.abs(groupId.hashCode) % partitions,
// with Java's String.hashCode over UTF-16 code units) so that clients and
// tools agree on the coordinator.
func (c *Coordinator) PartitionFor(group string) int32 {
	return partitionFor(group, c.cfg.NumPartitions)
}

// PartitionFor is the partition of an internal topic with n partitions that
// holds key, Kafka's Utils.abs(key.hashCode) % n: groups in __consumer_offsets,
// transactional ids in __transaction_state.
func PartitionFor(key string, n int32) int32 { return partitionFor(key, n) }

func partitionFor(group string, n int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 { // Kafka's Utils.abs maps MIN_VALUE to 0
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}

// IsCoordinator reports whether this coordinator owns the partition of group,
// including while that partition is still loading (requests then get
// COORDINATOR_LOAD_IN_PROGRESS). When it returns false the broker should answer
// NOT_COORDINATOR, which the handlers also do themselves.
func (c *Coordinator) IsCoordinator(group string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.partitions[c.PartitionFor(group)]
	return ok && !c.closed
}

// statusCode returns the error code for requests on group that cannot be
// served at all, or 0. It must be called with c.mu held.
func (c *Coordinator) statusCodeLocked(group string) int16 {
	p, ok := c.partitions[c.PartitionFor(group)]
	switch {
	case c.closed || !ok:
		return kerr.NotCoordinator.Code
	case p.state == partitionLoading:
		return kerr.CoordinatorLoadInProgress.Code
	}
	return 0
}

// lockGroup finds group, creating it when create is set, and returns it
// locked. A nil group with code 0 means it does not exist. A group found dead
// (deleted or expired concurrently) is replaced on the next attempt.
func (c *Coordinator) lockGroup(name string, create bool) (*group, int16) {
	for range 3 {
		g, code := c.findGroup(name, create)
		if g == nil {
			return nil, code
		}
		g.mu.Lock()
		if g.state != stateDead {
			return g, 0
		}
		g.mu.Unlock()
	}
	return nil, kerr.CoordinatorNotAvailable.Code
}

func (c *Coordinator) findGroup(name string, create bool) (*group, int16) {
	c.mu.RLock()
	if code := c.statusCodeLocked(name); code != 0 {
		c.mu.RUnlock()
		return nil, code
	}
	g := c.groups[name]
	c.mu.RUnlock()
	if (g != nil && !g.dead.Load()) || !create {
		if g != nil && g.dead.Load() {
			return nil, 0
		}
		return g, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if code := c.statusCodeLocked(name); code != 0 {
		return nil, code
	}
	if g = c.groups[name]; g == nil || g.dead.Load() {
		g = newGroup(c, name, c.PartitionFor(name))
		c.groups[name] = g
	}
	return g, 0
}

// forget drops g from the group map if it is still the registered instance.
// It must be called without any group lock held.
func (c *Coordinator) forget(g *group) {
	c.mu.Lock()
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
	c.mu.Unlock()
}

// LoadPartition makes this coordinator the owner of __consumer_offsets
// partition p: it replays the partition from the Store and restores its groups
// and committed offsets. Groups stored with members come back Stable with
// their generation and assignments, as in Kafka, and lose members that do not
// heartbeat within their session timeout. Loading an already loaded partition
// does nothing.
func (c *Coordinator) LoadPartition(ctx context.Context, p int32) error {
	if p < 0 || p >= c.cfg.NumPartitions {
		return fmt.Errorf("load __consumer_offsets partition %d: out of range [0, %d)", p, c.cfg.NumPartitions)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("load __consumer_offsets partition: coordinator closed")
	}
	if e, ok := c.partitions[p]; ok {
		c.mu.Unlock()
		if e.state == partitionLoading {
			return fmt.Errorf("load __consumer_offsets partition %d: already loading", p)
		}
		return nil
	}
	c.epoch++
	epoch := c.epoch
	c.partitions[p] = partitionEntry{state: partitionLoading, epoch: epoch}
	c.mu.Unlock()

	groups, err := c.replay(ctx, p)

	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.partitions[p]; !ok || e.epoch != epoch || c.closed {
		return fmt.Errorf("load __consumer_offsets partition %d: unloaded while loading", p)
	}
	if err != nil {
		delete(c.partitions, p)
		return fmt.Errorf("load __consumer_offsets partition %d: %w", p, err)
	}
	completions := c.loadingTxns[p]
	delete(c.loadingTxns, p)
	for _, g := range groups {
		c.groups[g.id] = g
		g.mu.Lock()
		for _, tc := range completions {
			g.completeTxn(tc.pid, tc.commit)
		}
		g.armAll()
		g.mu.Unlock()
	}
	c.partitions[p] = partitionEntry{state: partitionLoaded, epoch: epoch}
	c.logger.Debug("loaded __consumer_offsets partition", "partition", p, "groups", len(groups))
	return nil
}

// UnloadPartition stops coordinating the groups of partition p, for example
// when leadership of the partition moves. Requests blocked in JoinGroup or
// SyncGroup for those groups are answered NOT_COORDINATOR.
func (c *Coordinator) UnloadPartition(p int32) {
	c.mu.Lock()
	delete(c.partitions, p)
	delete(c.loadingTxns, p)
	var unloaded []*group
	for id, g := range c.groups {
		if g.partition == p {
			delete(c.groups, id)
			unloaded = append(unloaded, g)
		}
	}
	c.mu.Unlock()
	for _, g := range unloaded {
		g.mu.Lock()
		g.unload()
		g.mu.Unlock()
	}
	if len(unloaded) > 0 {
		c.logger.Debug("unloaded __consumer_offsets partition", "partition", p, "groups", len(unloaded))
	}
}

// Close unloads every partition, answering blocked requests NOT_COORDINATOR,
// and makes Run return. The Coordinator answers NOT_COORDINATOR afterwards.
// Close is idempotent.
func (c *Coordinator) Close() {
	c.close.Do(func() {
		c.mu.Lock()
		c.closed = true
		ps := make([]int32, 0, len(c.partitions))
		for p := range c.partitions {
			ps = append(ps, p)
		}
		c.mu.Unlock()
		for _, p := range ps {
			c.UnloadPartition(p)
		}
		close(c.done)
	})
}

// CommittedOffsets returns a copy of the offsets committed by group, by topic
// and partition, or nil if this coordinator does not know the group.
func (c *Coordinator) CommittedOffsets(group string) map[string]map[int32]int64 {
	c.mu.RLock()
	g := c.groups[group]
	c.mu.RUnlock()
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		return nil
	}
	out := make(map[string]map[int32]int64, len(g.offsets))
	for t, ps := range g.offsets {
		m := make(map[int32]int64, len(ps))
		for p, o := range ps {
			m[p] = o.offset
		}
		out[t] = m
	}
	return out
}

// snapshotGroups returns the registered groups; it takes c.mu briefly.
func (c *Coordinator) snapshotGroups() ([]*group, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	loading := false
	for _, p := range c.partitions {
		if p.state == partitionLoading {
			loading = true
		}
	}
	return slicesOfValues(c.groups), loading
}

func slicesOfValues(m map[string]*group) []*group {
	out := make([]*group, 0, len(m))
	for v := range maps.Values(m) {
		out = append(out, v)
	}
	return out
}

// Stats is a snapshot of the groups this coordinator serves, for monitoring.
type Stats struct {
	// GroupsByState counts groups per Kafka state name (Empty, Stable, ...).
	GroupsByState map[string]int
	// Members is the number of members over all groups.
	Members int
	// Rebalances counts rebalances started since the coordinator was created.
	Rebalances uint64
}

// Stats counts the groups of the loaded partitions by state, and their members.
func (c *Coordinator) Stats() Stats {
	st := Stats{GroupsByState: map[string]int{}, Rebalances: c.rebalances.Load()}
	c.mu.RLock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.RUnlock()
	for _, g := range groups {
		g.mu.Lock()
		st.GroupsByState[g.state.String()]++
		st.Members += len(g.members)
		g.mu.Unlock()
	}
	return st
}
