package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// Produce: v3-13
//
// Behavior:
//   - Record batches (magic 2) are stored as sent: CRC-checked, base offset and
//     leader epoch assigned in place, never re-encoded. A bad batch fails its
//     partition with CORRUPT_MESSAGE and appends nothing of that partition.
//   - acks 0, 1 and -1; with one broker every ISR is this broker, so -1 completes
//     when the append completes. With flush=always an append completes after fsync.
//   - acks=0 sends no response.
//   - Idempotent batches (producer id >= 0) are sequence-checked by the log; a
//     retried batch among the last five is answered with its original offset.
//   - v13 names topics by ID.
//   - Writes to internal topics are refused with INVALID_TOPIC_EXCEPTION.
//   - Transactional produce is not supported (no transaction coordinator yet):
//     a transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED.

func init() { register(0, 3, 13, (*Broker).handleProduce) }

func (b *Broker) handleProduce(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	var allErr error
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		allErr = kerr.InvalidRequiredAcks
	case req.TransactionID != nil:
		allErr = kafkaErr(kerr.TransactionalIDAuthorizationFailed, "transactions are not supported")
	}

	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			err := allErr
			if err == nil {
				err = b.produceTo(req.Version, rt, &rp, &sp)
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				if req.Version >= 8 {
					sp.ErrorMessage = errMessage(err)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return nil, nil
	}
	return resp, nil
}

func (b *Broker) produceTo(version int16, rt kmsg.ProduceRequestTopic, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) error {
	var p *partition
	if version >= 13 {
		p = b.partitionByID(rt.TopicID, rp.Partition)
		if p == nil && b.topicByID(rt.TopicID) == nil {
			return kerr.UnknownTopicID
		}
	} else {
		p = b.partitionOf(rt.Topic, rp.Partition)
	}
	if p == nil {
		return kerr.UnknownTopicOrPartition
	}
	if p.topic.internal {
		return kafkaErr(kerr.InvalidTopicException, "cannot produce to an internal topic")
	}
	if len(rp.Records) == 0 {
		return kafkaErr(kerr.InvalidRecord, "no record batch")
	}
	res, err := p.log.Append(rp.Records, p.leaderEpoch)
	if errors.Is(err, storage.ErrClosed) {
		return kerr.UnknownTopicOrPartition
	}
	if err != nil {
		return err
	}
	sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
	if !res.Duplicate {
		p.notifyAppend()
	}
	return nil
}
