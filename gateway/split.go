package gateway

import (
	"context"
	"encoding/binary"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A partition request (Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
// DeleteRecords, DescribeProducers) names partitions of topics; each broker must
// be asked only about the partitions it leads. The splitter cuts the client's
// request into one request per leader, sends them in parallel, and merges the
// per-partition answers back in the client's order. Partitions whose leader
// moved (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, a broker that went away)
// are sent again to the new leader after a metadata refresh when that is safe,
// so the client sees at most what one broker would say.

// part is one partition of a client's request.
type part struct {
	topic     string   // the topic's name, resolved from its id for requests that use ids
	id        [16]byte // the topic's id when the request uses ids
	partition int32
	ti, pi    int // indexes of the topic and partition in the client's request
	// ahead marks a read-ahead: the partition was answered from what an
	// earlier request brought, and is asked for again from offset so that the
	// client's next request finds it waiting.
	ahead  bool
	offset int64
}

// tp names a partition in results.
type tp struct {
	topic     string
	partition int32
}

// splitAPI adapts one partition request type to the splitter.
type splitAPI struct {
	// key is the API key, for metrics.
	key int16
	// parts lists the partitions of the client's request; a topic id the gateway
	// cannot resolve is listed with an empty topic name.
	parts []part
	// sub builds a request for the given partitions, at the client's version.
	sub func(ps []part, nGroups int) kmsg.Request
	// results calls put for every partition result of a broker's response.
	results func(resp kmsg.Response, put func(tp, any, int16) bool)
	// onResp, when set, sees every broker response (throttles).
	onResp func(kmsg.Response)
	// errResult is the result of a partition that failed with code.
	errResult func(p part, code int16) any
	// build assembles the client's response from a result per part.
	build func(res []any) kmsg.Response
	// retry says whether a partition that failed with code may be sent again;
	// lost is true when the request was sent but its answer lost with the
	// connection, so it may or may not have been carried out.
	retry func(code int16, lost bool) bool
	// enough, when set, is asked after each broker's answer whether the client
	// can be answered without waiting for the others (a long-polling fetch that
	// has its minimum bytes); pending is then the result of a part whose broker
	// has not answered.
	enough  func() bool
	pending func(p part) any
	// keep, when set, takes the results that are not for this answer: those
	// that came after the client was answered, and read-aheads.
	keep func(p part, r any, code int16)
	// preset, when set, may answer a part without asking a broker; ahead then
	// says from which offset to read ahead for the client's next request.
	preset func(p part) (any, bool)
	ahead  func(p part, r any) (int64, bool)
	// raw, when set, may answer the client with a broker's answer as the
	// broker encoded it, when the request went whole to one broker at the
	// first try and needs no rewriting; nil if it does.
	raw func(resp kmsg.Response, encoded []byte) kmsg.Response
	// noResponse: acks=0, nothing is awaited or answered.
	noResponse bool
	// order, when set, keeps each partition's requests in the client's order
	// through leader changes (produce: order.go).
	order *partitionOrder
	// timeout bounds the whole request, retries included.
	timeout time.Duration
}

// codeNotLeader is what a partition whose leader is unreachable reports: the
// client retries (to the gateway again) as it would after a leader change.
var codeNotLeader = kerr.NotLeaderForPartition.Code

// groupByLeader assigns parts to leaders; parts without one get a code. With
// order, a part whose partition has requests in flight goes where they went.
func (cc *clientConn) groupByLeader(ps []part, order *partitionOrder) (groups map[int32][]part, addrs map[int32]string, failed map[int]int16) {
	groups, addrs, failed = map[int32][]part{}, map[int32]string{}, map[int]int16{}
	refreshed := false
	for i, p := range ps {
		if p.topic == "" {
			failed[i] = kerr.UnknownTopicID.Code
			continue
		}
		if order != nil {
			if id, addr, ok := order.pinned(tp{p.topic, p.partition}); ok {
				groups[id] = append(groups[id], ps[i])
				addrs[id] = addr
				continue
			}
		}
		id, addr, known, ok := cc.g.cluster.leader(p.topic, p.partition)
		if !known && !refreshed {
			refreshed = true
			ctx, cancel := context.WithTimeout(cc.ctx, 5*time.Second)
			_ = cc.g.cluster.refresh(ctx, 500*time.Millisecond)
			cancel()
			id, addr, known, ok = cc.g.cluster.leader(p.topic, p.partition)
		}
		switch {
		case !known:
			failed[i] = kerr.UnknownTopicOrPartition.Code
		case !ok:
			failed[i] = codeNotLeader
		default:
			groups[id] = append(groups[id], ps[i])
			addrs[id] = addr
		}
	}
	return groups, addrs, failed
}

// arrival is a sub-request's outcome.
type arrival struct {
	s    sent
	resp kmsg.Response
	err  error
	raw  []byte // resp's encoding
}

// byTP indexes the parts of a sub-request.
func (s sent) byTP() map[tp]part {
	m := make(map[tp]part, len(s.parts))
	for _, p := range s.parts {
		m[tp{p.topic, p.partition}] = p
	}
	return m
}

// sent is a sub-request on its way.
type sent struct {
	id    int32
	addr  string
	parts []part
	f     *future
	err   error // the send failed: the request did not reach the broker
	start time.Time
}

// sendGroups sends one sub-request per leader.
func (cc *clientConn) sendGroups(api *splitAPI, groups map[int32][]part, addrs map[int32]string) []sent {
	out := make([]sent, 0, len(groups))
	for id, ps := range groups {
		s := sent{id: id, addr: addrs[id], parts: ps, start: time.Now()}
		s.f, s.err = cc.sendTo(id, addrs[id], api.sub(ps, len(groups)))
		out = append(out, s)
	}
	return out
}

// split starts a partition request: the first round of sub-requests is sent
// now, in request order; finish waits, retries and merges.
func (cc *clientConn) split(api *splitAPI) (func(context.Context) (kmsg.Response, error), error) {
	key := tpIndex(api.parts)
	var presets map[int]any
	toSend := api.parts
	if api.preset != nil {
		presets = map[int]any{}
		toSend = nil
		for i, p := range api.parts {
			if r, ok := api.preset(p); ok {
				presets[i] = r
				if api.ahead != nil {
					if off, ok := api.ahead(p, r); ok {
						q := p
						q.ahead, q.offset = true, off
						toSend = append(toSend, q)
					}
				}
			} else {
				toSend = append(toSend, p)
			}
		}
	}
	if api.order != nil {
		api.order.send.Lock() // routed and sent in request order, no retry in between
	}
	groups, addrs, failedSent := cc.groupByLeader(toSend, api.order)
	failed := map[int]int16{}
	for i, c := range failedSent {
		if !toSend[i].ahead {
			failed[key[tp{toSend[i].topic, toSend[i].partition}]] = c
		}
	}
	first := cc.sendGroups(api, groups, addrs)
	var tracked []part // the parts api.order counts in flight until finish
	if api.order != nil {
		for _, s := range first {
			api.order.sent(s.parts, s.id, s.addr)
			tracked = append(tracked, s.parts...)
		}
		api.order.send.Unlock()
	}
	if api.noResponse {
		return func(context.Context) (kmsg.Response, error) { return nil, nil }, nil
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		if api.order != nil {
			defer api.order.done(tracked)
		}
		ctx, cancel := context.WithTimeout(ctx, api.timeout)
		defer cancel()
		res := make([]any, len(api.parts))
		codes := make([]int16, len(api.parts))
		if api.pending != nil {
			for i, p := range api.parts {
				res[i] = api.pending(p)
			}
		}
		for i, c := range failed {
			codes[i] = c
			res[i] = api.errResult(api.parts[i], c)
		}
		for i, r := range presets {
			res[i] = r
		}
		round := first
		// whole: the request went to one broker as it is, nothing answered
		// from elsewhere; its answer, when nothing needs sending again
		whole := len(first) == 1 && len(first[0].parts) == len(api.parts) && len(presets) == 0 && len(failed) == 0
		var wholeResp kmsg.Response
		var wholeRaw []byte
		for attempt := 0; ; attempt++ {
			var again []part
			arrived := make(chan arrival, len(round))
			for _, s := range round {
				wait := func() {
					// not ctx: an answer that comes after the client's may be
					// kept for its next request (leftover)
					wctx, wcancel := context.WithTimeout(cc.ctx, api.timeout)
					defer wcancel()
					a := arrival{s: s, err: s.err}
					if a.err == nil && s.f != nil {
						a.resp, a.err = cc.await(wctx, s.f, s.start)
						if a.err == nil {
							a.raw = s.f.raw // set before done was closed
						}
					}
					arrived <- a
				}
				if len(round) == 1 {
					wait() // the common case, one leader: no goroutine to hand the answer over
				} else {
					go wait()
				}
			}
			n := len(round)
			for ; n > 0; n-- {
				a := <-arrived
				if a.err != nil {
					if cc.ctx.Err() != nil {
						return nil, cc.ctx.Err()
					}
					for _, p := range a.s.parts {
						if p.ahead {
							continue
						}
						i := key[tp{p.topic, p.partition}]
						codes[i], res[i] = codeNotLeader, api.errResult(p, codeNotLeader)
						if api.retry(codeNotLeader, a.s.err == nil) {
							again = append(again, p)
						}
					}
					continue
				}
				if api.onResp != nil {
					api.onResp(a.resp)
				}
				if attempt == 0 && whole {
					wholeResp, wholeRaw = a.resp, a.raw
				}
				inSent := a.s.byTP()
				api.results(a.resp, func(t tp, r any, code int16) bool {
					i, ok := key[t]
					if !ok {
						return false
					}
					if p := inSent[t]; p.ahead {
						if api.keep != nil {
							api.keep(p, r, code)
						}
						return false
					}
					codes[i], res[i] = code, r
					if code != 0 && api.retry(code, false) {
						again = append(again, api.parts[i])
					}
					return true
				})
				if api.enough != nil && api.enough() {
					n--
					break // the brokers still waiting hold back nothing the client asked for
				}
			}
			if n > 0 && api.keep != nil {
				go func() {
					for ; n > 0; n-- {
						a := <-arrived
						if a.err != nil {
							continue
						}
						inSent := a.s.byTP()
						api.results(a.resp, func(t tp, r any, code int16) bool {
							if p, ok := inSent[t]; ok {
								api.keep(p, r, code)
							}
							return false
						})
					}
				}()
			}
			if len(again) == 0 || attempt >= 8 || ctx.Err() != nil {
				break
			}
			cc.g.metrics.retries.WithLabelValues(kmsg.NameForKey(api.key)).Inc()
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
			}
			if ctx.Err() != nil {
				break
			}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			_ = cc.g.cluster.refresh(rctx, 100*time.Millisecond)
			rcancel()
			if api.order != nil {
				// Only a partition's sole request in flight is sent again
				// by the gateway; the others keep the answer they have
				// (NOT_LEADER_OR_FOLLOWER) and the client sends them
				// again in order.
				api.order.send.Lock()
				if again = api.order.alone(again); len(again) == 0 {
					api.order.send.Unlock()
					break
				}
			}
			groups, addrs, failed := cc.groupByLeader(again, nil)
			for i, c := range failed {
				j := key[tp{again[i].topic, again[i].partition}]
				codes[j], res[j] = c, api.errResult(again[i], c)
			}
			round = cc.sendGroups(api, groups, addrs)
			if api.order != nil {
				for _, s := range round {
					api.order.resent(s.parts, s.id, s.addr)
				}
				api.order.send.Unlock()
			}
		}
		if wholeResp != nil && api.raw != nil && !slices.ContainsFunc(codes, func(c int16) bool { return c != 0 }) {
			if r := api.raw(wholeResp, wholeRaw); r != nil {
				return r, nil
			}
		}
		for i := range codes {
			if codes[i] == codeNotLeader || codes[i] == kerr.LeaderNotAvailable.Code || codes[i] == kerr.UnknownTopicOrPartition.Code {
				// the leader moved: learn where it went for the client's retry
				go cc.g.cluster.refresh(context.Background(), 200*time.Millisecond) //nolint:errcheck // best effort
				break
			}
		}
		return api.build(res), nil
	}, nil
}

func tpIndex(ps []part) map[tp]int {
	m := make(map[tp]int, len(ps))
	for i, p := range ps {
		m[tp{p.topic, p.partition}] = i
	}
	return m
}

// leaderMoved are the codes after which a read (and a write that did not
// happen) may be sent again to the partition's new leader.
func leaderMoved(code int16) bool {
	return code == kerr.NotLeaderForPartition.Code || code == kerr.LeaderNotAvailable.Code
}

// idempotentBatches reports whether every record batch of a Produce request
// carries a producer id, so the leader drops a batch it already has: then a
// batch whose fate is unknown (the connection failed) may be sent again.
func idempotentBatches(req *kmsg.ProduceRequest) bool {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			b := p.Records
			// baseOffset 8, length 4, leaderEpoch 4, magic 1, crc 4, attributes 2,
			// lastOffsetDelta 4, baseTimestamp 8, maxTimestamp 8, producerId 8
			if len(b) < 51 || b[16] != 2 || int64(binary.BigEndian.Uint64(b[43:51])) < 0 {
				return false
			}
		}
	}
	return true
}
