package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/txn"
)

// AddPartitionsToTxn: v0-5
//
// Behavior:
//   - v0-3 (producers): adds the partitions to the ongoing transaction of the
//     transactional id, starting one, once the change is replicated in
//     __transaction_state. Every partition gets the same answer; if one is
//     unauthorized (TOPIC_AUTHORIZATION_FAILED; internal topics always are) or unknown
//     (UNKNOWN_TOPIC_OR_PARTITION), nothing is added and the others get
//     OPERATION_NOT_ATTEMPTED. Before v2, PRODUCER_FENCED is INVALID_PRODUCER_EPOCH.
//   - v4+ (brokers, KIP-890): several transactions at once; verify_only asks whether
//     the partitions are already in the ongoing transaction (INVALID_TXN_STATE when
//     not) without adding them. Served only on the inter-broker and controller
//     listeners to a principal with CLUSTER_ACTION, else CLUSTER_AUTHORIZATION_FAILED.
//   - Authorization: v0-3 WRITE on the transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each topic; v4+ CLUSTER_ACTION.

func init() { register(24, 0, 5, (*Broker).handleAddPartitionsToTxn) }

func (b *Broker) handleAddPartitionsToTxn(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		topics := make([]kmsg.AddPartitionsToTxnRequestTransactionTopic, len(req.Topics))
		for i, rt := range req.Topics {
			topics[i] = kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: rt.Topic, Partitions: rt.Partitions}
		}
		res := b.addPartitionsToTxn(cc, req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, topics)
		for _, rt := range res.Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, rp.ErrorCode
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil
	}
	if (cc.listener != nil && !cc.listener.brokerOnly()) || !cc.authorizedCluster(kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	for _, rtx := range req.Transactions {
		resp.Transactions = append(resp.Transactions,
			b.addPartitionsToTxn(cc, req.Version, rtx.TransactionalID, rtx.ProducerID, rtx.ProducerEpoch, rtx.VerifyOnly, rtx.Topics))
	}
	return resp, nil
}

// addPartitionsToTxn serves one transaction of an AddPartitionsToTxn request.
func (b *Broker) addPartitionsToTxn(cc *conn, version int16, id string, producerID int64, epoch int16, verifyOnly bool,
	topics []kmsg.AddPartitionsToTxnRequestTransactionTopic) kmsg.AddPartitionsToTxnResponseTransaction {
	res := kmsg.NewAddPartitionsToTxnResponseTransaction()
	res.TransactionalID = id
	codes := map[txn.TopicPartition]int16{}
	var order []txn.TopicPartition
	for _, rt := range topics {
		for _, p := range rt.Partitions {
			tp := txn.TopicPartition{Topic: rt.Topic, Partition: p}
			if _, dup := codes[tp]; !dup {
				order = append(order, tp)
			}
			codes[tp] = 0
		}
	}
	all := func(code int16) {
		for tp := range codes {
			codes[tp] = code
		}
	}
	switch {
	case version < 4 && !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, id):
		all(kerr.TransactionalIDAuthorizationFailed.Code)
	case id == "":
		all(kerr.InvalidRequest.Code)
	default:
		img := b.quorum.Image()
		failed := false
		for _, tp := range order {
			if _, ok := img.Partition(tp.Topic, tp.Partition); version < 4 &&
				(internalTopic(tp.Topic) || !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, tp.Topic)) {
				codes[tp], failed = kerr.TopicAuthorizationFailed.Code, true
			} else if !ok {
				codes[tp], failed = kerr.UnknownTopicOrPartition.Code, true
			}
		}
		switch {
		case len(order) == 0:
			// Nothing to add: no transaction starts.
		case failed:
			for tp, c := range codes {
				if c == 0 {
					codes[tp] = kerr.OperationNotAttempted.Code
				}
			}
		case verifyOnly:
			codes = b.txns.VerifyPartitions(id, producerID, epoch, order)
		default:
			all(fencedCode(b.txns.AddPartitions(cc.ctx, id, producerID, epoch, order), version < 2))
		}
	}
	idx := map[string]int{}
	for _, tp := range order {
		i, ok := idx[tp.Topic]
		if !ok {
			i = len(res.Topics)
			idx[tp.Topic] = i
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = tp.Topic
			res.Topics = append(res.Topics, rt)
		}
		rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
		rp.Partition, rp.ErrorCode = tp.Partition, codes[tp]
		res.Topics[i].Partitions = append(res.Topics[i].Partitions, rp)
	}
	return res
}
