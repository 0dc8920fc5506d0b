package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/sluicemq/sluice/chaos"
)

// runChaos is `sluice chaos`: it starts a local cluster of `sluice broker` processes, kills brokers
// while idempotent producers write, and checks that no acknowledged record was lost, duplicated or
// reordered. With --mode txn an exactly-once pipeline copies the topic in transactions while the
// kills also hit the transaction coordinators, and a read_committed checker verifies that every input
// record is in the output once and nothing of an aborted transaction is visible. It fails when a
// promise was broken, or when the run hit a problem.
func runChaos(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var cfg chaos.Config
	fs.StringVar(&cfg.Bin, "bin", "", "sluice binary that runs the brokers (default: this executable)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for broker data and logs (default: a temp dir, removed after a passing run)")
	fs.BoolVar(&cfg.KeepDir, "keep", false, "keep --dir's temp dir after a passing run")
	fs.IntVar(&cfg.Brokers, "brokers", 3, "broker processes")
	flush := fs.String("flush", "always", "brokers' flush policy: none, interval or always")
	fs.StringVar(&cfg.Topic, "topic", "chaos", "topic to write and check")
	partitions := fs.Int("partitions", 6, "partitions of the topic")
	rf := fs.Int("rf", 3, "replication factor of the topic")
	fs.IntVar(&cfg.MinInsyncReplicas, "min-insync-replicas", 2, "min.insync.replicas of the topic")
	fs.IntVar(&cfg.Producers, "producers", 3, "idempotent producers, each writing to every partition")
	fs.IntVar(&cfg.Rate, "rate", 1200, "records per second offered by all producers together")
	fs.IntVar(&cfg.InFlight, "in-flight", 8, "unacknowledged records per producer and partition")
	fs.DurationVar(&cfg.RetryBackoffMax, "retry-backoff-max", 0, "cap of the producers' doubling retry backoff from 100ms, like Kafka's retry.backoff.max.ms (default 1s)")
	fs.IntVar(&cfg.Kills, "kills", 30, "number of kill -9s")
	fs.IntVar(&cfg.ControllerEvery, "controller-every", 2, "every n-th kill hits the active controller")
	fs.DurationVar(&cfg.MinDown, "min-down", 0, "least time a killed broker stays down (default 500ms)")
	fs.DurationVar(&cfg.MaxDown, "max-down", 0, "most time a killed broker stays down (default 2s)")
	fs.DurationVar(&cfg.FailoverTimeout, "failover-timeout", 0, "longest acceptable failover before a kill counts as stuck (default 20s)")
	fs.DurationVar(&cfg.RejoinTimeout, "rejoin-timeout", 0, "longest wait for a restarted broker to rejoin every ISR (default 60s)")
	fs.BoolVar(&cfg.RestartAll, "restart-all", true, "after the kills, kill and restart all brokers at once and check again")
	fs.Int64Var(&cfg.Seed, "seed", 0, "random seed for victims and down times (default: the clock)")
	fs.StringVar(&cfg.Mode, "mode", chaos.ModeIdempotent, "idempotent, or txn: add an exactly-once consume-transform-produce pipeline (GroupTransactSessions, read_committed) and aborted transactions, checked by a read_committed reader")
	fs.IntVar(&cfg.Transformers, "transformers", 2, "GroupTransactSessions of the txn mode's pipeline, one transactional id each")
	fs.DurationVar(&cfg.TransactionTimeout, "transaction-timeout", 0, "the pipeline's transaction.timeout.ms (default 1m)")
	fs.IntVar(&cfg.Hogs, "hogs", 0, "CPU hogs (busy loops at the brokers' priority) running throughout, to measure failover on a busy machine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--bin: %w", err)
		}
		cfg.Bin = exe
	}
	cfg.Partitions = int32(*partitions)
	cfg.ReplicationFactor = int16(*rf)
	cfg.BrokerConfig = "flush: " + *flush + "\n"
	if *flush == "" {
		return errors.New("--flush must not be empty")
	}
	rep, err := chaos.Run(ctx, cfg, os.Stdout)
	if err != nil {
		return err
	}
	rep.Write(os.Stdout)
	if !rep.OK() {
		return errors.New("acknowledged records were lost, duplicated or reordered, exactly-once was broken, or the run hit a problem (see the report)")
	}
	return nil
}
