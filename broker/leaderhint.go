package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// KIP-951 leader hints: a Produce (v10+) or Fetch (v16+) answer that tells a
// client this broker does not lead a partition (NOT_LEADER_OR_FOLLOWER or
// FENCED_LEADER_EPOCH) also names the partition's leader and leader epoch from
// this broker's metadata image (CurrentLeader) and that leader's address on the
// listener the client connected to (NodeEndpoints), so the client moves to the
// new leader without a Metadata round trip. A leader that is unknown, fenced or
// has no address on the listener gives no hint (the client then asks Metadata).

// leaderHints collects the hints of one answer.
type leaderHints struct {
	img      *metadata.Image
	listener string
	nodes    map[int32]metadata.Broker // the leaders named, by id
	order    []int32                   // in the order first named
}

func (b *Broker) newLeaderHints(cc *conn) *leaderHints {
	return &leaderHints{img: b.quorum.Image(), listener: cc.listener.name, nodes: map[int32]metadata.Broker{}}
}

// wantsLeaderHint reports whether an error code is one KIP-951 answers with a hint.
func wantsLeaderHint(code int16) bool {
	return code == kerr.NotLeaderForPartition.Code || code == kerr.FencedLeaderEpoch.Code
}

// hint returns the leader and leader epoch of a partition, named by topic name
// or (byID) topic ID, and records the leader's endpoint; ok is false when no
// usable hint exists.
func (h *leaderHints) hint(topic string, id [16]byte, byID bool, index int32) (leader, epoch int32, ok bool) {
	var t *metadata.Topic
	if byID {
		t = h.img.TopicByID(id)
	} else {
		t = h.img.Topic(topic)
	}
	if t == nil || index < 0 || int(index) >= len(t.Partitions) {
		return -1, -1, false
	}
	p := t.Partitions[index]
	if p.Leader < 0 || p.LeaderEpoch < 0 {
		return -1, -1, false
	}
	if _, seen := h.nodes[p.Leader]; !seen {
		br, known := h.img.Brokers[p.Leader]
		if !known || br.Fenced {
			return -1, -1, false
		}
		if _, _, has := br.Endpoint(h.listener); !has {
			return -1, -1, false
		}
		h.nodes[p.Leader] = br
		h.order = append(h.order, p.Leader)
	}
	return p.Leader, p.LeaderEpoch, true
}

// endpoint is the address of a named leader on the client's listener.
func (h *leaderHints) endpoint(id int32) (host string, port int32, rack *string) {
	br := h.nodes[id]
	host, port, _ = br.Endpoint(h.listener)
	if br.Rack != "" {
		r := br.Rack
		rack = &r
	}
	return host, port, rack
}

// produceLeaderHints fills the hints of a Produce v10+ answer.
func (b *Broker) produceLeaderHints(cc *conn, resp *kmsg.ProduceResponse) {
	var h *leaderHints
	for i := range resp.Topics {
		st := &resp.Topics[i]
		for j := range st.Partitions {
			sp := &st.Partitions[j]
			if !wantsLeaderHint(sp.ErrorCode) {
				continue
			}
			if h == nil {
				h = b.newLeaderHints(cc)
			}
			if leader, epoch, ok := h.hint(st.Topic, st.TopicID, resp.Version >= 13, sp.Partition); ok {
				sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = leader, epoch
			}
		}
	}
	if h == nil {
		return
	}
	for _, id := range h.order {
		nb := kmsg.NewProduceResponseBroker()
		nb.NodeID = id
		nb.Host, nb.Port, nb.Rack = h.endpoint(id)
		resp.Brokers = append(resp.Brokers, nb)
	}
}

// fetchLeaderHints fills the hints of a Fetch v16+ answer.
func (b *Broker) fetchLeaderHints(cc *conn, resp *kmsg.FetchResponse) {
	var h *leaderHints
	for i := range resp.Topics {
		st := &resp.Topics[i]
		for j := range st.Partitions {
			sp := &st.Partitions[j]
			if !wantsLeaderHint(sp.ErrorCode) {
				continue
			}
			if h == nil {
				h = b.newLeaderHints(cc)
			}
			if leader, epoch, ok := h.hint(st.Topic, st.TopicID, resp.Version >= 13, sp.Partition); ok {
				sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = leader, epoch
			}
		}
	}
	if h == nil {
		return
	}
	for _, id := range h.order {
		nb := kmsg.NewFetchResponseBroker()
		nb.NodeID = id
		nb.Host, nb.Port, nb.Rack = h.endpoint(id)
		resp.Brokers = append(resp.Brokers, nb)
	}
}
