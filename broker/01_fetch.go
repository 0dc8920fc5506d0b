package broker

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/storage"
)

// Fetch: v4-16
//
// Behavior:
//   - Returns whole record batches as stored, read from the segment files in one
//     read per partition: no record is decoded or copied on its own.
//   - Long polling: waits up to MaxWaitMillis until MinBytes are available, woken by
//     appends to any requested partition. The wait also ends when the client sends
//     its next request on the connection (a LeaveGroup or commit queued behind the
//     fetch is not held for the max wait) or closes it.
//   - MaxBytes bounds the response and PartitionMaxBytes each partition, except that
//     the first non-empty partition returns at least one whole batch (KIP-74).
//   - Only leaders serve fetches (else NOT_LEADER_OR_FOLLOWER). Consumers read up to
//     the high watermark (READ_UNCOMMITTED) or the last stable offset (READ_COMMITTED):
//     the smaller of the high watermark and the first offset of the oldest open
//     transaction. LastStableOffset is returned either way. READ_COMMITTED answers
//     carry AbortedTransactions for the fetched range, from the aborted transaction
//     indexes (.txnindex) of the segments from the fetch offset on, so no data is
//     scanned; the client drops those producers' batches up to their abort marker.
//     Control batches are returned as stored (clients skip them). A waiting
//     READ_COMMITTED fetch wakes when the LSO moves: markers move it only once the
//     high watermark passes them, and high watermark moves wake every waiter.
//   - Followers fetch with their broker id as ReplicaID (ReplicaState from v15): they
//     read up to the log end offset, and their fetch offset is their log end offset,
//     which moves the high watermark and their place in the ISR.
//   - Fetch sessions (KIP-227) are not kept: a request to open one is answered with
//     session id 0, which tells clients to go on with full fetches.
//   - v9+: CurrentLeaderEpoch is checked (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH).
//   - Authorization: a follower's fetch needs CLUSTER_ACTION on the cluster, a
//     consumer's READ on each topic; else TOPIC_AUTHORIZATION_FAILED per partition.
//   - v16+: NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH carry the partition's
//     leader and epoch (CurrentLeader) and its address (NodeEndpoints), KIP-951
//     (leaderhint.go).
//   - v13+: topics by ID. An empty partition carries empty, not null, record bytes.

func init() { register(1, 4, 16, (*Broker).handleFetch) }

func (b *Broker) handleFetch(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.Version >= 7 && (req.SessionID != 0 || req.SessionEpoch > 0) {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp, nil
	}
	denied := cc.authorizeFetch(req)
	defer func() { resp.Topics = append(resp.Topics, denied...) }()

	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	var wake chan struct{}
	var timer *time.Timer
	var peer <-chan struct{}
	recorded := false // a follower's fetch offsets are recorded once per request
	for {
		resp.Topics = resp.Topics[:0]
		total := b.fetchOnce(cc, req, resp, recorded)
		recorded = true
		wait := time.Until(deadline)
		if total >= int(req.MinBytes) || wait <= 0 || cc.ctx.Err() != nil || peerMoved(peer) {
			break
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			timer = time.NewTimer(wait)
			defer timer.Stop()
			if cc.r != nil {
				var stop func()
				peer, stop = cc.watchPeer()
				defer stop()
			}
		}
		// Register and then re-check, so an append between the read and the
		// registration is not missed.
		b.registerFetchWaiter(req, wake)
		if b.fetchAvailable(req) < int(req.MinBytes) {
			start := time.Now()
			purgatory := b.metrics.purgatory.WithLabelValues("fetch")
			purgatory.Inc()
			select {
			case <-wake:
			case <-timer.C:
			case <-cc.ctx.Done():
			case <-peer:
			}
			purgatory.Dec()
			cc.waited(time.Since(start))
		}
		b.unregisterFetchWaiter(req, wake)
	}
	if req.Version >= 16 {
		b.fetchLeaderHints(cc, resp) // leaderhint.go (KIP-951)
	}
	return resp, nil
}

// peerMoved reports whether the client sent another request or went away
// while a fetch waited (conn.watchPeer).
func peerMoved(peer <-chan struct{}) bool {
	select {
	case <-peer:
		return true
	default:
		return false
	}
}

// replicaID is the broker id of a follower's fetch, -1 for consumers.
func replicaID(req *kmsg.FetchRequest) int32 {
	if req.Version >= 15 {
		return req.ReplicaState.ID
	}
	return req.ReplicaID
}

// fetchPartition resolves a requested partition, or the error for it: only
// leaders serve fetches.
func (b *Broker) fetchPartition(version int16, rt *kmsg.FetchRequestTopic, rp *kmsg.FetchRequestTopicPartition) (*partition, error) {
	cur := int32(-1)
	if version >= 9 {
		cur = rp.CurrentLeaderEpoch
	}
	return b.leaderReplica(partitionRef{topic: rt.Topic, id: rt.TopicID, byID: version >= 13, index: rp.Partition}, cur)
}

// fetchOnce fills resp with what is readable now and returns the record bytes.
//
// The record bytes of every partition are read into one buffer owned by the
// connection: requests of a connection are handled one at a time, and the
// response is encoded before the next request is read.
func (b *Broker) fetchOnce(cc *conn, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, recorded bool) int {
	cc.fetchBuf = cc.fetchBuf[:0]
	replica := replicaID(req)
	budget := int64(req.MaxBytes)
	if req.Version < 3 || budget <= 0 {
		budget = 1<<31 - 1
	}
	total := 0
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.RecordBatches = []byte{}
			p, err := b.fetchPartition(req.Version, rt, rp)
			if err == nil && replica >= 0 && !recorded {
				err = p.onReplicaFetch(cc.ctx, replica, rp.FetchOffset)
			} else if err == nil && replica >= 0 {
				err = p.checkFollower(replica) // a later round of a long poll: still not one?
			}
			throttled, skip := false, false
			if err == nil && replica >= 0 {
				skip, throttled = b.leaderThrottle(p, replica) // throttle.go
			}
			if err == nil {
				if skip {
					var none int64 // a zero budget: offsets only, no records
					err = b.readPartition(cc, p, rp, &sp, &none, false, true, req.IsolationLevel == 1)
				} else if throttled {
					// At most a tenth of a second's worth of the throttle at once.
					lb := min(budget, int64(b.throttles.leader.maxFetch(rp.PartitionMaxBytes)))
					before := lb
					err = b.readPartition(cc, p, rp, &sp, &lb, total == 0, true, req.IsolationLevel == 1)
					budget -= before - lb
				} else {
					err = b.readPartition(cc, p, rp, &sp, &budget, total == 0, replica >= 0, req.IsolationLevel == 1)
				}
			}
			if throttled {
				b.throttles.leader.record(time.Now(), len(sp.RecordBatches))
			}
			if errors.Is(err, storage.ErrClosed) {
				err = kerr.UnknownTopicOrPartition
			}
			sp.ErrorCode = errCode(err)
			total += len(sp.RecordBatches)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return total
}

func (b *Broker) readPartition(cc *conn, p *partition, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, budget *int64, first, replica, readCommitted bool) error {
	hw := p.hw.Load()
	lso := p.lastStable(hw)
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, lso, p.log.LogStartOffset()
	upTo := hw // consumers read committed data only
	switch {
	case replica:
		upTo = p.log.LogEndOffset()
	case readCommitted:
		upTo = lso
		sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
	}
	if rp.FetchOffset == upTo {
		return nil
	}
	if rp.FetchOffset > upTo && rp.FetchOffset <= p.log.LogEndOffset() {
		return nil // beyond the high watermark but in the log: wait, as Kafka does
	}
	limit := rp.PartitionMaxBytes
	if int64(limit) > *budget {
		limit = int32(*budget)
	}
	if limit <= 0 && !first {
		return nil
	}
	base := len(cc.fetchBuf)
	buf, err := p.log.ReadAppend(cc.fetchBuf, rp.FetchOffset, limit, upTo)
	if err != nil {
		return err
	}
	data := buf[base:len(buf):len(buf)]
	if int64(len(data)) > *budget && !first {
		return nil
	}
	cc.fetchBuf = buf
	*budget -= int64(len(data))
	sp.RecordBatches = data
	if !replica && len(data) > 0 {
		var n, end int64
		for h := range record.Batches(data) {
			n += int64(h.LastOffsetDelta) + 1
			end = h.NextOffset()
		}
		if readCommitted {
			for _, a := range p.log.AbortedTxns(rp.FetchOffset, end) {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				sp.AbortedTransactions = append(sp.AbortedTransactions, at)
			}
		}
		b.metrics.bytesOut.WithLabelValues(p.topic.name).Add(float64(len(data)))
		b.metrics.recordsOut.WithLabelValues(p.topic.name).Add(float64(n))
	}
	return nil
}

// fetchAvailable is how many bytes a fetch could return right now, estimated from
// log end offsets: any partition with data beyond its fetch offset counts fully.
func (b *Broker) fetchAvailable(req *kmsg.FetchRequest) int {
	n := 0
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			p, err := b.fetchPartition(req.Version, rt, rp)
			if err != nil {
				return 1 << 30 // errors are answered at once
			}
			end := p.hw.Load()
			switch {
			case replicaID(req) >= 0:
				end = p.log.LogEndOffset()
			case req.IsolationLevel == 1:
				end = p.lastStable(end)
			}
			if r := replicaID(req); r >= 0 {
				if skip, _ := b.leaderThrottle(p, r); skip {
					continue // held back by the leader throttle (throttle.go): nothing to send yet
				}
			}
			switch {
			case end > rp.FetchOffset:
				n += int(min(end-rp.FetchOffset, 1<<20)) // offsets as a lower bound of bytes
			case rp.FetchOffset > p.log.LogEndOffset():
				return 1 << 30 // out of range: answered at once
			}
		}
	}
	return n
}

func (b *Broker) registerFetchWaiter(req *kmsg.FetchRequest, wake chan struct{}) {
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			if p, err := b.fetchPartition(req.Version, rt, &rt.Partitions[j]); err == nil {
				p.addWaiter(wake)
			}
		}
	}
}

func (b *Broker) unregisterFetchWaiter(req *kmsg.FetchRequest, wake chan struct{}) {
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			if p, err := b.fetchPartition(req.Version, rt, &rt.Partitions[j]); err == nil {
				p.removeWaiter(wake)
			}
		}
	}
}

// lastStable is the partition's last stable offset given its high watermark
// hw: read_committed consumers read below it.
func (p *partition) lastStable(hw int64) int64 {
	if first := p.log.FirstUnstableOffset(); first >= 0 && first < hw {
		return first
	}
	return hw
}
