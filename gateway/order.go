package gateway

import "sync"

// partitionOrder keeps a client connection's produce requests in the order
// the client sent them, per partition, through leader changes.
//
// A producer pipelines several requests per partition (franz-go and
// librdkafka up to 5) and an idempotent one numbers its batches: the leader
// refuses a batch whose sequence does not follow the last one it wrote
// (OUT_OF_ORDER_SEQUENCE_NUMBER), after which the producer bumps its epoch or
// fails the records. A client connected to the brokers keeps the order
// itself: all of a partition's requests in flight go to the broker it thinks
// leads it, and when they fail with NOT_LEADER_OR_FOLLOWER it sends them all
// again, in order, to the new leader. The gateway must not undo that by
// routing on its own:
//
//   - A request is sent where the partition's earlier requests still in
//     flight went (pinned), even if the gateway has learnt of a new leader
//     meanwhile; otherwise a later batch reaches the new leader before an
//     earlier one the old leader refused and the gateway or the client sends
//     again.
//   - The gateway sends a partition's batch again itself (after
//     NOT_LEADER_OR_FOLLOWER, or a lost connection for idempotent batches) only
//     when it is the partition's only request in flight on the connection and
//     no earlier one was answered with the failure instead; otherwise the
//     client gets NOT_LEADER_OR_FOLLOWER and sends them all again in order, as
//     it would to a broker.
//
// Requests of one connection to one broker travel on one backend connection,
// in order, so requests sent in this order are written in this order.
//
// Lock order: send, then mu.
type partitionOrder struct {
	// send is held while a produce request is routed and sent, the first
	// time or again, so that no request is sent between another's check and
	// its send.
	send     sync.Mutex
	mu       sync.Mutex // guards inflight; never held while sending
	inflight map[tp]*partitionRoute
}

// partitionRoute is where a partition's produce requests in flight went.
type partitionRoute struct {
	id   int32
	addr string
	n    int // requests in flight
	// failed: a request was answered with its failure rather than sent
	// again; the later ones are not sent again either, until the client sends
	// a new request for the partition (its own retry, in order).
	failed bool
}

// pinned is the broker a partition's requests in flight went to; ok is
// false when it has none.
func (o *partitionOrder) pinned(t tp) (id int32, addr string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.inflight[t]
	if r == nil || r.n == 0 {
		return -1, "", false
	}
	return r.id, r.addr, true
}

// sent records the partitions of a request just sent (first round).
func (o *partitionOrder) sent(ps []part, id int32, addr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.inflight == nil {
		o.inflight = map[tp]*partitionRoute{}
	}
	for _, p := range ps {
		t := tp{p.topic, p.partition}
		r := o.inflight[t]
		if r == nil {
			r = &partitionRoute{}
			o.inflight[t] = r
		}
		if r.n == 0 {
			r.failed = false // the client's own retry starts a new sequence of requests
		}
		r.id, r.addr = id, addr
		r.n++
	}
}

// resent records that a request's partitions were sent again, to id.
func (o *partitionOrder) resent(ps []part, id int32, addr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		if r := o.inflight[tp{p.topic, p.partition}]; r != nil {
			r.id, r.addr = id, addr
		}
	}
}

// alone keeps the parts that may be sent again by the gateway: their
// partition's only request in flight, with no earlier request answered with
// its failure. The others are marked failed.
func (o *partitionOrder) alone(ps []part) []part {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []part
	for _, p := range ps {
		r := o.inflight[tp{p.topic, p.partition}]
		switch {
		case r == nil:
		case r.n == 1 && !r.failed:
			out = append(out, p)
		default:
			r.failed = true
		}
	}
	return out
}

// done records that a request (its first-round partitions) was answered. A
// partition whose requests were all answered is forgotten, unless one failed:
// then the next request for it clears that (sent).
func (o *partitionOrder) done(ps []part) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		t := tp{p.topic, p.partition}
		if r := o.inflight[t]; r != nil {
			if r.n--; r.n <= 0 && !r.failed {
				delete(o.inflight, t)
			}
		}
	}
}
