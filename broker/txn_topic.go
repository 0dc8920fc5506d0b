package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	return txn.New(cfg, txnStore{b}, txnMarkerWriter{b}, b.nextProducerID, b.logger.With("part", "txn"), b.registry)
}

// maybeCreateTxnTopic creates __transaction_state once enough brokers are live
// for its replication factor (transaction.state.log.replication.factor capped by
// the quorum size), with min.insync.replicas transaction.state.log.min.isr capped
// by that factor, compacted. Only the controller acts.
func (b *Broker) maybeCreateTxnTopic(ctx context.Context) {
	if !b.quorum.IsController() {
		return
	}
	img := b.quorum.Image()
	if img.Topic(txnTopic) != nil {
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

// txnMarkerWriter sends the coordinator's markers as WriteTxnMarkers requests,
// one per partition leader, over the inter-broker listener: to this broker too,
// so every marker takes the same path.
type txnMarkerWriter struct{ b *Broker }

// errCoordinatorFenced stops a completion: a partition leader knows a newer
// coordinator or producer epoch.
var errCoordinatorFenced = errors.New("transaction markers refused: the coordinator or producer epoch was fenced")

// WriteMarkers implements txn.MarkerWriter.
func (w txnMarkerWriter) WriteMarkers(ctx context.Context, m txn.Markers) ([]txn.TopicPartition, error) {
	b := w.b
	img := b.quorum.Image()
	byLeader := map[int32][]txn.TopicPartition{}
	var retry []txn.TopicPartition
	for _, tp := range m.Partitions {
		if img.Topic(tp.Topic) == nil {
			continue // deleted: nothing to mark, as in Kafka
		}
		pm, ok := img.Partition(tp.Topic, tp.Partition)
		if !ok {
			continue
		}
		if pm.Leader < 0 {
			retry = append(retry, tp)
			continue
		}
		byLeader[pm.Leader] = append(byLeader[pm.Leader], tp)
	}
	var fenced bool
	for leader, tps := range byLeader {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		req.Version = 1
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
		req.Markers = append(req.Markers, mk)
		resp, err := w.send(ctx, leader, req)
		if err != nil {
			b.logger.Debug("sending transaction markers", "leader", leader, "err", err)
			retry = append(retry, tps...)
			continue
		}
		answered := map[txn.TopicPartition]bool{}
		for _, rm := range resp.Markers {
			for _, rt := range rm.Topics {
				for _, rp := range rt.Partitions {
					tp := txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
					answered[tp] = true
					switch err := kerr.ErrorForCode(rp.ErrorCode); err {
					case nil, kerr.UnsupportedForMessageFormat, kerr.UnsupportedVersion:
					case kerr.InvalidProducerEpoch, kerr.TransactionCoordinatorFenced:
						fenced = true
					default:
						b.logger.Debug("transaction marker not written", "topic", tp.Topic, "partition", tp.Partition, "err", err)
						retry = append(retry, tp)
					}
				}
			}
		}
		for _, tp := range tps {
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

// send is one WriteTxnMarkers round trip to broker id.
func (w txnMarkerWriter) send(ctx context.Context, id int32, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
	p, err := w.b.peerIn(&w.b.txnPeers, id)
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

// closeTxnPeers closes the marker connections at shutdown.
func (b *Broker) closeTxnPeers() {
	l := &b.ctl
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range b.txnPeers {
		p.close()
		delete(b.txnPeers, id)
	}
}
