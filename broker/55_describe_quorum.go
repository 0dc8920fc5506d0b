package broker

import (
	"errors"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/metadata"
)

// DescribeQuorum: v0-2
//
// Behavior:
//   - The metadata quorum (KIP-595, KIP-836, KIP-853) as the active controller sees it:
//     partition 0 of __cluster_metadata, the leader (active controller) id, the leader
//     epoch (the Raft term), the high watermark (the Raft commit index), the voters and
//     the observers (nodes that follow the log as Raft non-voters, and brokers that
//     heartbeat without being in the Raft configuration). Other brokers forward it.
//   - Log end offsets and fetch times of members other than the controller come from
//     their broker heartbeats: the metadata offset each reports having applied, when it
//     last reported, and when it last reported having applied everything committed then
//     (v1+ timestamps in ms, -1 when unknown). A controller-only member's are unknown.
//   - v2: the nodes' controller (Raft) endpoints as listener CONTROLLER; directory ids
//     are zero, Sluice has one log directory per node.
//   - Any other topic or partition: UNKNOWN_TOPIC_OR_PARTITION.
//   - Authorization: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(55, 0, 2, (*Broker).handleDescribeQuorum) }

func (b *Broker) handleDescribeQuorum(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeQuorumRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	st, err := b.quorum.DescribeQuorum()
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		return resp, nil
	}
	replica := func(m metadata.QuorumMember) kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
		r := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		r.ReplicaID, r.LogEndOffset = m.NodeID, m.LogEndOffset
		if !m.LastFetch.IsZero() {
			r.LastFetchTimestamp = m.LastFetch.UnixMilli()
		}
		if !m.LastCaughtUp.IsZero() {
			r.LastCaughtUpTimestamp = m.LastCaughtUp.UnixMilli()
		}
		return r
	}
	for _, rt := range req.Topics {
		st2 := kmsg.NewDescribeQuorumResponseTopic()
		st2.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDescribeQuorumResponseTopicPartition()
			sp.Partition = rp.Partition
			if rt.Topic != adminapi.MetadataTopic || rp.Partition != 0 {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st2.Partitions = append(st2.Partitions, sp)
				continue
			}
			sp.LeaderID, sp.LeaderEpoch, sp.HighWatermark = st.LeaderID, int32(st.LeaderEpoch), st.HighWatermark
			for _, m := range st.Voters {
				sp.CurrentVoters = append(sp.CurrentVoters, replica(m))
			}
			for _, m := range st.Observers {
				sp.Observers = append(sp.Observers, replica(m))
			}
			st2.Partitions = append(st2.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st2)
	}
	if req.Version >= 2 {
		for _, m := range append(st.Voters, st.Observers...) {
			host, port, err := net.SplitHostPort(m.Addr)
			p, perr := strconv.ParseUint(port, 10, 16)
			if err != nil || perr != nil {
				continue
			}
			n := kmsg.NewDescribeQuorumResponseNode()
			n.NodeID = m.NodeID
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(p)
			n.Listeners = append(n.Listeners, l)
			resp.Nodes = append(resp.Nodes, n)
		}
	}
	return resp, nil
}
