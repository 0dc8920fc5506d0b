package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/storage"
)

// Produce: v3-13
//
// Behavior:
//   - Record batches (magic 2) are stored as sent: CRC-checked, base offset and
//     leader epoch assigned in place, never re-encoded. A bad batch fails its
//     partition with CORRUPT_MESSAGE and appends nothing of that partition.
//   - Only the partition's leader accepts writes (else NOT_LEADER_OR_FOLLOWER).
//   - acks 0, 1 and -1. acks=-1 needs an ISR of at least min.insync.replicas
//     (else NOT_ENOUGH_REPLICAS, nothing appended) and completes when the high
//     watermark passes the batch, i.e. every ISR member has it; REQUEST_TIMED_OUT
//     after the request's timeout. With flush=always every replica acknowledges
//     only what it has fsynced. As in Kafka's produce purgatory, every partition is
//     appended first and the request then waits once, under one deadline of
//     timeout_ms for all its partitions: the answer never comes later than that
//     (a partition whose leadership moves meanwhile answers NOT_LEADER_OR_FOLLOWER
//     at once).
//   - acks=0 sends no response.
//   - Idempotent batches (producer id >= 0) are sequence-checked by the log; a
//     retried batch among the last five is answered with its original offset.
//   - v13 names topics by ID.
//   - v10+: NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH carry the partition's
//     leader and epoch (CurrentLeader) and its address (NodeEndpoints), KIP-951
//     (leaderhint.go). An acks=all batch parked when leadership moves is answered at
//     once with NOT_LEADER_OR_FOLLOWER and the new leader.
//   - Writes to internal topics are refused with INVALID_TOPIC_EXCEPTION.
//   - Compacted topics (cleanup.policy includes compact) refuse records without
//     a key: INVALID_RECORD for the partition, with a record error per keyless
//     record (v8+), and nothing of the partition appended, like Kafka; CreateTime
//     timestamps outside message.timestamp.before.max.ms / after.max.ms (or the
//     deprecated difference.max.ms) get INVALID_TIMESTAMP the same way.
//   - Authorization: WRITE on each topic, else TOPIC_AUTHORIZATION_FAILED for its
//     partitions; a transactional id needs WRITE on it, else every partition gets
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED. Idempotence is authorized by
//     InitProducerId, as in Kafka 3.x.
//   - Transactional batches (attribute bit 4) need the request's transactional id
//     (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the partition, as Kafka). The
//     log tracks each producer's open transaction: a batch from an older producer
//     epoch gets INVALID_PRODUCER_EPOCH (every version, as Kafka's log answers), a
//     non-transactional batch inside an open transaction INVALID_TXN_STATE. Control
//     batches are refused (INVALID_RECORD): only WriteTxnMarkers writes markers.
//   - KIP-890 part 1 (transaction.partition.verification.enable, default true): before
//     a producer's first transactional batch of a transaction on a partition, the
//     leader asks the transaction coordinator (AddPartitionsToTxn v4, VerifyOnly)
//     whether the partition was added; if not, INVALID_TXN_STATE and nothing is
//     written; a coordinator that cannot answer gives NOT_ENOUGH_REPLICAS (retriable).
//     Once the transaction is open on the partition no further round trip is made,
//     and a marker that ends it between verification and append fails the append.

func init() { register(0, 3, 13, (*Broker).handleProduce) }

func (b *Broker) handleProduce(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	var allErr error
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		allErr = kerr.InvalidRequiredAcks
	case req.TransactionID != nil && !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionID):
		allErr = kerr.TransactionalIDAuthorizationFailed
	}

	// The request's deadline for acks=all, taken once: the partitions wait together.
	deadline := time.Now().Add(time.Duration(max(req.TimeoutMillis, 1)) * time.Millisecond)
	var waits []replicationWait
	for i, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		topicErr := allErr
		if topicErr == nil && !cc.authorizedTopic(kmsg.ACLOperationWrite, req.Version >= 13, rt.Topic, rt.TopicID) {
			topicErr = kerr.TopicAuthorizationFailed
		}
		for j, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			err := topicErr
			if err == nil {
				var w replicationWait
				w, err = b.produceTo(cc, req, rt, &rp, &sp)
				if err == nil && w.p != nil {
					w.topic, w.partition = i, j
					waits = append(waits, w)
				}
			}
			setProduceError(req.Version, &sp, err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(waits) > 0 {
		start := time.Now()
		purgatory := b.metrics.purgatory.WithLabelValues("produce")
		purgatory.Inc()
		for _, w := range waits {
			err := w.p.waitReplicated(cc.ctx, w.target, time.Until(deadline), w.minISR)
			setProduceError(req.Version, &resp.Topics[w.topic].Partitions[w.partition], err)
		}
		purgatory.Dec()
		cc.waited(time.Since(start))
	}
	if req.Acks == 0 {
		return nil, nil
	}
	if req.Version >= 10 {
		b.produceLeaderHints(cc, resp) // leaderhint.go (KIP-951)
	}
	return resp, nil
}

// replicationWait is an acks=all append waiting for the high watermark: the
// response partition (by index) it answers, and what it waits for.
type replicationWait struct {
	topic, partition int
	p                *partition
	target           int64
	minISR           int
}

// setProduceError sets a partition's error code and (v8+) message; nil changes nothing.
func setProduceError(version int16, sp *kmsg.ProduceResponseTopicPartition, err error) {
	if err == nil {
		return
	}
	sp.ErrorCode = errCode(err)
	if version >= 8 {
		sp.ErrorMessage = errMessage(err)
	}
}

// produceTo appends a partition's records; for acks=all it returns what the
// request then waits for (handleProduce waits for every partition together).
func (b *Broker) produceTo(cc *conn, req *kmsg.ProduceRequest, rt kmsg.ProduceRequestTopic, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) (replicationWait, error) {
	var none replicationWait
	p, err := b.leaderReplica(partitionRef{topic: rt.Topic, id: rt.TopicID, byID: req.Version >= 13, index: rp.Partition}, -1)
	if err != nil {
		return none, err
	}
	if p.topic.internal {
		return none, kafkaErr(kerr.InvalidTopicException, "cannot produce to an internal topic")
	}
	if len(rp.Records) == 0 {
		return none, kafkaErr(kerr.InvalidRecord, "no record batch")
	}
	if record.Transactional(rp.Records) && req.TransactionID == nil {
		return none, kafkaErr(kerr.TransactionalIDAuthorizationFailed, "transactional records need the request's transactional id")
	}
	if err := b.checkTenantDisk(p.topic.name); err != nil { // tenant.go
		return none, err
	}
	if rules := b.recordRulesOf(p.topic); rules.any() {
		if err := checkRecords(req.Version, rules, p.topic.name, rp.Partition, rp.Records, time.Now(), sp); err != nil {
			return none, err
		}
	}
	minISR := 1
	if req.Acks == -1 {
		minISR = b.minISR(p.topic)
		p.mu.Lock()
		isr, leaderEpoch := len(p.isr), p.leaderEpoch
		p.mu.Unlock()
		if isr < minISR {
			return none, kafkaErr(kerr.NotEnoughReplicas, fmt.Sprintf("ISR has %d replicas, min.insync.replicas is %d (leader epoch %d)", isr, minISR, leaderEpoch))
		}
	}
	_, epoch, _ := p.state()
	var res storage.AppendResult
	if req.TransactionID != nil && record.Transactional(rp.Records) {
		res, err = b.appendTransactional(cc.ctx, p, *req.TransactionID, rp.Records, epoch)
	} else {
		res, err = p.log.Append(rp.Records, epoch)
	}
	if errors.Is(err, storage.ErrClosed) {
		return none, kerr.UnknownTopicOrPartition
	}
	if err != nil {
		return none, err
	}
	sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
	if !res.Duplicate {
		p.maybeAdvanceHW()
		p.notifyAppend()
		b.metrics.bytesIn.WithLabelValues(p.topic.name).Add(float64(len(rp.Records)))
		b.metrics.recordsIn.WithLabelValues(p.topic.name).Add(float64(res.LastOffset - res.BaseOffset + 1))
		cc.meterProduce(p.topic.name, len(rp.Records)) // tenant.go
	}
	if req.Acks == -1 {
		return replicationWait{p: p, target: res.LastOffset + 1, minISR: minISR}, nil
	}
	return none, nil
}
