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
//     when it is the partition's only request in flight on the connection;
//     otherwise the client gets NOT_LEADER_OR_FOLLOWER and sends them all again
//     in order, as it would to a broker.
//
// Requests of one connection to one broker travel on one backend connection,
// in order, so requests sent in this order are written in this order.
type partitionOrder struct {
	mu       sync.Mutex // held while a produce request is routed and sent
	inflight map[tp]*partitionRoute
}

// partitionRoute is where a partition's produce requests in flight went.
type partitionRoute struct {
	id   int32
	addr string
	n    int // requests in flight
}

// pinned is the broker a partition's requests in flight went to; ok is
// false when it has none. Called with mu held.
func (o *partitionOrder) pinned(t tp) (id int32, addr string, ok bool) {
	r := o.inflight[t]
	if r == nil {
		return -1, "", false
	}
	return r.id, r.addr, true
}

// sent records the partitions of a request just sent (first round). Called
// with mu held.
func (o *partitionOrder) sent(ps []part, id int32, addr string) {
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
		r.id, r.addr = id, addr
		r.n++
	}
}

// resent records that a request's partitions were sent again, to id. Called
// with mu held.
func (o *partitionOrder) resent(ps []part, id int32, addr string) {
	for _, p := range ps {
		if r := o.inflight[tp{p.topic, p.partition}]; r != nil {
			r.id, r.addr = id, addr
		}
	}
}

// alone keeps the parts that are their partition's only request in flight:
// those may be sent again by the gateway. Called with mu held.
func (o *partitionOrder) alone(ps []part) []part {
	var out []part
	for _, p := range ps {
		if r := o.inflight[tp{p.topic, p.partition}]; r != nil && r.n == 1 {
			out = append(out, p)
		}
	}
	return out
}

// done records that a request (its first-round partitions) was answered.
func (o *partitionOrder) done(ps []part) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		t := tp{p.topic, p.partition}
		if r := o.inflight[t]; r != nil {
			if r.n--; r.n <= 0 {
				delete(o.inflight, t)
			}
		}
	}
}
