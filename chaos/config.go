package chaos

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a chaos run. Zero values take the documented defaults (see SetDefaults).
type Config struct {
	// Bin is the sluice binary whose `broker` subcommand runs the brokers. Required.
	Bin string
	// Dir holds the brokers' data directories and logs. Default: a new temporary directory, removed
	// after a run that passes unless KeepDir is set.
	Dir string
	// KeepDir keeps Dir after a passing run.
	KeepDir bool
	// Brokers is the number of broker processes, default 3.
	Brokers int
	// BrokerConfig is the YAML given to every broker with --config, default "flush: always\n".
	BrokerConfig string

	// Topic is the topic written and checked, default "chaos".
	Topic string
	// Partitions is the topic's partition count, default 6.
	Partitions int32
	// ReplicationFactor is the topic's replication factor, default 3.
	ReplicationFactor int16
	// MinInsyncReplicas is the topic's min.insync.replicas, default 2.
	MinInsyncReplicas int

	// Producers is the number of idempotent producers (one kgo client and producer ID each), every one
	// writing to every partition; default 3.
	Producers int
	// Rate is the total records per second offered by all producers together, default 1200.
	Rate int
	// InFlight bounds the unacknowledged records of one producer on one partition, default 8.
	InFlight int
	// DeliveryTimeout is kgo's RecordDeliveryTimeout (Kafka's delivery.timeout.ms), default 30s: a
	// record not acknowledged by then fails and counts as unacknowledged.
	DeliveryTimeout time.Duration
	// MetadataMinAge is kgo's MetadataMinAge, the least time between metadata refreshes, default 100ms
	// (Kafka's Java client refreshes after retry.backoff.ms, 100ms; kgo's own default is 5s).
	MetadataMinAge time.Duration
	// RetryBackoffMax caps the producers' retry backoff, which starts at 100ms and doubles, default 1s
	// (Kafka's Java client: retry.backoff.ms 100, retry.backoff.max.ms 1000). kgo also backs off its
	// metadata refreshes this way while a partition's leader is unreachable, so this bounds how late
	// a producer can notice a new leader. A value of 100ms makes the backoff constant.
	RetryBackoffMax time.Duration

	// Kills is the number of SIGKILLs, default 30. Every kill is followed by a restart and a wait until
	// every ISR is full again before the next kill.
	Kills int
	// ControllerEvery makes every n-th kill hit the active controller (the others hit a random other
	// broker, which always leads some partitions while preferred leaders are restored); default 2.
	ControllerEvery int
	// MinDown and MaxDown bound the random time a killed broker stays down, counted from the kill; it
	// also stays down until every partition it led has accepted a produce again. Defaults 500ms and 2s.
	MinDown, MaxDown time.Duration
	// FailoverTimeout is how long the partitions of a killed leader may take to accept produces again
	// before the kill is reported as a stuck failover, default 20s.
	FailoverTimeout time.Duration
	// RejoinTimeout is how long a restarted broker may take until every ISR is full again, default 60s.
	RejoinTimeout time.Duration
	// RestartAll, after the kills and the first check, kills all brokers at once, restarts them and
	// checks again.
	RestartAll bool
	// Seed seeds the choice of victims and down times; 0 uses the clock.
	Seed int64
	// Mode is ModeIdempotent (default) or ModeTxn, which adds the exactly-once pipeline and its
	// read_committed checker.
	Mode string
	// Transformers is the number of GroupTransactSessions of the pipeline (ModeTxn), each with a
	// transactional id of its own, default 2.
	Transformers int
	// TransactionTimeout is the pipeline's transaction.timeout.ms, default 60s.
	TransactionTimeout time.Duration
	// CatchUpTimeout bounds the wait, after the kills, until the pipeline has committed every input
	// offset (ModeTxn), default 3m.
	CatchUpTimeout time.Duration

	// Hogs is the number of CPU hogs (busy loops in processes of their own, at the brokers' priority)
	// kept running from the start of the cluster to the end of the run, to measure failover on a busy
	// machine; default 0.
	Hogs int
}

// SetDefaults fills in zero values and rejects impossible settings.
func (c *Config) SetDefaults() error {
	if c.Bin == "" {
		return errors.New("chaos: Bin (the sluice binary) is required")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Brokers, 3)
	if c.BrokerConfig == "" {
		c.BrokerConfig = "flush: always\n"
	}
	if c.Topic == "" {
		c.Topic = "chaos"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 3
	}
	def(&c.MinInsyncReplicas, 2)
	def(&c.Producers, 3)
	def(&c.Rate, 1200)
	def(&c.InFlight, 8)
	defDur(&c.DeliveryTimeout, 30*time.Second)
	defDur(&c.MetadataMinAge, 100*time.Millisecond)
	defDur(&c.RetryBackoffMax, time.Second)
	def(&c.Kills, 30)
	def(&c.ControllerEvery, 2)
	defDur(&c.MinDown, 500*time.Millisecond)
	defDur(&c.MaxDown, 2*time.Second)
	defDur(&c.FailoverTimeout, 20*time.Second)
	defDur(&c.RejoinTimeout, 60*time.Second)
	if c.Mode == "" {
		c.Mode = ModeIdempotent
	}
	def(&c.Transformers, 2)
	defDur(&c.TransactionTimeout, time.Minute)
	defDur(&c.CatchUpTimeout, 3*time.Minute)
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	switch {
	case c.Mode != ModeIdempotent && c.Mode != ModeTxn:
		return fmt.Errorf("chaos: mode %q is not %s or %s", c.Mode, ModeIdempotent, ModeTxn)
	case c.Transformers < 1:
		return fmt.Errorf("chaos: transformers %d must be positive", c.Transformers)
	case c.Hogs < 0:
		return fmt.Errorf("chaos: hogs %d is negative", c.Hogs)
	case c.Brokers < 2:
		return fmt.Errorf("chaos: brokers %d: killing needs at least 2", c.Brokers)
	case int(c.ReplicationFactor) > c.Brokers:
		return fmt.Errorf("chaos: replication factor %d is more than %d brokers", c.ReplicationFactor, c.Brokers)
	case c.Partitions < 1, c.Producers < 1, c.Rate < 1, c.InFlight < 1, c.Kills < 0, c.ControllerEvery < 1:
		return errors.New("chaos: partitions, producers, rate, in-flight and controller-every must be positive, kills not negative")
	case c.MaxDown < c.MinDown:
		return fmt.Errorf("chaos: max down %v is less than min down %v", c.MaxDown, c.MinDown)
	}
	return nil
}
