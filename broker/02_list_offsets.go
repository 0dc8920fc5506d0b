package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// ListOffsets: v1-10
//
// Behavior:
//   - Served by partition leaders (else NOT_LEADER_OR_FOLLOWER).
//   - Timestamp -2: log start offset; -1: high watermark (end); -3 (v7+): offset and
//     timestamp of the record with the largest timestamp; -4 (earliest local) is the
//     log start offset, as every segment is local.
//   - Other timestamps: the first offset whose timestamp is at or after it, found
//     through the time index; none gives offset -1 and timestamp -1, like Kafka.
//   - v4+: CurrentLeaderEpoch is checked and LeaderEpoch returned.
//   - Authorization: DESCRIBE on each topic, else TOPIC_AUTHORIZATION_FAILED for
//     its partitions.
//   - READ_COMMITTED (IsolationLevel 1, v2+): the latest offset (-1) is the last stable
//     offset, and a timestamp lookup finds only offsets below it.

func init() { register(2, 1, 10, (*Broker).handleListOffsets) }

func (b *Broker) handleListOffsets(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		authorized := cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			err := error(kerr.TopicAuthorizationFailed)
			if authorized {
				err = b.listOffset(req.Version, req.IsolationLevel == 1, rt.Topic, &rp, &sp)
			}
			if errors.Is(err, storage.ErrClosed) {
				err = kerr.UnknownTopicOrPartition
			}
			sp.ErrorCode = errCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) listOffset(version int16, readCommitted bool, topicName string, rp *kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) error {
	cur := int32(-1)
	if version >= 4 {
		cur = rp.CurrentLeaderEpoch
	}
	p, err := b.leaderReplica(partitionRef{topic: topicName, index: rp.Partition}, cur)
	if err != nil {
		return err
	}
	_, epoch, _ := p.state()
	end := p.hw.Load()
	if readCommitted {
		end = p.lastStable(end)
	}
	switch rp.Timestamp {
	case -2, -4:
		sp.Offset = p.log.LogStartOffset()
		sp.LeaderEpoch = epoch
	case -1:
		sp.Offset = end
		sp.LeaderEpoch = epoch
	case -3:
		sp.Offset, sp.Timestamp = p.log.MaxTimestamp()
		sp.LeaderEpoch = epoch
	default:
		if rp.Timestamp < 0 {
			return kafkaErr(kerr.InvalidRequest, "unsupported special timestamp")
		}
		if off, ts, ok := p.log.OffsetForTimestamp(rp.Timestamp); ok && off < end {
			sp.Offset, sp.Timestamp = off, ts
			sp.LeaderEpoch = epoch
		}
	}
	return nil
}
