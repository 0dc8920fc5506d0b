package gateway

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Adapters of the partition requests to the splitter (split.go).

// resolve names a topic the client named by name or (usesIDs) by id.
func (cc *clientConn) resolve(name string, id [16]byte, usesIDs bool) string {
	if !usesIDs {
		return name
	}
	n, ok := cc.g.cluster.topicName(id)
	if !ok {
		ctx, cancel := context.WithTimeout(cc.ctx, 5*time.Second)
		_ = cc.g.cluster.refresh(ctx, 500*time.Millisecond)
		cancel()
		n, _ = cc.g.cluster.topicName(id)
	}
	return n
}

// topicKey is how results of a topic in a broker's response are matched: by
// name, or by id for requests that use ids.
func idNames(ps []part) map[[16]byte]string {
	m := map[[16]byte]string{}
	for _, p := range ps {
		m[p.id] = p.topic
	}
	return m
}

func requestTimeout(ms int32) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	return min(max(d, 5*time.Second), 60*time.Second)
}

func handleProduce(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.ProduceRequest)
	ids := req.Version >= 13
	api := &splitAPI{key: 0, noResponse: req.Acks == 0, timeout: requestTimeout(req.TimeoutMillis)}
	if req.Acks != 0 {
		api.order = &cc.produceOrder // each partition's batches reach its leader in the client's order
	}
	for ti, t := range req.Topics {
		name := cc.resolve(t.Topic, t.TopicID, ids)
		for pi, p := range t.Partitions {
			api.parts = append(api.parts, part{topic: name, id: t.TopicID, partition: p.Partition, ti: ti, pi: pi})
		}
	}
	idem := idempotentBatches(req)
	// NOT_LEADER_OR_FOLLOWER means nothing was written: always safe to send again.
	// A request lost with its connection may have been written: only idempotent
	// batches (the leader drops duplicates) are sent again.
	api.retry = func(code int16, lost bool) bool {
		if lost && !idem {
			return false
		}
		return leaderMoved(code)
	}
	api.sub = func(ps []part, _ int) kmsg.Request {
		sub := kmsg.NewPtrProduceRequest()
		sub.Version, sub.TransactionID, sub.Acks, sub.TimeoutMillis = req.Version, req.TransactionID, req.Acks, req.TimeoutMillis
		last := -1
		for _, p := range ps {
			if p.ti != last {
				t := req.Topics[p.ti]
				sub.Topics = append(sub.Topics, kmsg.ProduceRequestTopic{Topic: t.Topic, TopicID: t.TopicID})
				last = p.ti
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, req.Topics[p.ti].Partitions[p.pi])
		}
		return sub
	}
	names := idNames(api.parts)
	var throttle int32
	api.onResp = func(r kmsg.Response) { throttle = max(throttle, r.(*kmsg.ProduceResponse).ThrottleMillis) }
	api.results = func(r kmsg.Response, put func(tp, any, int16) bool) {
		for _, t := range r.(*kmsg.ProduceResponse).Topics {
			name := t.Topic
			if ids {
				name = names[t.TopicID]
			}
			for _, p := range t.Partitions {
				p.CurrentLeader = kmsg.ProduceResponseTopicPartitionCurrentLeader{LeaderID: -1, LeaderEpoch: -1}
				put(tp{name, p.Partition}, p, p.ErrorCode)
			}
		}
	}
	api.errResult = func(p part, code int16) any {
		r := kmsg.NewProduceResponseTopicPartition()
		r.Partition, r.ErrorCode, r.BaseOffset = p.partition, code, -1
		return r
	}
	api.build = func(res []any) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		resp.ThrottleMillis = throttle
		last := -1
		for i, p := range api.parts {
			if p.ti != last {
				t := req.Topics[p.ti]
				resp.Topics = append(resp.Topics, kmsg.ProduceResponseTopic{Topic: t.Topic, TopicID: t.TopicID})
				last = p.ti
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, res[i].(kmsg.ProduceResponseTopicPartition))
		}
		return resp
	}
	return cc.split(api)
}

func handleFetch(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.FetchRequest)
	if req.ReplicaID >= 0 || req.ReplicaState.ID >= 0 {
		return nil, errBrokerOnly
	}
	ids := req.Version >= 13
	// Fetch sessions (KIP-227) are not kept: every fetch is a full one and is
	// answered with session id 0, so no client is tied to an instance.
	api := &splitAPI{key: 1, timeout: time.Duration(req.MaxWaitMillis)*time.Millisecond + 30*time.Second}
	for ti, t := range req.Topics {
		name := cc.resolve(t.Topic, t.TopicID, ids)
		for pi, p := range t.Partitions {
			api.parts = append(api.parts, part{topic: name, id: t.TopicID, partition: p.Partition, ti: ti, pi: pi})
		}
	}
	// A fetch is not sent again: the client fetches again anyway, and a second
	// long poll would double its wait.
	api.retry = func(int16, bool) bool { return false }
	names := idNames(api.parts)
	// Answers that came after the client was answered are kept on the
	// connection and given to the client's next fetch of the same offsets.
	var got int
	api.preset = func(p part) (any, bool) {
		rp := req.Topics[p.ti].Partitions[p.pi]
		r, ok := cc.takeLeftover(tp{p.topic, p.partition}, rp.FetchOffset, req.IsolationLevel)
		if ok {
			got += len(r.RecordBatches)
		}
		return r, ok
	}
	api.keep = func(p part, r any, code int16) {
		fp := r.(kmsg.FetchResponseTopicPartition)
		if code != 0 || len(fp.RecordBatches) == 0 {
			return
		}
		offset := req.Topics[p.ti].Partitions[p.pi].FetchOffset
		if p.ahead {
			offset = p.offset
		}
		cc.keepLeftover(tp{p.topic, p.partition}, offset, req.IsolationLevel, fp)
	}
	// A partition answered from a leftover is read ahead from the offset after
	// its records, so that the brokers keep working while the client handles
	// this answer, as they would with a client fetching from each directly.
	api.ahead = func(p part, r any) (int64, bool) {
		next, ok := nextOffset(r.(kmsg.FetchResponseTopicPartition).RecordBatches)
		return next, ok
	}
	api.sub = func(ps []part, n int) kmsg.Request {
		sub := kmsg.NewPtrFetchRequest()
		sub.Version, sub.ReplicaID, sub.ReplicaState = req.Version, -1, req.ReplicaState
		sub.MaxWaitMillis, sub.MinBytes, sub.IsolationLevel, sub.Rack = req.MaxWaitMillis, req.MinBytes, req.IsolationLevel, req.Rack
		if got >= int(max(req.MinBytes, 1)) {
			sub.MaxWaitMillis = 0 // the client has its bytes already: no long poll
		}
		sub.MaxBytes = fetchShare(req.MaxBytes, n)
		sub.SessionID, sub.SessionEpoch = 0, -1
		last := -1
		for _, p := range ps {
			if p.ti != last {
				t := req.Topics[p.ti]
				sub.Topics = append(sub.Topics, kmsg.FetchRequestTopic{Topic: t.Topic, TopicID: t.TopicID})
				last = p.ti
			}
			st := &sub.Topics[len(sub.Topics)-1]
			fp := req.Topics[p.ti].Partitions[p.pi]
			if p.ahead {
				fp.FetchOffset = p.offset
			}
			st.Partitions = append(st.Partitions, fp)
		}
		return sub
	}
	var throttle int32
	api.onResp = func(r kmsg.Response) { throttle = max(throttle, r.(*kmsg.FetchResponse).ThrottleMillis) }
	// A long poll ends when one broker's answer brings the client's minimum
	// bytes or an error: the client is answered at once, as the broker would
	// answer a direct client, instead of waiting out the other brokers' polls.
	// Their partitions are answered as "nothing new yet": no records, and the
	// offsets (high watermark, last stable, log start) the gateway last saw for
	// them. A partition whose offsets the gateway has not seen yet is waited
	// for, so no client is told a made-up high watermark.
	var news bool
	answered := map[tp]bool{}
	api.enough = func() bool {
		if !news && got < int(max(req.MinBytes, 1)) {
			return false
		}
		for _, p := range api.parts {
			if _, ok := cc.g.marks.get(tp{p.topic, p.partition}); !ok && !answered[tp{p.topic, p.partition}] {
				return false
			}
		}
		return true
	}
	api.pending = func(p part) any {
		r := kmsg.NewFetchResponseTopicPartition()
		r.Partition, r.RecordBatches = p.partition, []byte{}
		m, _ := cc.g.marks.get(tp{p.topic, p.partition})
		r.HighWatermark, r.LastStableOffset, r.LogStartOffset = m.hw, m.lso, m.logStart
		return r
	}
	api.results = func(r kmsg.Response, put func(tp, any, int16) bool) {
		fr := r.(*kmsg.FetchResponse)
		for _, t := range fr.Topics {
			name := t.Topic
			if ids {
				name = names[t.TopicID]
			}
			for _, p := range t.Partitions {
				if p.ErrorCode == 0 && fr.ErrorCode != 0 {
					p.ErrorCode = fr.ErrorCode
				}
				p.CurrentLeader = kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: -1, LeaderEpoch: -1}
				p.PreferredReadReplica = -1
				if p.RecordBatches == nil {
					p.RecordBatches = []byte{} // librdkafka loops on a null record set
				}
				if p.ErrorCode == 0 {
					cc.g.marks.put(tp{name, p.Partition}, mark{p.HighWatermark, p.LastStableOffset, p.LogStartOffset})
				}
				if put(tp{name, p.Partition}, p, p.ErrorCode) {
					got += len(p.RecordBatches)
					news = news || p.ErrorCode != 0
					answered[tp{name, p.Partition}] = true
				}
			}
		}
	}
	api.raw = rawFetch
	api.errResult = func(p part, code int16) any {
		r := kmsg.NewFetchResponseTopicPartition()
		r.Partition, r.ErrorCode, r.HighWatermark, r.LastStableOffset, r.LogStartOffset = p.partition, code, -1, -1, -1
		r.RecordBatches = []byte{}
		return r
	}
	api.build = func(res []any) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ThrottleMillis, resp.SessionID = throttle, 0
		last := -1
		for i, p := range api.parts {
			if p.ti != last {
				t := req.Topics[p.ti]
				resp.Topics = append(resp.Topics, kmsg.FetchResponseTopic{Topic: t.Topic, TopicID: t.TopicID})
				last = p.ti
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, res[i].(kmsg.FetchResponseTopicPartition))
		}
		return resp
	}
	return cc.split(api)
}

func handleListOffsets(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	if req.ReplicaID >= 0 {
		return nil, errBrokerOnly
	}
	api := &splitAPI{key: 2, timeout: requestTimeout(req.TimeoutMillis)}
	for ti, t := range req.Topics {
		for pi, p := range t.Partitions {
			api.parts = append(api.parts, part{topic: t.Topic, partition: p.Partition, ti: ti, pi: pi})
		}
	}
	api.retry = func(code int16, _ bool) bool { return leaderMoved(code) }
	api.sub = func(ps []part, _ int) kmsg.Request {
		sub := kmsg.NewPtrListOffsetsRequest()
		sub.Version, sub.ReplicaID, sub.IsolationLevel, sub.TimeoutMillis = req.Version, -1, req.IsolationLevel, req.TimeoutMillis
		last := -1
		for _, p := range ps {
			if p.ti != last {
				sub.Topics = append(sub.Topics, kmsg.ListOffsetsRequestTopic{Topic: p.topic})
				last = p.ti
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, req.Topics[p.ti].Partitions[p.pi])
		}
		return sub
	}
	var throttle int32
	api.onResp = func(r kmsg.Response) { throttle = max(throttle, r.(*kmsg.ListOffsetsResponse).ThrottleMillis) }
	api.results = func(r kmsg.Response, put func(tp, any, int16) bool) {
		for _, t := range r.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				put(tp{t.Topic, p.Partition}, p, p.ErrorCode)
			}
		}
	}
	api.errResult = func(p part, code int16) any {
		r := kmsg.NewListOffsetsResponseTopicPartition()
		r.Partition, r.ErrorCode = p.partition, code
		return r
	}
	api.build = func(res []any) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		resp.ThrottleMillis = throttle
		last := -1
		for i, p := range api.parts {
			if p.ti != last {
				resp.Topics = append(resp.Topics, kmsg.ListOffsetsResponseTopic{Topic: p.topic})
				last = p.ti
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, res[i].(kmsg.ListOffsetsResponseTopicPartition))
		}
		return resp
	}
	return cc.split(api)
}

func handleOffsetForLeaderEpoch(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	if req.Version >= 3 && req.ReplicaID >= 0 {
		return nil, errBrokerOnly
	}
	api := &splitAPI{key: 23, timeout: 30 * time.Second}
	for ti, t := range req.Topics {
		for pi, p := range t.Partitions {
			api.parts = append(api.parts, part{topic: t.Topic, partition: p.Partition, ti: ti, pi: pi})
		}
	}
	api.retry = func(code int16, _ bool) bool { return leaderMoved(code) }
	api.sub = func(ps []part, _ int) kmsg.Request {
		sub := kmsg.NewPtrOffsetForLeaderEpochRequest()
		sub.Version, sub.ReplicaID = req.Version, -1
		last := -1
		for _, p := range ps {
			if p.ti != last {
				sub.Topics = append(sub.Topics, kmsg.OffsetForLeaderEpochRequestTopic{Topic: p.topic})
				last = p.ti
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, req.Topics[p.ti].Partitions[p.pi])
		}
		return sub
	}
	var throttle int32
	api.onResp = func(r kmsg.Response) {
		throttle = max(throttle, r.(*kmsg.OffsetForLeaderEpochResponse).ThrottleMillis)
	}
	api.results = func(r kmsg.Response, put func(tp, any, int16) bool) {
		for _, t := range r.(*kmsg.OffsetForLeaderEpochResponse).Topics {
			for _, p := range t.Partitions {
				put(tp{t.Topic, p.Partition}, p, p.ErrorCode)
			}
		}
	}
	api.errResult = func(p part, code int16) any {
		r := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
		r.Partition, r.ErrorCode, r.LeaderEpoch, r.EndOffset = p.partition, code, -1, -1
		return r
	}
	api.build = func(res []any) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		resp.ThrottleMillis = throttle
		last := -1
		for i, p := range api.parts {
			if p.ti != last {
				resp.Topics = append(resp.Topics, kmsg.OffsetForLeaderEpochResponseTopic{Topic: p.topic})
				last = p.ti
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, res[i].(kmsg.OffsetForLeaderEpochResponseTopicPartition))
		}
		return resp
	}
	return cc.split(api)
}

func handleDeleteRecords(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	api := &splitAPI{key: 21, timeout: requestTimeout(req.TimeoutMillis)}
	for ti, t := range req.Topics {
		for pi, p := range t.Partitions {
			api.parts = append(api.parts, part{topic: t.Topic, partition: p.Partition, ti: ti, pi: pi})
		}
	}
	api.retry = func(code int16, _ bool) bool { return leaderMoved(code) } // deleting up to an offset twice is harmless
	api.sub = func(ps []part, _ int) kmsg.Request {
		sub := kmsg.NewPtrDeleteRecordsRequest()
		sub.Version, sub.TimeoutMillis = req.Version, req.TimeoutMillis
		last := -1
		for _, p := range ps {
			if p.ti != last {
				sub.Topics = append(sub.Topics, kmsg.DeleteRecordsRequestTopic{Topic: p.topic})
				last = p.ti
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, req.Topics[p.ti].Partitions[p.pi])
		}
		return sub
	}
	var throttle int32
	api.onResp = func(r kmsg.Response) { throttle = max(throttle, r.(*kmsg.DeleteRecordsResponse).ThrottleMillis) }
	api.results = func(r kmsg.Response, put func(tp, any, int16) bool) {
		for _, t := range r.(*kmsg.DeleteRecordsResponse).Topics {
			for _, p := range t.Partitions {
				put(tp{t.Topic, p.Partition}, p, p.ErrorCode)
			}
		}
	}
	api.errResult = func(p part, code int16) any {
		r := kmsg.NewDeleteRecordsResponseTopicPartition()
		r.Partition, r.ErrorCode, r.LowWatermark = p.partition, code, -1
		return r
	}
	api.build = func(res []any) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
		resp.ThrottleMillis = throttle
		last := -1
		for i, p := range api.parts {
			if p.ti != last {
				resp.Topics = append(resp.Topics, kmsg.DeleteRecordsResponseTopic{Topic: p.topic})
				last = p.ti
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, res[i].(kmsg.DeleteRecordsResponseTopicPartition))
		}
		return resp
	}
	return cc.split(api)
}

func handleDescribeProducers(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.DescribeProducersRequest)
	api := &splitAPI{key: 61, timeout: 30 * time.Second}
	for ti, t := range req.Topics {
		for pi, p := range t.Partitions {
			api.parts = append(api.parts, part{topic: t.Topic, partition: p, ti: ti, pi: pi})
		}
	}
	api.retry = func(code int16, _ bool) bool { return leaderMoved(code) }
	api.sub = func(ps []part, _ int) kmsg.Request {
		sub := kmsg.NewPtrDescribeProducersRequest()
		sub.Version = req.Version
		last := -1
		for _, p := range ps {
			if p.ti != last {
				sub.Topics = append(sub.Topics, kmsg.DescribeProducersRequestTopic{Topic: p.topic})
				last = p.ti
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p.partition)
		}
		return sub
	}
	var throttle int32
	api.onResp = func(r kmsg.Response) { throttle = max(throttle, r.(*kmsg.DescribeProducersResponse).ThrottleMillis) }
	api.results = func(r kmsg.Response, put func(tp, any, int16) bool) {
		for _, t := range r.(*kmsg.DescribeProducersResponse).Topics {
			for _, p := range t.Partitions {
				put(tp{t.Topic, p.Partition}, p, p.ErrorCode)
			}
		}
	}
	api.errResult = func(p part, code int16) any {
		r := kmsg.NewDescribeProducersResponseTopicPartition()
		r.Partition, r.ErrorCode = p.partition, code
		return r
	}
	api.build = func(res []any) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
		resp.ThrottleMillis = throttle
		last := -1
		for i, p := range api.parts {
			if p.ti != last {
				resp.Topics = append(resp.Topics, kmsg.DescribeProducersResponseTopic{Topic: p.topic})
				last = p.ti
			}
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, res[i].(kmsg.DescribeProducersResponseTopicPartition))
		}
		return resp
	}
	return cc.split(api)
}

// fetchResponseBudget bounds a merged fetch response: each of n brokers may
// return the client's whole fetch.max.bytes (as each would to a client
// connected directly), as long as the sum stays within this, below the 100 MiB
// clients accept by default (librdkafka's receive.message.max.bytes, kgo's
// BrokerMaxReadBytes).
const fetchResponseBudget = 50 << 20

// fetchShare is each of n brokers' max bytes of a fetch for maxBytes.
func fetchShare(maxBytes int32, n int) int32 {
	n = max(n, 1)
	total := min(int64(maxBytes)*int64(n), max(int64(maxBytes), fetchResponseBudget))
	return int32(max(total/int64(n), 1))
}

// mark is a partition's offsets as a fetch last reported them.
type mark struct{ hw, lso, logStart int64 }

// marks are the partitions' last reported offsets, for the partitions of a
// merged fetch whose broker has not answered yet.
type marks struct {
	mu sync.Mutex
	m  map[tp]mark
}

func (m *marks) get(k tp) (mark, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[k]
	return v, ok
}

func (m *marks) put(k tp, v mark) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[tp]mark{}
	}
	if len(m.m) > 1<<20 {
		clear(m.m) // bounded: partitions come and go
	}
	m.m[k] = v
}

// leftover is a partition's fetch answer that came after the client was
// answered: records from offset, kept for the client's next fetch.
type leftover struct {
	offset    int64
	isolation int8
	at        time.Time
	resp      kmsg.FetchResponseTopicPartition
}

// leftoverMaxAge bounds how long a leftover is offered.
const leftoverMaxAge = 10 * time.Second

func (cc *clientConn) keepLeftover(k tp, offset int64, isolation int8, r kmsg.FetchResponseTopicPartition) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.leftovers == nil {
		cc.leftovers = map[tp]leftover{}
	}
	if len(cc.leftovers) >= 10000 {
		return // bounded: a client fetching that many partitions refetches instead
	}
	cc.leftovers[k] = leftover{offset: offset, isolation: isolation, at: time.Now(), resp: r}
}

func (cc *clientConn) takeLeftover(k tp, offset int64, isolation int8) (kmsg.FetchResponseTopicPartition, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	l, ok := cc.leftovers[k]
	if !ok {
		return kmsg.FetchResponseTopicPartition{}, false
	}
	delete(cc.leftovers, k)
	if l.offset != offset || l.isolation != isolation || time.Since(l.at) > leftoverMaxAge {
		return kmsg.FetchResponseTopicPartition{}, false
	}
	return l.resp, true
}

// nextOffset is the offset after the last record of a fetch answer's record
// batches (v2 batches: base offset + last offset delta + 1); false when there
// is no complete batch.
func nextOffset(batches []byte) (int64, bool) {
	next, ok := int64(0), false
	for len(batches) >= 61 {
		length := int64(binary.BigEndian.Uint32(batches[8:12]))
		if length < 49 || int64(len(batches)) < 12+length {
			break // a partial batch at the end of the answer
		}
		base := int64(binary.BigEndian.Uint64(batches[0:8]))
		delta := int64(int32(binary.BigEndian.Uint32(batches[23:27])))
		next, ok = base+delta+1, true
		batches = batches[12+length:]
	}
	return next, ok
}

// rawFetch answers a fetch that went whole to one broker with the broker's
// encoding of its answer, saving a copy of every record, when there is
// nothing in it to rewrite: no error, no session, no broker named (preferred
// read replica, current leader, broker endpoints) and no null record set.
func rawFetch(resp kmsg.Response, encoded []byte) kmsg.Response {
	fr := resp.(*kmsg.FetchResponse)
	if encoded == nil || fr.ErrorCode != 0 || fr.SessionID != 0 || len(fr.Brokers) > 0 {
		return nil
	}
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.RecordBatches == nil || p.PreferredReadReplica != -1 ||
				p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1 {
				return nil
			}
		}
	}
	return rawResponse{Response: resp, encoded: encoded}
}

// rawResponse is an answer passed on as the broker encoded it (after the
// response header).
type rawResponse struct {
	kmsg.Response
	encoded []byte
}
