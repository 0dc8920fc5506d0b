package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sluicemq/sluice/bench"
)

// runBench is `sluice bench`: it measures produce and consume throughput
// against any Kafka bootstrap address (bench/compare.sh runs it against a
// Sluice broker and franz-go's kfake, served by go run ./bench/kfake).
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sluice bench [flags]\n\n"+
			"Produces records of random bytes to a topic and reads them back, printing\n"+
			"records/s and MiB/s for each phase.\n\nflags:\n")
		fs.PrintDefaults()
	}
	var cfg bench.Config
	fs.StringVar(&cfg.Bootstrap, "bootstrap", "127.0.0.1:9092", "comma-separated `host:port` list of seed brokers")
	fs.StringVar(&cfg.Topic, "topic", bench.DefaultTopic, "`topic` to produce to and consume from, created if missing")
	fs.Int64Var(&cfg.Records, "records", bench.DefaultRecords, "records produced per run")
	fs.DurationVar(&cfg.Duration, "duration", 0, "produce for this long per run instead of a count of --records")
	fs.IntVar(&cfg.RecordSize, "record-size", bench.DefaultRecordSize, "record value size in `bytes` (random, incompressible)")
	fs.StringVar(&cfg.Acks, "acks", bench.DefaultAcks, "producer acks: 0, 1 or all")
	fs.BoolVar(&cfg.Idempotent, "idempotent", false, "use the idempotent producer (requires --acks all)")
	partitions := fs.Int("partitions", bench.DefaultPartitions, "partitions of the topic if it is created")
	rf := fs.Int("replication-factor", bench.DefaultReplicationFactor, "replication factor of the topic if it is created (default: the cluster's default.replication.factor)")
	fs.BoolVar(&cfg.KeepTopic, "keep-topic", false, "keep the topic if the benchmark created it (by default it is deleted at the end of a run that consumes)")
	cfg.TopicConfigs = map[string]string{}
	fs.Func("topic-config", "`name=value` config of the topic if it is created, repeatable, e.g. min.insync.replicas=2", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q is not name=value", v)
		}
		cfg.TopicConfigs[name] = value
		return nil
	})
	fs.StringVar(&cfg.Compression, "compression", bench.DefaultCompression, "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.IntVar(&cfg.Producers, "producers", bench.DefaultProducers, "independent producer clients sharing the load")
	batch := fs.Int("batch-max-bytes", bench.DefaultBatchMaxBytes, "maximum produce batch size in bytes")
	fs.DurationVar(&cfg.Linger, "linger", bench.DefaultLinger, "producer linger; 0 disables lingering")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", bench.DefaultMaxInflight, "produce requests in flight per broker (non-idempotent)")
	fs.IntVar(&cfg.MaxBufferedRecords, "max-buffered-records", bench.DefaultMaxBufferedRecords, "records a producer buffers before blocking")
	fetch := fs.Int("fetch-max-bytes", bench.DefaultFetchMaxBytes, "maximum fetch response size in bytes")
	fs.StringVar(&cfg.Mode, "mode", bench.DefaultMode, "produce, consume or both")
	fs.IntVar(&cfg.Runs, "runs", bench.DefaultRuns, "repetitions; the medians are printed last")
	fs.Int64Var(&cfg.TransactionalRecords, "transactional-records", 0, "if set, each run produces idempotently and then transactionally with this many `records` per transaction, and prints the ratio (needs --acks all --mode produce)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] && !set["records"] {
		cfg.Records = 0
	}
	if set["linger"] && cfg.Linger == 0 {
		cfg.Linger = -1 // Config's zero means the default
	}
	for name, v := range map[string]int{"partitions": *partitions, "batch-max-bytes": *batch, "fetch-max-bytes": *fetch} {
		if v < 0 || v > 1<<31-1 {
			return fmt.Errorf("bench: --%s %d is out of range", name, v)
		}
	}
	if *rf < 0 || *rf > 1<<15-1 {
		return fmt.Errorf("bench: --replication-factor %d is out of range", *rf)
	}
	cfg.Partitions = int32(*partitions)
	cfg.ReplicationFactor = int16(*rf)
	cfg.BatchMaxBytes = int32(*batch)
	cfg.FetchMaxBytes = int32(*fetch)

	_, err := bench.Run(ctx, cfg, os.Stdout)
	return err
}
