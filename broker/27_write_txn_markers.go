package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/storage"
)

// WriteTxnMarkers: v0-1
//
// Behavior:
//   - Broker-to-broker: the transaction coordinator has each partition leader end a
//     producer's transaction with a control batch (commit or abort marker, with the
//     coordinator epoch). Refused with CLUSTER_AUTHORIZATION_FAILED on a client
//     listener and without CLUSTER_ACTION on the cluster.
//   - Per partition: only the leader writes (NOT_LEADER_OR_FOLLOWER); a marker from
//     an older producer epoch gets INVALID_PRODUCER_EPOCH, one from an older
//     coordinator epoch than the producer's last marker TRANSACTION_COORDINATOR_FENCED,
//     neither writing anything. Markers are written as acks=all: the ISR must hold at
//     least min.insync.replicas (else NOT_ENOUGH_REPLICAS) and the answer waits until
//     the high watermark passes the marker (REQUEST_TIMED_OUT after
//     txnMarkerTimeout), so a marker acknowledged to the coordinator survives failover.
//   - A commit makes the transaction's records visible to read_committed consumers; an
//     abort adds the transaction to the segment's aborted transaction index
//     (.txnindex). On __consumer_offsets partitions the marker also completes the
//     group coordinator's pending transactional offsets (commit: visible; abort:
//     dropped).
//   - Markers for all partitions are appended first and then waited on together.

func init() { register(27, 0, 1, (*Broker).handleWriteTxnMarkers) }

// txnMarkerTimeout bounds how long a marker waits for the ISR, like Kafka's
// request.timeout.ms default for the coordinator's marker requests.
const txnMarkerTimeout = 30 * time.Second

// pendingMarker is a marker appended to a partition and not yet replicated.
type pendingMarker struct {
	p      *partition
	sp     *kmsg.WriteTxnMarkersResponseMarkerTopicPartition
	next   int64 // offset after the marker
	minISR int
	marker record.Marker
}

func (b *Broker) handleWriteTxnMarkers(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	allowed := (cc.listener == nil || cc.listener.brokerOnly()) && cc.authorizedCluster(kmsg.ACLOperationClusterAction)
	var pending []pendingMarker
	for _, rm := range req.Markers {
		sm := kmsg.NewWriteTxnMarkersResponseMarker()
		sm.ProducerID = rm.ProducerID
		for _, rt := range rm.Topics {
			st := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			st.Topic = rt.Topic
			st.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(rt.Partitions))
			for i, idx := range rt.Partitions {
				st.Partitions[i].Partition = idx
			}
			sm.Topics = append(sm.Topics, st)
		}
		resp.Markers = append(resp.Markers, sm)
	}
	for i, rm := range req.Markers {
		m := record.Marker{ProducerID: rm.ProducerID, ProducerEpoch: rm.ProducerEpoch, Commit: rm.Committed, CoordinatorEpoch: rm.CoordinatorEpoch}
		for j, rt := range rm.Topics {
			for k, idx := range rt.Partitions {
				sp := &resp.Markers[i].Topics[j].Partitions[k]
				if !allowed {
					sp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
					continue
				}
				pm, err := b.appendMarker(rt.Topic, idx, m)
				if err != nil {
					sp.ErrorCode = errCode(err)
					b.logger.Debug("transaction marker refused", "topic", rt.Topic, "partition", idx,
						"producer_id", m.ProducerID, "commit", m.Commit, "err", err)
					continue
				}
				pm.sp = sp
				pending = append(pending, pm)
			}
		}
	}
	ctx, cancel := context.WithTimeout(cc.ctx, txnMarkerTimeout)
	defer cancel()
	for _, pm := range pending {
		err := pm.p.waitReplicated(ctx, pm.next, time.Until(deadlineOf(ctx)), pm.minISR)
		if err == nil && pm.p.topic.name == offsetsTopic {
			b.groups.CompleteTxnOffsets(pm.p.index, pm.marker.ProducerID, pm.marker.Commit)
		}
		pm.sp.ErrorCode = errCode(err)
	}
	return resp, nil
}

// deadlineOf is ctx's deadline; every caller sets one.
func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// appendMarker writes m to the partition as its leader.
func (b *Broker) appendMarker(topicName string, index int32, m record.Marker) (pendingMarker, error) {
	p, err := b.leaderReplica(partitionRef{topic: topicName, index: index}, -1)
	if err != nil {
		return pendingMarker{}, err
	}
	minISR := b.minISR(p.topic)
	p.mu.Lock()
	isr, leaderEpoch := len(p.isr), p.leaderEpoch
	p.mu.Unlock()
	if isr < minISR {
		return pendingMarker{}, kafkaErr(kerr.NotEnoughReplicas, fmt.Sprintf("ISR has %d replicas, min.insync.replicas is %d", isr, minISR))
	}
	res, err := p.log.AppendMarker(m, leaderEpoch)
	if errors.Is(err, storage.ErrClosed) {
		return pendingMarker{}, kerr.UnknownTopicOrPartition
	}
	if err != nil {
		return pendingMarker{}, err
	}
	p.maybeAdvanceHW()
	p.notifyAppend()
	return pendingMarker{p: p, next: res.LastOffset + 1, minISR: minISR, marker: m}, nil
}
