package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// DeleteRecords: v0-2
//
// Behavior:
//   - Served by partition leaders; followers follow the new log start offset from
//     their fetches.
//   - Advances the log start offset to the given offset (-1: the high watermark);
//     whole segments below it are removed, and the new start offset survives
//     restarts. An offset beyond the high watermark gets OFFSET_OUT_OF_RANGE.
//   - Authorization: DELETE on each topic, else TOPIC_AUTHORIZATION_FAILED for its
//     partitions.

func init() { register(21, 0, 2, (*Broker).handleDeleteRecords) }

func (b *Broker) handleDeleteRecords(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		authorized := cc.authorized(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			var p *partition
			err := error(kerr.TopicAuthorizationFailed)
			if authorized {
				p, err = b.leaderReplica(partitionRef{topic: rt.Topic, index: rp.Partition}, -1)
			}
			switch {
			case err != nil:
			case p.topic.internal:
				err = kafkaErr(kerr.InvalidTopicException, "records of internal topics cannot be deleted")
			default:
				off := rp.Offset
				if off == -1 {
					off = p.hw.Load()
				}
				if off > p.hw.Load() {
					err = kafkaErr(kerr.OffsetOutOfRange, "offset is beyond the high watermark")
					break
				}
				sp.LowWatermark, err = p.log.DeleteRecordsBefore(off)
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
