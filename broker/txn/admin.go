package txn

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Description is a transactional id's state as DescribeTransactions reports it.
type Description struct {
	State         State
	ProducerID    int64
	ProducerEpoch int16
	TimeoutMs     int32
	// StartMs is when the ongoing transaction started, -1 if none.
	StartMs    int64
	Partitions []TopicPartition
}

// Describe returns the state of id, or the code Kafka answers:
// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or TRANSACTIONAL_ID_NOT_FOUND.
func (c *Coordinator) Describe(id string) (Description, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, _, code := c.statusLocked(id); code != 0 {
		return Description{}, code
	}
	m := c.txns[id]
	if m == nil {
		return Description{}, kerr.TransactionalIDNotFound.Code
	}
	return Description{State: m.state, ProducerID: m.producerID, ProducerEpoch: m.epoch, TimeoutMs: m.timeoutMs,
		StartMs: m.startMs, Partitions: m.sortedPartitions()}, 0
}

// Listing is one transactional id of ListTransactions.
type Listing struct {
	TransactionalID string
	ProducerID      int64
	State           State
}

// ListFilter selects the transactions ListTransactions returns; empty
// filters select everything.
type ListFilter struct {
	States      []State
	ProducerIDs []int64
	// MinDuration keeps only transactions started longer ago (v1, KIP-994);
	// zero or negative keeps all. As in Kafka, ids without a transaction
	// (start time -1) always pass.
	MinDuration time.Duration
}

// List returns the transactional ids of the loaded partitions that pass f,
// and COORDINATOR_LOAD_IN_PROGRESS while a partition is still loading.
func (c *Coordinator) List(f ListFilter) ([]Listing, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.partitions {
		if e.loading {
			return nil, kerr.CoordinatorLoadInProgress.Code
		}
	}
	now := c.now().UnixMilli()
	var out []Listing
	for id, m := range c.txns {
		if len(f.States) > 0 && !slices.Contains(f.States, m.state) {
			continue
		}
		if len(f.ProducerIDs) > 0 && !slices.Contains(f.ProducerIDs, m.producerID) {
			continue
		}
		if f.MinDuration > 0 && now-m.startMs < f.MinDuration.Milliseconds() {
			continue
		}
		out = append(out, Listing{TransactionalID: id, ProducerID: m.producerID, State: m.state})
	}
	slices.SortFunc(out, func(a, b Listing) int {
		switch {
		case a.TransactionalID < b.TransactionalID:
			return -1
		case a.TransactionalID > b.TransactionalID:
			return 1
		}
		return 0
	})
	return out, 0
}

// metrics are the coordinator's Prometheus metrics; their names are what the
// transaction alert rules and dashboards read.
type metrics struct {
	completed *prometheus.CounterVec
	fenced    prometheus.Counter
	timedOut  prometheus.Counter
}

func newMetrics(c *Coordinator, reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_txn_ongoing",
		Help: "Transactions open on this broker's coordinator: Ongoing, PrepareCommit or PrepareAbort.",
	}, func() float64 {
		n, _ := c.openStats()
		return float64(n)
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_txn_oldest_age_seconds",
		Help: "Age of the oldest open transaction on this broker's coordinator, 0 without one.",
	}, func() float64 {
		_, age := c.openStats()
		return age.Seconds()
	})
	m := &metrics{
		completed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_txn_completed_total",
			Help: "Transactions completed by this broker's coordinator (markers written), by result (commit or abort).",
		}, []string{"result"}),
		fenced: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_txn_fenced_total",
			Help: "Ongoing transactions aborted because a new producer with the same transactional id initialized (its old instance is fenced).",
		}),
		timedOut: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_txn_timed_out_total",
			Help: "Transactions aborted by the coordinator because they were open longer than transaction.timeout.ms.",
		}),
	}
	m.completed.WithLabelValues("commit")
	m.completed.WithLabelValues("abort")
	return m
}

// openStats counts the open transactions and the age of the oldest.
func (c *Coordinator) openStats() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixMilli()
	n, oldest := 0, int64(0)
	for _, m := range c.txns {
		if m.state == Ongoing || m.state == PrepareCommit || m.state == PrepareAbort {
			n++
			if m.startMs >= 0 {
				oldest = max(oldest, now-m.startMs)
			}
		}
	}
	return n, time.Duration(oldest) * time.Millisecond
}
