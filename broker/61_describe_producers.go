package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// DescribeProducers: v0
//
// Behavior:
//   - Served by partition leaders (else NOT_LEADER_OR_FOLLOWER), as Kafka's
//     kafka-transactions.sh describe-producers expects.
//   - Per partition, the producers the log tracks (idempotent and transactional):
//     id, epoch, last sequence, last timestamp, the coordinator epoch of the last
//     transaction marker (-1 before any) and the first offset of the open
//     transaction (-1 when none), which finds a hanging transaction.
//   - Authorization: READ on each topic, else TOPIC_AUTHORIZATION_FAILED for its
//     partitions.

func init() { register(61, 0, 0, (*Broker).handleDescribeProducers) }

func (b *Broker) handleDescribeProducers(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		authorized := cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic)
		for _, idx := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = idx
			err := error(kerr.TopicAuthorizationFailed)
			if authorized {
				err = b.describeProducers(rt.Topic, idx, &sp)
			}
			if errors.Is(err, storage.ErrClosed) {
				err = kerr.UnknownTopicOrPartition
			}
			if err != nil {
				sp.ErrorCode, sp.ErrorMessage = errCode(err), errMessage(err)
				sp.ActiveProducers = nil
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) describeProducers(topicName string, index int32, sp *kmsg.DescribeProducersResponseTopicPartition) error {
	p, err := b.leaderReplica(partitionRef{topic: topicName, index: index}, -1)
	if err != nil {
		return err
	}
	for _, pi := range p.log.Producers() {
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch = pi.ProducerID, int32(pi.ProducerEpoch)
		ap.LastSequence, ap.LastTimestamp = pi.LastSequence, pi.LastTimestamp
		ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = pi.CoordinatorEpoch, pi.CurrentTxnStartOffset
		sp.ActiveProducers = append(sp.ActiveProducers, ap)
	}
	return nil
}
