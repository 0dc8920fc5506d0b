package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/txn"
)

// txnTopic holds the transaction coordinators' state, like Kafka's.
const txnTopic = "__transaction_state"

// internalTopic reports whether name is one of the topics the broker creates
// and writes itself; clients may read them but not produce to, create, grow or
// delete them.
func internalTopic(name string) bool { return name == offsetsTopic || name == txnTopic }

// newTxnCoordinator builds the transaction coordinator from the broker's
// settings; the broker feeds it the leaderships of __transaction_state.
func (b *Broker) newTxnCoordinator() *txn.Coordinator {
	cfg := txn.Config{
		NumPartitions:         b.cfg.TransactionStateLogNumPartitions,
		MaxTimeout:            time.Duration(b.cfg.TransactionMaxTimeoutMs) * time.Millisecond,
		AbortTimedOutInterval: time.Duration(b.cfg.TransactionAbortTimedOutTransactionCleanupIntervalMs) * time.Millisecond,
		IDExpiration:          time.Duration(b.cfg.TransactionalIDExpirationMs) * time.Millisecond,
		RemoveExpiredInterval: time.Duration(b.cfg.TransactionRemoveExpiredTransactionCleanupIntervalMs) * time.Millisecond,
	}
	b.txnMarkers = newTxnMarkerWriter(b)
	return txn.New(cfg, txnStore{b}, b.txnMarkers, b.nextProducerID, b.logger.With("part", "txn"), b.registry)
}

// maybeCreateTxnTopic creates __transaction_state once enough brokers are live
// for its replication factor (transaction.state.log.replication.factor capped by
// the quorum size), with min.insync.replicas transaction.state.log.min.isr capped
// by that factor, compacted. Only the controller acts.
//
// Every broker hashes transactional ids over the topic's actual partition
// count once it exists, as Kafka does.
func (b *Broker) maybeCreateTxnTopic(ctx context.Context) {
	img := b.quorum.Image()
	if t := img.Topic(txnTopic); t != nil {
		b.txns.SetPartitionCount(int32(len(t.Partitions)))
		return
	}
	if !b.quorum.IsController() {
		return
	}
	voters := 1
	if b.cfg.ControllerQuorumVoters != "" {
		vs, _ := metadata.ParseVoters(b.cfg.ControllerQuorumVoters)
		voters = len(vs)
	}
	rf := min(int(b.cfg.TransactionStateLogReplicationFactor), voters)
	if len(img.LiveBrokers()) < rf {
		return
	}
	minISR := min(b.cfg.TransactionStateLogMinISR, rf)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := b.quorum.CreateTopic(cctx, txnTopic, b.cfg.TransactionStateLogNumPartitions, int16(rf), nil,
		map[string]string{"cleanup.policy": "compact", "min.insync.replicas": strconv.Itoa(minISR)})
	if err != nil && ctx.Err() == nil {
		b.logger.Debug("creating the transaction state topic", "err", err)
	}
}

// onTxnLeadership loads or unloads a __transaction_state partition in the
// coordinator as this broker starts or stops leading it.
func (b *Broker) onTxnLeadership(p *partition, leading bool) {
	if p.topic.name != txnTopic || b.txns == nil {
		return
	}
	if !leading {
		b.txns.UnloadPartition(p.index)
		return
	}
	_, epoch, _ := p.state()
	if t := b.quorum.Image().Topic(txnTopic); t != nil {
		b.txns.SetPartitionCount(int32(len(t.Partitions)))
	}
	if err := b.txns.LoadPartition(p.index, epoch); err != nil {
		b.logger.Warn("loading transactions", "partition", p.index, "err", err)
	}
}

// txnStore keeps the coordinator's records in __transaction_state.
type txnStore struct{ b *Broker }

// Append writes recs as one batch on the partition's leader and returns once
// the ISR has it and the ISR is at least the topic's min.insync.replicas, like
// a produce with acks=all.
func (s txnStore) Append(ctx context.Context, p int32, recs []txn.Record) error {
	part, err := s.b.leaderReplica(partitionRef{topic: txnTopic, index: p}, -1)
	if err != nil {
		return err
	}
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	batch := record.Build(0, time.Now().UnixMilli(), krecs)
	_, epoch, _ := part.state()
	res, err := part.log.Append(batch, epoch)
	if err != nil {
		return fmt.Errorf("appending to %s-%d: %w", txnTopic, p, err)
	}
	part.maybeAdvanceHW()
	part.notifyAppend()
	return part.waitReplicated(ctx, res.LastOffset+1, 30*time.Second, s.b.minISR(part.topic))
}

// Load replays the partition from its log start offset to its end.
func (s txnStore) Load(p int32, fn func(txn.Record) error) error {
	return s.b.replayPartition(txnTopic, p, func(key, value []byte) error {
		return fn(txn.Record{Key: key, Value: value})
	})
}

// replayPartition calls fn with the key and value of every record of the local
// replica of topic-p, from its log start offset to its end.
func (b *Broker) replayPartition(topic string, p int32, fn func(key, value []byte) error) error {
	part := b.partitionOf(topic, p)
	if part == nil {
		return fmt.Errorf("%s-%d does not exist", topic, p)
	}
	off, end := part.log.LogStartOffset(), part.log.LogEndOffset()
	for off < end {
		data, err := part.log.Read(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		for h, batch := range record.Batches(data) {
			recs, err := record.Records(batch)
			if err != nil {
				return fmt.Errorf("%s-%d offset %d: %w", topic, p, h.BaseOffset, err)
			}
			for _, r := range recs {
				if h.BaseOffset+int64(r.OffsetDelta) < off {
					continue
				}
				if err := fn(r.Key, r.Value); err != nil {
					return err
				}
			}
			off = h.NextOffset()
		}
	}
	return nil
}

// txnMarkerWriter sends the coordinator's markers as WriteTxnMarkers requests
// to the partition leaders over the inter-broker listener, to this broker too,
// so every marker takes the same path. Like Kafka's
// TransactionMarkerChannelManager, the markers of all transactions completing
// at the same time go to one leader in one request: the first caller for a
// leader sends, for as long as markers wait, and the others wait for its
// answers.
type txnMarkerWriter struct {
	b *Broker

	mu      sync.Mutex
	queued  map[int32][]*markerJob // by leader
	sending map[int32]bool
	peers   map[int32]*peer // guarded by b.ctl.mu (peerIn)
}

// markerJob is one transaction's marker for the partitions of one leader.
type markerJob struct {
	marker kmsg.WriteTxnMarkersRequestMarker
	tps    []txn.TopicPartition
	done   chan markerAnswer // buffered: the sender never blocks
}

// markerAnswer is a leader's answer to one marker, or the request's error.
type markerAnswer struct {
	resp *kmsg.WriteTxnMarkersResponseMarker
	err  error
}

func newTxnMarkerWriter(b *Broker) *txnMarkerWriter {
	return &txnMarkerWriter{b: b, queued: map[int32][]*markerJob{}, sending: map[int32]bool{}}
}

// errCoordinatorFenced stops a completion: a partition leader knows a newer
// coordinator or producer epoch.
var errCoordinatorFenced = errors.New("transaction markers refused: the coordinator or producer epoch was fenced")

// WriteMarkers implements txn.MarkerWriter.
func (w *txnMarkerWriter) WriteMarkers(ctx context.Context, m txn.Markers) ([]txn.TopicPartition, error) {
	img := w.b.quorum.Image()
	byLeader := map[int32][]txn.TopicPartition{}
	var retry []txn.TopicPartition
	for _, tp := range m.Partitions {
		pm, ok := img.Partition(tp.Topic, tp.Partition)
		switch {
		case !ok:
			// Deleted: nothing to mark, as in Kafka.
		case pm.Leader < 0:
			retry = append(retry, tp)
		default:
			byLeader[pm.Leader] = append(byLeader[pm.Leader], tp)
		}
	}
	jobs := map[int32]*markerJob{}
	for leader, tps := range byLeader {
		mk := kmsg.NewWriteTxnMarkersRequestMarker()
		mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
		idx := map[string]int{}
		for _, tp := range tps {
			i, ok := idx[tp.Topic]
			if !ok {
				i = len(mk.Topics)
				idx[tp.Topic] = i
				t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
				t.Topic = tp.Topic
				mk.Topics = append(mk.Topics, t)
			}
			mk.Topics[i].Partitions = append(mk.Topics[i].Partitions, tp.Partition)
		}
		job := &markerJob{marker: mk, tps: tps, done: make(chan markerAnswer, 1)}
		jobs[leader] = job
		w.enqueue(ctx, leader, job)
	}
	fenced := false
	for leader, job := range jobs {
		var a markerAnswer
		select {
		case a = <-job.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if a.err != nil {
			w.b.logger.Debug("sending transaction markers", "leader", leader, "err", a.err)
			retry = append(retry, job.tps...)
			continue
		}
		answered := map[txn.TopicPartition]bool{}
		for _, rt := range a.resp.Topics {
			for _, rp := range rt.Partitions {
				tp := txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
				answered[tp] = true
				switch err := kerr.ErrorForCode(rp.ErrorCode); err {
				case nil, kerr.UnsupportedForMessageFormat:
				case kerr.InvalidProducerEpoch, kerr.TransactionCoordinatorFenced:
					fenced = true
				default:
					w.b.logger.Debug("transaction marker not written", "topic", tp.Topic, "partition", tp.Partition, "err", err)
					retry = append(retry, tp)
				}
			}
		}
		for _, tp := range job.tps {
			if !answered[tp] {
				retry = append(retry, tp)
			}
		}
	}
	if fenced {
		return nil, errCoordinatorFenced
	}
	return retry, nil
}

// enqueue queues job for leader and, when no request to leader is in flight,
// sends the queue in this goroutine until it is empty.
func (w *txnMarkerWriter) enqueue(ctx context.Context, leader int32, job *markerJob) {
	w.mu.Lock()
	w.queued[leader] = append(w.queued[leader], job)
	if w.sending[leader] {
		w.mu.Unlock()
		return
	}
	w.sending[leader] = true
	w.mu.Unlock()
	for {
		w.mu.Lock()
		batch := w.queued[leader]
		delete(w.queued, leader)
		if len(batch) == 0 {
			w.sending[leader] = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.sendBatch(ctx, leader, batch)
	}
}

// sendBatch sends the markers of batch in one request and hands each job its
// answer. Jobs of one producer id never share a batch: a transactional id has
// one completion at a time.
func (w *txnMarkerWriter) sendBatch(ctx context.Context, leader int32, batch []*markerJob) {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	for _, j := range batch {
		req.Markers = append(req.Markers, j.marker)
	}
	resp, err := w.send(ctx, leader, req)
	for _, j := range batch {
		a := markerAnswer{err: err}
		if err == nil {
			a.err = fmt.Errorf("no answer for producer %d", j.marker.ProducerID)
			for i := range resp.Markers {
				if resp.Markers[i].ProducerID == j.marker.ProducerID {
					a = markerAnswer{resp: &resp.Markers[i]}
				}
			}
		}
		j.done <- a
	}
}

// send is one WriteTxnMarkers round trip to broker id.
func (w *txnMarkerWriter) send(ctx context.Context, id int32, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
	p, err := w.b.peerIn(&w.peers, id)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := p.request(rctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.WriteTxnMarkersResponse), nil
}

// close closes the marker connections at shutdown.
func (w *txnMarkerWriter) close() {
	l := &w.b.ctl
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range w.peers {
		p.close()
		delete(w.peers, id)
	}
}
