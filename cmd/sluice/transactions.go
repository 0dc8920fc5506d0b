package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/clientsec"
)

// runTransactions is `sluice transactions list|describe|abort`, like Kafka's
// kafka-transactions.sh: ListTransactions and DescribeTransactions through
// kadm, and the abort of a hanging transaction with WriteTxnMarkers to the
// partition's leader (KIP-664).
func runTransactions(ctx context.Context, args []string) error {
	return transactionsCommand(ctx, args, os.Stdout)
}

const transactionsUsage = `usage:
  sluice transactions list     [--bootstrap host:port] [security flags] [--state STATE]... [--producer-id ID]...
  sluice transactions describe [--bootstrap host:port] [security flags] --transactional-id ID
  sluice transactions abort    [--bootstrap host:port] [security flags] --topic TOPIC --partition N
                               (--start-offset OFFSET | --producer-id ID --producer-epoch E --coordinator-epoch C)

list shows the transactional ids of every coordinator, with their state
(Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort).
describe shows one transactional id: producer id and epoch, timeout, start and
the partitions of its ongoing transaction.
abort ends a hanging transaction on one partition by writing an abort marker
there, as kafka-transactions.sh abort does: the producer is found by the first
offset of its open transaction (--start-offset, through DescribeProducers) or
named. WriteTxnMarkers is a broker-to-broker API in Sluice: --bootstrap must be
a broker's inter-broker listener, with credentials that have CLUSTER_ACTION on
the cluster.
`

func transactionsCommand(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(out, transactionsUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "describe" && args[0] != "abort") {
		fmt.Fprint(os.Stderr, transactionsUsage)
		return errors.New("transactions: want list, describe or abort")
	}
	sub := args[0]
	fs := flag.NewFlagSet("transactions "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), transactionsUsage+"\nflags:\n"); fs.PrintDefaults() }
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "comma-separated `host:port` list of seed brokers")
	txnID := fs.String("transactional-id", "", "the transactional `id` (describe)")
	topic := fs.String("topic", "", "the `topic` of the hanging transaction (abort)")
	partition := fs.Int("partition", -1, "the `partition` of the hanging transaction (abort)")
	startOffset := fs.Int64("start-offset", -1, "first `offset` of the hanging transaction (abort)")
	producerEpoch := fs.Int("producer-epoch", -1, "producer `epoch` of the hanging transaction (abort)")
	coordinatorEpoch := fs.Int("coordinator-epoch", -1, "coordinator `epoch` of the hanging transaction (abort)")
	var states []string
	fs.Func("state", "list only transactions in `STATE`, repeatable (list)", func(v string) error {
		states = append(states, v)
		return nil
	})
	var producerIDs []int64
	fs.Func("producer-id", "producer `id`: list filter (repeatable) or the producer to abort", func(v string) error {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 0 {
			return fmt.Errorf("%q is not a producer id", v)
		}
		producerIDs = append(producerIDs, id)
		return nil
	})
	var sec clientsec.Config
	sec.RegisterFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("transactions %s: unexpected argument %q", sub, fs.Arg(0))
	}
	// Check the arguments before connecting.
	switch sub {
	case "describe":
		if *txnID == "" {
			return errors.New("transactions describe: --transactional-id is required")
		}
	case "abort":
		if *topic == "" || *partition < 0 {
			return errors.New("transactions abort: --topic and --partition are required")
		}
		byOffset := *startOffset >= 0
		byProducer := len(producerIDs) > 0 || *producerEpoch >= 0 || *coordinatorEpoch >= 0
		switch {
		case byOffset == byProducer:
			return errors.New("transactions abort: give either --start-offset or --producer-id, --producer-epoch and --coordinator-epoch")
		case byProducer && (len(producerIDs) != 1 || *producerEpoch < 0 || *producerEpoch > 32767 || *coordinatorEpoch < 0):
			return errors.New("transactions abort: --producer-id, --producer-epoch (0-32767) and --coordinator-epoch (>= 0) go together")
		}
	}
	secOpts, err := sec.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...)}, secOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	switch sub {
	case "list":
		return listTransactions(ctx, adm, producerIDs, states, out)
	case "describe":
		return describeTransaction(ctx, adm, *txnID, out)
	}
	m := kadm.TxnMarkers{Commit: false, Topics: kadm.TopicsSet{}}
	m.Topics.Add(*topic, int32(*partition))
	if *startOffset >= 0 {
		p, err := findHangingProducer(ctx, adm, *topic, int32(*partition), *startOffset)
		if err != nil {
			return err
		}
		m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch = p.ProducerID, p.ProducerEpoch, max(p.CoordinatorEpoch, 0)
	} else {
		m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch = producerIDs[0], int16(*producerEpoch), int32(*coordinatorEpoch)
	}
	res, err := adm.WriteTxnMarkers(ctx, m)
	if err != nil {
		return fmt.Errorf("transactions abort: %w", err)
	}
	var perr error
	res.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
		if p.Err != nil && perr == nil {
			perr = fmt.Errorf("transactions abort %s-%d: %w", p.Topic, p.Partition, p.Err)
		}
	})
	if perr != nil {
		return perr
	}
	fmt.Fprintf(out, "aborted the transaction of producer %d (epoch %d) on %s-%d\n", m.ProducerID, m.ProducerEpoch, *topic, *partition)
	return nil
}

func listTransactions(ctx context.Context, adm *kadm.Client, producerIDs []int64, states []string, out io.Writer) error {
	listed, err := adm.ListTransactions(ctx, producerIDs, states)
	if err != nil {
		return fmt.Errorf("transactions list: %w", err)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TRANSACTIONAL_ID\tCOORDINATOR\tPRODUCER_ID\tSTATE")
	for _, l := range listed.Sorted() {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", l.TxnID, l.Coordinator, l.ProducerID, l.State)
	}
	return w.Flush()
}

func describeTransaction(ctx context.Context, adm *kadm.Client, id string, out io.Writer) error {
	described, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		return fmt.Errorf("transactions describe: %w", err)
	}
	d, ok := described[id]
	if !ok {
		return fmt.Errorf("transactions describe: no answer for %q", id)
	}
	if d.Err != nil {
		return fmt.Errorf("transactions describe %s: %w", id, d.Err)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TRANSACTIONAL_ID\tCOORDINATOR\tSTATE\tPRODUCER_ID\tPRODUCER_EPOCH\tTIMEOUT_MS\tSTART\tDURATION\tPARTITIONS")
	start, dur := "-", "-"
	if d.StartTimestamp >= 0 {
		t := time.UnixMilli(d.StartTimestamp)
		start, dur = t.UTC().Format(time.RFC3339), time.Since(t).Round(time.Second).String()
	}
	var parts []string
	for _, tp := range d.Topics.Sorted() {
		for _, p := range tp.Partitions {
			parts = append(parts, tp.Topic+"-"+strconv.Itoa(int(p)))
		}
	}
	sort.Strings(parts)
	joined := strings.Join(parts, ",")
	if joined == "" {
		joined = "-"
	}
	fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", d.TxnID, d.Coordinator, d.State, d.ProducerID, d.ProducerEpoch,
		d.TimeoutMillis, start, dur, joined)
	return w.Flush()
}

// findHangingProducer is the producer whose open transaction on the partition
// starts at offset, as DescribeProducers reports it.
func findHangingProducer(ctx context.Context, adm *kadm.Client, topic string, partition int32, offset int64) (kadm.DescribedProducer, error) {
	ts := kadm.TopicsSet{}
	ts.Add(topic, partition)
	described, err := adm.DescribeProducers(ctx, ts)
	if err != nil {
		return kadm.DescribedProducer{}, fmt.Errorf("transactions abort: describing producers: %w", err)
	}
	dp, ok := described[topic].Partitions[partition]
	if !ok {
		return kadm.DescribedProducer{}, fmt.Errorf("transactions abort: no answer for %s-%d", topic, partition)
	}
	if dp.Err != nil {
		return kadm.DescribedProducer{}, fmt.Errorf("transactions abort: describing producers of %s-%d: %w", topic, partition, dp.Err)
	}
	for _, p := range dp.ActiveProducers {
		if p.CurrentTxnStartOffset == offset {
			return p, nil
		}
	}
	return kadm.DescribedProducer{}, fmt.Errorf("transactions abort: no open transaction starts at offset %d of %s-%d", offset, topic, partition)
}
