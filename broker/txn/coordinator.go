package txn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/group"
)

// Store is the durable log behind the coordinator: the broker implements it
// over the partitions of __transaction_state.
type Store interface {
	// Append writes recs to partition and returns once they are replicated to
	// the partition's ISR (acks=all). A *kerr.Error saying the partition is not
	// led here (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION) is answered
	// NOT_COORDINATOR; any other error COORDINATOR_NOT_AVAILABLE, so clients
	// retry.
	Append(ctx context.Context, partition int32, recs []Record) error
	// Load calls fn for every record of partition, oldest first. An error from
	// fn must stop the replay and be returned.
	Load(partition int32, fn func(Record) error) error
}

// Markers is one WriteTxnMarkers request of the coordinator: the commit or
// abort markers of one transaction for some of its partitions.
type Markers struct {
	ProducerID    int64
	ProducerEpoch int16
	Commit        bool
	// CoordinatorEpoch is the leader epoch of the __transaction_state
	// partition when the coordinator loaded it, so partition leaders can
	// refuse markers of a coordinator that was replaced.
	CoordinatorEpoch int32
	Partitions       []TopicPartition
}

// MarkerWriter sends transaction markers to the leaders of the partitions.
type MarkerWriter interface {
	// WriteMarkers writes m to every partition of m.Partitions and returns
	// those to try again (no leader, the leader moved, not enough replicas). A
	// partition whose topic no longer exists counts as done, as in Kafka. An
	// error means the markers must not be retried (this coordinator was fenced
	// by a newer one).
	WriteMarkers(ctx context.Context, m Markers) (retry []TopicPartition, err error)
}

// ProducerIDSource hands out new, never reused producer ids.
type ProducerIDSource func(ctx context.Context) (int64, error)

// Config holds the coordinator settings, named after the Kafka broker
// settings they mirror. Zero values are replaced by DefaultConfig's.
type Config struct {
	// NumPartitions is the number of __transaction_state partitions, like
	// Kafka's transaction.state.log.num.partitions, default 50, until
	// SetPartitionCount reports the topic's actual count.
	NumPartitions int32
	// MaxTimeout is the longest transaction.timeout.ms a producer may ask for,
	// like Kafka's transaction.max.timeout.ms, default 15 minutes.
	MaxTimeout time.Duration
	// AbortTimedOutInterval is how often transactions open longer than their
	// timeout are looked for and aborted, like Kafka's
	// transaction.abort.timed.out.transaction.cleanup.interval.ms, default 10s.
	AbortTimedOutInterval time.Duration
	// IDExpiration is how long a transactional id without a transaction in
	// progress is kept, like Kafka's transactional.id.expiration.ms, default 7
	// days.
	IDExpiration time.Duration
	// RemoveExpiredInterval is how often expired transactional ids are looked
	// for, like Kafka's
	// transaction.remove.expired.transaction.cleanup.interval.ms, default 1h.
	RemoveExpiredInterval time.Duration
	// WriteTimeout bounds one write of the state log, like Kafka's
	// request.timeout.ms for the coordinator's appends, default 30s.
	WriteTimeout time.Duration
}

// DefaultConfig returns the defaults of a Kafka 3.x broker.
func DefaultConfig() Config {
	return Config{
		NumPartitions:         50,
		MaxTimeout:            15 * time.Minute,
		AbortTimedOutInterval: 10 * time.Second,
		IDExpiration:          7 * 24 * time.Hour,
		RemoveExpiredInterval: time.Hour,
		WriteTimeout:          30 * time.Second,
	}
}

func (cfg *Config) applyDefaults() {
	def := DefaultConfig()
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = def.NumPartitions
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = def.MaxTimeout
	}
	if cfg.AbortTimedOutInterval <= 0 {
		cfg.AbortTimedOutInterval = def.AbortTimedOutInterval
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = def.IDExpiration
	}
	if cfg.RemoveExpiredInterval <= 0 {
		cfg.RemoveExpiredInterval = def.RemoveExpiredInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = def.WriteTimeout
	}
}

type partitionEntry struct {
	loading bool
	seq     uint64 // distinguishes a load from a later unload and reload
	epoch   int32  // coordinator epoch: the partition's leader epoch at load
}

// Coordinator is the transaction coordinator of one broker. It is safe for
// concurrent use.
type Coordinator struct {
	cfg     Config
	store   Store
	markers MarkerWriter
	pids    ProducerIDSource
	logger  *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu         sync.Mutex
	partitions map[int32]partitionEntry
	txns       map[string]*txnMeta
	seq        uint64
	closed     bool

	// ctx ends at Close; completions (marker writes) run under it, owned by wg.
	// partitionCount is the __transaction_state partition count ids hash over.
	partitionCount atomic.Int32

	// completionWait bounds how long AddPartitions waits for the completion
	// of the producer's previous transaction.
	completionWait time.Duration

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	running atomic.Bool
}

// New returns a Coordinator that persists through store, writes markers
// through markers and takes producer ids from pids. It coordinates no
// partition until LoadPartition is called; timeouts and expirations are only
// enforced while Run runs. Metrics are registered on reg when it is not nil.
func New(cfg Config, store Store, markers MarkerWriter, pids ProducerIDSource, logger *slog.Logger, reg prometheus.Registerer) *Coordinator {
	cfg.applyDefaults()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{
		cfg:        cfg,
		store:      store,
		markers:    markers,
		pids:       pids,
		logger:     logger,
		now:        time.Now,
		partitions: make(map[int32]partitionEntry),
		txns:       make(map[string]*txnMeta),
		ctx:        ctx,
		cancel:     cancel,

		completionWait: 2 * time.Second,
	}
	c.partitionCount.Store(cfg.NumPartitions)
	c.metrics = newMetrics(c, reg)
	return c
}

// PartitionFor returns the __transaction_state partition that holds id,
// computed as Kafka does, so clients and tools agree on the coordinator.
func (c *Coordinator) PartitionFor(id string) int32 {
	return group.PartitionFor(id, c.partitionCount.Load())
}

// SetPartitionCount sets the number of __transaction_state partitions ids
// hash over to the topic's actual count, as Kafka does once the topic exists
// (a changed transaction.state.log.num.partitions must not move ids). Call it
// before loading partitions; n <= 0 is ignored.
func (c *Coordinator) SetPartitionCount(n int32) {
	if n > 0 {
		c.partitionCount.Store(n)
	}
}

// MaxTimeout is transaction.max.timeout.ms.
func (c *Coordinator) MaxTimeout() time.Duration { return c.cfg.MaxTimeout }

// statusLocked returns the error code for requests on id that cannot be
// served at all (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), or 0 with the
// partition's entry. It must be called with c.mu held.
func (c *Coordinator) statusLocked(id string) (int32, partitionEntry, int16) {
	p := c.PartitionFor(id)
	e, ok := c.partitions[p]
	switch {
	case c.closed || !ok:
		return p, e, kerr.NotCoordinator.Code
	case e.loading:
		return p, e, kerr.CoordinatorLoadInProgress.Code
	}
	return p, e, 0
}

// ownsLocked reports whether partition p is still loaded by the load seq.
func (c *Coordinator) ownsLocked(p int32, seq uint64) bool {
	e, ok := c.partitions[p]
	return ok && !c.closed && !e.loading && e.seq == seq
}

// appendErrorCode is the code Kafka answers for a failed state write.
func appendErrorCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.NotLeaderForPartition, kerr.UnknownTopicOrPartition, kerr.KafkaStorageError, kerr.NotCoordinator:
			return kerr.NotCoordinator.Code
		}
	}
	return kerr.CoordinatorNotAvailable.Code
}

// persist writes next as the new state of m, which the caller marked pending
// under c.mu, and applies it when the write succeeds and the partition is
// still loaded by seq. A nil next writes a tombstone and forgets m.
func (c *Coordinator) persist(ctx context.Context, m *txnMeta, next *txnMeta, p int32, seq uint64) int16 {
	rec := Record{Key: encodeKey(m.id)}
	to := Dead
	if next != nil {
		rec, to = next.record(), next.state
	}
	if !CanTransition(m.state, to) {
		// A bug, never a client's doing: Kafka throws IllegalStateException.
		c.logger.Error("illegal transaction state transition", "transactional_id", m.id, "from", m.state, "to", to)
		c.mu.Lock()
		m.hasPending = false
		c.mu.Unlock()
		return kerr.UnknownServerError.Code
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	err := c.store.Append(wctx, p, []Record{rec})
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	m.hasPending = false
	if !c.ownsLocked(p, seq) || c.txns[m.id] != m {
		return kerr.NotCoordinator.Code
	}
	if err != nil {
		c.logger.Debug("writing transaction state", "transactional_id", m.id, "err", err)
		return appendErrorCode(err)
	}
	if next == nil {
		m.state = Dead
		delete(c.txns, m.id)
		return 0
	}
	*m = *next
	m.hasPending = false
	return 0
}

// LoadPartition makes this coordinator the owner of __transaction_state
// partition p, whose leader epoch is epoch: it replays the partition and
// resumes the completion of every transaction found in PrepareCommit or
// PrepareAbort. Loading a loaded partition does nothing.
func (c *Coordinator) LoadPartition(p, epoch int32) error {
	if n := c.partitionCount.Load(); p < 0 || p >= n {
		return fmt.Errorf("load __transaction_state partition %d: out of range [0, %d)", p, n)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("load __transaction_state partition: coordinator closed")
	}
	if e, ok := c.partitions[p]; ok && e.epoch == epoch {
		c.mu.Unlock()
		return nil
	}
	c.unloadLocked(p)
	c.seq++
	seq := c.seq
	c.partitions[p] = partitionEntry{loading: true, seq: seq, epoch: epoch}
	c.mu.Unlock()

	loaded := map[string]*txnMeta{}
	err := c.store.Load(p, func(r Record) error {
		id, m, err := decodeRecord(r)
		if errors.Is(err, errNotTxnRecord) {
			return nil
		}
		if err != nil {
			return err
		}
		if m == nil {
			delete(loaded, id)
		} else {
			loaded[id] = m
		}
		return nil
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.partitions[p]; !ok || e.seq != seq || c.closed {
		return fmt.Errorf("load __transaction_state partition %d: unloaded while loading", p)
	}
	if err != nil {
		delete(c.partitions, p)
		return fmt.Errorf("load __transaction_state partition %d: %w", p, err)
	}
	c.partitions[p] = partitionEntry{seq: seq, epoch: epoch}
	resumed := 0
	for id, m := range loaded {
		c.txns[id] = m
		if m.state == PrepareCommit || m.state == PrepareAbort {
			c.startCompletionLocked(m, p, seq)
			resumed++
		}
	}
	c.logger.Debug("loaded __transaction_state partition", "partition", p, "coordinator_epoch", epoch,
		"transactional_ids", len(loaded), "completions_resumed", resumed)
	return nil
}

// UnloadPartition stops coordinating the transactional ids of partition p,
// when its leadership moves. Completions in flight stop at their next step;
// the next coordinator resumes them.
func (c *Coordinator) UnloadPartition(p int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unloadLocked(p)
}

func (c *Coordinator) unloadLocked(p int32) {
	if _, ok := c.partitions[p]; !ok {
		return
	}
	delete(c.partitions, p)
	for id := range c.txns {
		if c.PartitionFor(id) == p {
			delete(c.txns, id)
		}
	}
}

// Close unloads every partition and stops the completions in flight, waiting
// for them. The Coordinator answers NOT_COORDINATOR afterwards.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	c.partitions = map[int32]partitionEntry{}
	c.txns = map[string]*txnMeta{}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Run aborts transactions that outlive their timeout and expires idle
// transactional ids until ctx ends or the coordinator is closed.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("transaction coordinator: Run is already running")
	}
	abort := time.NewTicker(c.cfg.AbortTimedOutInterval)
	defer abort.Stop()
	expire := time.NewTicker(c.cfg.RemoveExpiredInterval)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.ctx.Done():
			return nil
		case <-abort.C:
			c.AbortTimedOut(ctx)
		case <-expire.C:
			c.ExpireIDs(ctx)
		}
	}
}

// epochExhausted is Kafka's TransactionMetadata.isEpochExhausted: the epoch
// cannot be bumped again and the producer needs a new producer id.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }
