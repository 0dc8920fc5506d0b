package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/internal/testutil"
)

func TestTransactionsListDescribe(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.OffsetsTopicNumPartitions = 2
	cfg.TransactionStateLogNumPartitions = 2
	b := brokertest.Run(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "orders")
	require.NoError(t, err)

	// A producer opens a transaction on orders-0; another id stays Empty.
	init := func(id string) *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(id), 60000
		var resp *kmsg.InitProducerIDResponse
		testutil.WaitForErr(t, 60*time.Second, "InitProducerId of "+id, func() (bool, error) {
			kr, err := req.RequestWith(ctx, cl)
			if err != nil {
				return false, err
			}
			resp = kr
			return resp.ErrorCode == 0, kerr.ErrorForCode(resp.ErrorCode)
		})
		return resp
	}
	p := init("payments")
	init("idle")
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "payments", p.ProducerID, p.ProducerEpoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = "orders", []int32{0}
	add.Topics = append(add.Topics, rt)
	addResp, err := add.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Zero(t, addResp.Topics[0].Partitions[0].ErrorCode)

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := transactionsCommand(ctx, append(args[:1:1], append([]string{"--bootstrap", b.Addr()}, args[1:]...)...), &out)
		return out.String(), err
	}
	out, err := run("list")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`(?m)^TRANSACTIONAL_ID\s+COORDINATOR\s+PRODUCER_ID\s+STATE\n`+
		`idle\s+1\s+\d+\s+Empty\npayments\s+1\s+\d+\s+Ongoing\n$`), out)
	out, err = run("list", "--state", "Ongoing")
	require.NoError(t, err)
	require.Contains(t, out, "payments")
	require.NotContains(t, out, "idle")

	out, err = run("describe", "--transactional-id", "payments")
	require.NoError(t, err)
	require.Regexp(t, `payments\s+1\s+Ongoing\s+\d+\s+0\s+60000\s+\S+Z\s+\S+\s+orders-0\n$`, out)

	// Bad input names the problem; nothing is sent.
	_, err = run("describe")
	require.ErrorContains(t, err, "--transactional-id")
	_, err = run("describe", "--transactional-id", "nobody")
	require.ErrorContains(t, err, "TRANSACTIONAL_ID_NOT_FOUND")
	_, err = run("abort", "--topic", "orders")
	require.ErrorContains(t, err, "--partition")
	_, err = run("abort", "--topic", "orders", "--partition", "0", "--start-offset", "3", "--producer-id", "7")
	require.ErrorContains(t, err, "either --start-offset")
	_, err = run("abort", "--topic", "orders", "--partition", "0", "--producer-id", "7")
	require.ErrorContains(t, err, "go together")
	_, err = run("list", "--producer-id", "x")
	require.ErrorContains(t, err, "not a producer id")
	_, err = run("frobnicate")
	require.Error(t, err)
}

// TestTransactionsAbortHanging: a transaction open on a partition is aborted
// the way kafka-transactions.sh abort does it (DescribeProducers finds the
// producer by the transaction's first offset, WriteTxnMarkers ends it), and the
// last stable offset moves past it.
func TestTransactionsAbortHanging(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.OffsetsTopicNumPartitions = 2
	cfg.TransactionStateLogNumPartitions = 2
	b := brokertest.Run(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "orders")
	require.NoError(t, err)

	hang, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("hang"), kgo.TransactionTimeout(time.Minute))
	require.NoError(t, err)
	defer hang.Close()
	require.NoError(t, hang.BeginTransaction())
	require.NoError(t, hang.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("stuck")}).FirstErr())
	lso := func() int64 {
		offs, err := adm.ListCommittedOffsets(ctx, "orders")
		require.NoError(t, err)
		o, _ := offs.Lookup("orders", 0)
		return o.Offset
	}
	require.Equal(t, int64(0), lso(), "the open transaction holds the last stable offset")

	var out bytes.Buffer
	err = transactionsCommand(ctx, []string{"abort", "--bootstrap", b.ListenerAddr("BROKER"),
		"--topic", "orders", "--partition", "0", "--start-offset", "0"}, &out)
	require.NoError(t, err)
	require.Regexp(t, `^aborted the transaction of producer \d+ \(epoch 0\) on orders-0\n$`, out.String())
	testutil.WaitFor(t, 30*time.Second, "the last stable offset past the abort marker", func() bool { return lso() == 2 })

	err = transactionsCommand(ctx, []string{"abort", "--bootstrap", b.ListenerAddr("BROKER"),
		"--topic", "orders", "--partition", "0", "--start-offset", "0"}, &out)
	require.ErrorContains(t, err, "no open transaction starts at offset 0")
}
