package broker

import (
	"errors"
	"fmt"
	"regexp"
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

// topicConfigDefs is every topic config Kafka 3.9 knows, in Kafka's names; the
// ones in ignoredTopicConfigs are accepted but not acted on.
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

	// Kafka 3.9's other topic configs: validated like Kafka, accepted and
	// ignored (ignoredTopicConfigs says why).
	{"compression.gzip.level", kmsg.ConfigTypeInt, "compression.gzip.level", func(*Config) string { return "-1" }, func(s string) error {
		if s == "-1" {
			return nil
		}
		return intRange(1, 9)(s)
	}},
	{"compression.lz4.level", kmsg.ConfigTypeInt, "compression.lz4.level", func(*Config) string { return "9" }, intRange(1, 17)},
	{"compression.zstd.level", kmsg.ConfigTypeInt, "compression.zstd.level", func(*Config) string { return "3" }, intRange(-131072, 22)},
	{"follower.replication.throttled.replicas", kmsg.ConfigTypeList, "", func(*Config) string { return "" }, validThrottledReplicas},
	{"leader.replication.throttled.replicas", kmsg.ConfigTypeList, "", func(*Config) string { return "" }, validThrottledReplicas},
	{"local.retention.bytes", kmsg.ConfigTypeLong, "log.local.retention.bytes", func(*Config) string { return "-2" }, intRange(-2, maxInt64)},
	{"local.retention.ms", kmsg.ConfigTypeLong, "log.local.retention.ms", func(*Config) string { return "-2" }, intRange(-2, maxInt64)},
	{"message.downconversion.enable", kmsg.ConfigTypeBoolean, "log.message.downconversion.enable", func(*Config) string { return "true" }, oneOf("true", "false")},
	{"message.format.version", kmsg.ConfigTypeString, "log.message.format.version", func(*Config) string { return "3.0-IV1" }, validMessageFormatVersion},
	{"message.timestamp.after.max.ms", kmsg.ConfigTypeLong, "log.message.timestamp.after.max.ms", func(*Config) string { return i64(maxInt64) }, intRange(0, maxInt64)},
	{"message.timestamp.before.max.ms", kmsg.ConfigTypeLong, "log.message.timestamp.before.max.ms", func(*Config) string { return i64(maxInt64) }, intRange(0, maxInt64)},
	{"message.timestamp.difference.max.ms", kmsg.ConfigTypeLong, "log.message.timestamp.difference.max.ms", func(*Config) string { return i64(maxInt64) }, intRange(0, maxInt64)},
	{"remote.log.copy.disable", kmsg.ConfigTypeBoolean, "", func(*Config) string { return "false" }, oneOf("true", "false")},
	{"remote.log.delete.on.disable", kmsg.ConfigTypeBoolean, "", func(*Config) string { return "false" }, oneOf("true", "false")},
	{"remote.storage.enable", kmsg.ConfigTypeBoolean, "", func(*Config) string { return "false" }, func(s string) error {
		if s == "true" {
			// What Kafka answers when the broker has no tiered storage.
			return kafkaErr(kerr.InvalidConfig, "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.")
		}
		return oneOf("true", "false")(s)
	}},
}

// ignoredTopicConfigs are the topic configs Sluice accepts (validated as Kafka
// validates them) but does not act on, with the reason; DescribeConfigs v3+
// carries the reason as the config's documentation, the broker logs it when one
// is set, and docs/compatibility.md lists them.
var ignoredTopicConfigs = map[string]string{
	"compression.type":              "batches are stored as the producer compressed them (producer)",
	"compression.gzip.level":        "batches are never recompressed",
	"compression.lz4.level":         "batches are never recompressed",
	"compression.zstd.level":        "batches are never recompressed",
	"file.delete.delay.ms":          "deleted segments are removed at once",
	"flush.messages":                "fsync follows the broker's flush policy (flush, log.flush.interval.ms)",
	"flush.ms":                      "fsync follows the broker's flush policy (flush, log.flush.interval.ms)",
	"local.retention.bytes":         "there is no tiered storage: all data is local",
	"local.retention.ms":            "there is no tiered storage: all data is local",
	"max.compaction.lag.ms":         "compaction runs every log.retention.check.interval.ms over all sealed segments",
	"message.downconversion.enable": "only record batch format v2 is served (Fetch v4+), nothing is down-converted",
	"message.format.version":        "deprecated in Kafka 3.0 and ignored there too: batches are format v2",
	"min.cleanable.dirty.ratio":     "compaction runs every log.retention.check.interval.ms over all sealed segments",
	"preallocate":                   "segment files grow as written",
	"remote.log.copy.disable":       "there is no tiered storage",
	"remote.log.delete.on.disable":  "there is no tiered storage",
	"remote.storage.enable":         "there is no tiered storage (true is refused, as by a Kafka broker without it)",
	"segment.index.bytes":           "index files grow as written",
	"segment.jitter.ms":             "segments roll at segment.ms exactly",
}

var throttledReplica = regexp.MustCompile(`^\s*\d+\s*:\s*\d+\s*$`)

// validThrottledReplicas is Kafka's ThrottledReplicaListValidator: empty, "*",
// or partition:broker pairs.
func validThrottledReplicas(s string) error {
	if strings.TrimSpace(s) == "" || strings.TrimSpace(s) == "*" {
		return nil
	}
	for _, p := range strings.Split(s, ",") {
		if !throttledReplica.MatchString(p) {
			return fmt.Errorf("%q must be the literal '*' or a list of replicas in the format [partitionId]:[brokerId],[partitionId]:[brokerId]", s)
		}
	}
	return nil
}

var messageFormatVersion = regexp.MustCompile(`^(0\.(8\.[0-2]|9\.0|10\.[0-2]|11\.0)|[1-3]\.[0-9])(\.[0-9]+)?(-IV[0-9]+)?$`)

// validMessageFormatVersion accepts the versions Kafka 3.9's
// message.format.version validator knows (0.8.0 to 3.9, with -IVn suffixes).
func validMessageFormatVersion(s string) error {
	if !messageFormatVersion.MatchString(s) {
		return fmt.Errorf("%q is not a valid Kafka version", s)
	}
	return nil
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
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Unknown topic config name: %s", name))
	}
	if len(value) > maxTopicConfigValueBytes {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s: value longer than %d bytes", name, maxTopicConfigValueBytes))
	}
	if err := d.validate(value); err != nil {
		var ke *kafkaError
		if errors.As(err, &ke) {
			return err
		}
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Invalid value %s for configuration %s: %v", value, name, err))
	}
	return nil
}

// nullTopicConfig is Kafka's answer to a topic config with a null value in
// CreateTopics or AlterConfigs.
func nullTopicConfig(name string) error {
	return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Null value not supported for topic configs: %s", name))
}

// logIgnoredConfigs notes the configs of a topic that Sluice accepts but does not
// act on, so an operator who set one learns it has no effect.
func (b *Broker) logIgnoredConfigs(topic string, configs map[string]string) {
	for name, v := range configs {
		if why, ok := ignoredTopicConfigs[name]; ok {
			b.logger.Info("topic config accepted but not acted on", "topic", topic, "config", name, "value", v, "reason", why)
		}
	}
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
	if d.synonym != "" {
		if v, _, ok := b.dynamicBrokerValue(d.synonym); ok {
			return v, false
		}
	}
	return d.def(&b.cfg), false
}

// topicConfigSource is the effective value of a topic config and its source:
// the topic's override, else its broker setting's (dynamic, static or default).
func (b *Broker) topicConfigSource(overrides map[string]string, d *topicConfigDef) (string, kmsg.ConfigSource) {
	if v, ok := overrides[d.name]; ok {
		return v, kmsg.ConfigSourceDynamicTopicConfig
	}
	if d.synonym != "" && brokerConfigDefByName(d.synonym) != nil {
		return b.brokerConfigValue(d.synonym)
	}
	return d.def(&b.cfg), kmsg.ConfigSourceDefaultConfig
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
