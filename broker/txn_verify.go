package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/storage"
)

// KIP-890 part 1: a partition leader verifies, before the first transactional batch
// of a transaction, that the transaction coordinator added the partition to the
// transaction. Without it a producer's late batch (sent before an abort, arriving
// after the marker) would open a transaction the coordinator never ends: a hanging
// transaction that holds the last stable offset back forever.

// txnVerifyTimeout bounds the round trip to the transaction coordinator.
const txnVerifyTimeout = 5 * time.Second

// appendTransactional appends a producer's transactional batches to p, verifying
// with the coordinator first when the producer has no transaction open on p.
func (b *Broker) appendTransactional(ctx context.Context, p *partition, txnID string, records []byte, leaderEpoch int32) (storage.AppendResult, error) {
	h, err := record.ParseHeader(records)
	if err != nil {
		return storage.AppendResult{}, err
	}
	open, guard := p.log.TxnGuard(h.ProducerID, h.ProducerEpoch)
	if !open && *b.cfg.TransactionPartitionVerificationEnable {
		if err := b.verifyTxnPartition(ctx, txnID, h.ProducerID, h.ProducerEpoch, p.topic.name, p.index); err != nil {
			return storage.AppendResult{}, err
		}
	}
	return p.log.AppendTransactional(records, leaderEpoch, guard)
}

// txnCoordinator returns the broker leading the __transaction_state partition of
// txnID (Kafka's Utils.abs(transactionalId.hashCode) % partitions).
func (b *Broker) txnCoordinator(txnID string) (int32, error) {
	img := b.quorum.Image()
	t := img.Topic(txnTopic)
	if t == nil || len(t.Partitions) == 0 {
		return -1, kafkaErr(kerr.CoordinatorNotAvailable, "no "+txnTopic+" topic")
	}
	p, ok := img.Partition(txnTopic, group.PartitionFor(txnID, int32(len(t.Partitions))))
	if !ok || p.Leader < 0 {
		return -1, kafkaErr(kerr.CoordinatorNotAvailable, "transaction coordinator has no leader")
	}
	return p.Leader, nil
}

// verifyTxnPartition sends AddPartitionsToTxn v4 with VerifyOnly to txnID's
// coordinator. A partition the coordinator did not add gets INVALID_TXN_STATE (or
// the coordinator's fencing error); a coordinator that cannot answer gets
// NOT_ENOUGH_REPLICAS, the retriable error Kafka returns for it on Produce.
func (b *Broker) verifyTxnPartition(ctx context.Context, txnID string, pid int64, epoch int16, topic string, partition int32) error {
	unavailable := func(why string) error {
		return kafkaErr(kerr.NotEnoughReplicas, "transaction verification: "+why)
	}
	coord, err := b.txnCoordinator(txnID)
	if err != nil {
		return unavailable(err.Error())
	}
	peer, err := b.peerIn(&b.ctl.txnPeers, coord)
	if err != nil {
		return unavailable(err.Error())
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = txnID, pid, epoch, true
	tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	tt.Topic, tt.Partitions = topic, []int32{partition}
	tx.Topics = append(tx.Topics, tt)
	req.Transactions = append(req.Transactions, tx)
	ctx, cancel := context.WithTimeout(ctx, txnVerifyTimeout)
	defer cancel()
	kresp, err := peer.request(ctx, req)
	if err != nil {
		return unavailable(err.Error())
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	code := resp.ErrorCode
	if code == 0 {
		code = kerr.InvalidTxnState.Code // unless the partition is listed below
		for _, t := range resp.Transactions {
			for _, rt := range t.Topics {
				for _, rp := range rt.Partitions {
					if t.TransactionalID == txnID && rt.Topic == topic && rp.Partition == partition {
						code = rp.ErrorCode
					}
				}
			}
		}
	}
	err = kerr.ErrorForCode(code)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.NotCoordinator),
		errors.Is(err, kerr.CoordinatorLoadInProgress), errors.Is(err, kerr.ConcurrentTransactions):
		return unavailable(err.Error())
	}
	return kafkaErr(err.(*kerr.Error), fmt.Sprintf("transaction %q has not added %s-%d", txnID, topic, partition))
}
