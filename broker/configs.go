package broker

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// topicConfigDef describes one topic config Sluice honours: its Kafka name, type,
// the broker setting its default comes from, and how to validate a value.
type topicConfigDef struct {
	name     string
	typ      kmsg.ConfigType
	synonym  string // the broker setting providing the default
	def      func(c *Config) string
	validate func(string) error
}

func i64(v int64) string { return strconv.FormatInt(v, 10) }

func intRange(lo, hi int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		if v < lo || v > hi {
			return fmt.Errorf("%d is outside [%d, %d]", v, lo, hi)
		}
		return nil
	}
}

func oneOf(opts ...string) func(string) error {
	return func(s string) error {
		for _, o := range opts {
			if s == o {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(opts, ", "))
	}
}

func validCleanupPolicy(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
			return fmt.Errorf("%q is not a list of delete and compact", s)
		}
	}
	return nil
}

const maxInt64 = int64(^uint64(0) >> 1)

// topicConfigDefs is every topic config Sluice accepts, in Kafka's names.
var topicConfigDefs = []topicConfigDef{
	{"cleanup.policy", kmsg.ConfigTypeList, "log.cleanup.policy", func(c *Config) string { return c.LogCleanupPolicy }, validCleanupPolicy},
	{"compression.type", kmsg.ConfigTypeString, "compression.type", func(*Config) string { return "producer" }, oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	{"delete.retention.ms", kmsg.ConfigTypeLong, "log.cleaner.delete.retention.ms", func(*Config) string { return "86400000" }, intRange(0, maxInt64)},
	{"file.delete.delay.ms", kmsg.ConfigTypeLong, "log.segment.delete.delay.ms", func(*Config) string { return "60000" }, intRange(0, maxInt64)},
	{"flush.messages", kmsg.ConfigTypeLong, "log.flush.interval.messages", func(*Config) string { return i64(maxInt64) }, intRange(1, maxInt64)},
	{"flush.ms", kmsg.ConfigTypeLong, "log.flush.interval.ms", func(c *Config) string { return i64(c.FlushIntervalMs) }, intRange(0, maxInt64)},
	{"index.interval.bytes", kmsg.ConfigTypeInt, "log.index.interval.bytes", func(*Config) string { return "4096" }, intRange(0, 1<<31-1)},
	{"max.compaction.lag.ms", kmsg.ConfigTypeLong, "log.cleaner.max.compaction.lag.ms", func(*Config) string { return i64(maxInt64) }, intRange(1, maxInt64)},
	{"max.message.bytes", kmsg.ConfigTypeInt, "message.max.bytes", func(c *Config) string { return i64(int64(c.MessageMaxBytes)) }, intRange(0, 1<<31-1)},
	{"message.timestamp.type", kmsg.ConfigTypeString, "log.message.timestamp.type", func(*Config) string { return "CreateTime" }, oneOf("CreateTime", "LogAppendTime")},
	{"min.cleanable.dirty.ratio", kmsg.ConfigTypeDouble, "log.cleaner.min.cleanable.ratio", func(*Config) string { return "0.5" }, func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || v > 1 {
			return fmt.Errorf("%q is not a number in [0, 1]", s)
		}
		return nil
	}},
	{"min.compaction.lag.ms", kmsg.ConfigTypeLong, "log.cleaner.min.compaction.lag.ms", func(*Config) string { return "0" }, intRange(0, maxInt64)},
	{"min.insync.replicas", kmsg.ConfigTypeInt, "min.insync.replicas", func(*Config) string { return "1" }, intRange(1, 1<<31-1)},
	{"preallocate", kmsg.ConfigTypeBoolean, "log.preallocate", func(*Config) string { return "false" }, oneOf("true", "false")},
	{"retention.bytes", kmsg.ConfigTypeLong, "log.retention.bytes", func(c *Config) string { return i64(c.LogRetentionBytes) }, intRange(-1, maxInt64)},
	{"retention.ms", kmsg.ConfigTypeLong, "log.retention.ms", func(c *Config) string { return i64(c.LogRetentionMs) }, intRange(-1, maxInt64)},
	{"segment.bytes", kmsg.ConfigTypeInt, "log.segment.bytes", func(c *Config) string { return i64(c.LogSegmentBytes) }, intRange(14, 1<<31-1)},
	{"segment.index.bytes", kmsg.ConfigTypeInt, "log.index.size.max.bytes", func(*Config) string { return "10485760" }, intRange(4, 1<<31-1)},
	{"segment.jitter.ms", kmsg.ConfigTypeLong, "log.roll.jitter.ms", func(*Config) string { return "0" }, intRange(0, maxInt64)},
	{"segment.ms", kmsg.ConfigTypeLong, "log.roll.ms", func(c *Config) string { return i64(c.LogRollMs) }, intRange(1, maxInt64)},
	{"unclean.leader.election.enable", kmsg.ConfigTypeBoolean, "unclean.leader.election.enable", func(*Config) string { return "false" }, oneOf("true", "false")},
}

func topicConfigDefByName(name string) *topicConfigDef {
	for i := range topicConfigDefs {
		if topicConfigDefs[i].name == name {
			return &topicConfigDefs[i]
		}
	}
	return nil
}

// validateTopicConfig checks one topic config value.
func validateTopicConfig(name, value string) error {
	if len(name) > maxTopicConfigNameBytes {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("config name longer than %d bytes", maxTopicConfigNameBytes))
	}
	d := topicConfigDefByName(name)
	if d == nil {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("unknown topic config %q", name))
	}
	if len(value) > maxTopicConfigValueBytes {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s: value longer than %d bytes", name, maxTopicConfigValueBytes))
	}
	if err := d.validate(value); err != nil {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s: %v", name, err))
	}
	return nil
}

func validateTopicConfigs(configs map[string]string) error {
	for k, v := range configs {
		if err := validateTopicConfig(k, v); err != nil {
			return err
		}
	}
	return nil
}

// topicConfigValue is the effective value of a topic config and whether it is an override.
func (b *Broker) topicConfigValue(overrides map[string]string, d *topicConfigDef) (string, bool) {
	if v, ok := overrides[d.name]; ok {
		return v, true
	}
	return d.def(&b.cfg), false
}

// storageConfig turns a topic's effective configs into the log's settings.
func (b *Broker) storageConfig(overrides map[string]string) (storage.Config, error) {
	get := func(name string) string {
		v, _ := b.topicConfigValue(overrides, topicConfigDefByName(name))
		return v
	}
	num := func(name string) int64 {
		v, _ := strconv.ParseInt(get(name), 10, 64)
		return v
	}
	c := storage.DefaultConfig()
	c.SegmentBytes = num("segment.bytes")
	c.SegmentMs = num("segment.ms")
	c.IndexIntervalBytes = int32(num("index.interval.bytes"))
	c.RetentionMs = num("retention.ms")
	c.RetentionBytes = num("retention.bytes")
	c.CleanupPolicy = get("cleanup.policy")
	c.DeleteRetentionMs = num("delete.retention.ms")
	c.MinCompactionLagMs = num("min.compaction.lag.ms")
	c.MaxMessageBytes = int32(num("max.message.bytes"))
	c.MessageTimestampType = get("message.timestamp.type")
	c.Flush = b.flush
	c.OnSync = func(d time.Duration) { b.metrics.fsync.Observe(d.Seconds()) }
	return c, nil
}

// brokerConfigs are the broker settings DescribeConfigs reports for a broker resource.
func (b *Broker) brokerConfigs() []struct{ name, value string } {
	c := &b.cfg
	return append([]struct{ name, value string }{
		{"node.id", i64(int64(c.NodeID))},
		{"broker.id", i64(int64(c.NodeID))},
		{"log.dir", c.DataDir},
		{"sluice.flush.policy", c.Flush},
		{"log.flush.interval.ms", i64(c.FlushIntervalMs)},
		{"num.partitions", i64(int64(c.NumPartitions))},
		{"default.replication.factor", i64(int64(c.DefaultReplicationFactor))},
		{"auto.create.topics.enable", strconv.FormatBool(*c.AutoCreateTopics)},
		{"delete.topic.enable", strconv.FormatBool(*c.DeleteTopicEnable)},
		{"message.max.bytes", i64(int64(c.MessageMaxBytes))},
		{"socket.request.max.bytes", i64(int64(c.SocketRequestMaxBytes))},
		{"log.segment.bytes", i64(c.LogSegmentBytes)},
		{"log.roll.ms", i64(c.LogRollMs)},
		{"log.retention.ms", i64(c.LogRetentionMs)},
		{"log.retention.bytes", i64(c.LogRetentionBytes)},
		{"log.cleanup.policy", c.LogCleanupPolicy},
		{"log.retention.check.interval.ms", i64(c.LogRetentionCheckIntervalMs)},
		{"offsets.topic.num.partitions", i64(int64(c.OffsetsTopicNumPartitions))},
		{"offsets.retention.minutes", i64(c.OffsetsRetentionMinutes)},
		{"group.min.session.timeout.ms", i64(c.GroupMinSessionTimeoutMs)},
		{"group.max.session.timeout.ms", i64(c.GroupMaxSessionTimeoutMs)},
		{"group.initial.rebalance.delay.ms", i64(*c.GroupInitialRebalanceDelayMs)},
		{"group.max.size", i64(int64(c.GroupMaxSize))},
	}, c.Limits.describe()...)
}
