package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Mode values select which phases a run measures.
const (
	// ModeProduce only produces.
	ModeProduce = "produce"
	// ModeConsume only consumes what the topic holds when the run starts,
	// from its start offsets to its end offsets.
	ModeConsume = "consume"
	// ModeBoth produces, then consumes back exactly the records just
	// produced with a direct (non-group) consumer.
	ModeBoth = "both"
)

// Defaults applied by Config.Complete to fields left at their zero value.
const (
	DefaultTopic              = "sluice-bench"
	DefaultRecords            = 1_000_000
	DefaultRecordSize         = 100
	DefaultAcks               = "1"
	DefaultPartitions         = 6
	DefaultReplicationFactor  = 0 // the cluster's default.replication.factor
	DefaultCompression        = "none"
	DefaultProducers          = 1
	DefaultBatchMaxBytes      = 1 << 20
	DefaultLinger             = 2 * time.Millisecond
	DefaultMaxInflight        = 5
	DefaultMaxBufferedRecords = 1 << 18
	DefaultFetchMaxBytes      = 4 << 20
	DefaultMode               = ModeBoth
	DefaultRuns               = 1
)

// maxRecordSize bounds RecordSize so that one record always fits in a
// batch of the largest BatchMaxBytes we accept.
const maxRecordSize = 16 << 20

// Config describes one benchmark. Zero values mean "use the default"; call
// Complete to get the effective configuration (Run does so itself).
type Config struct {
	// Bootstrap is a comma-separated list of host:port seed brokers. It is
	// required; there is no default so that a benchmark never hits a broker
	// by accident.
	Bootstrap string

	// Topic is the topic produced to and consumed from, default
	// "sluice-bench". It is created with Partitions partitions and
	// ReplicationFactor replicas if it does not exist (and deleted at the
	// end unless KeepTopic); an existing topic is used as it is and kept.
	Topic string

	// Records is how many records each run produces, default 1,000,000
	// when Duration is zero. Records and Duration are mutually exclusive.
	Records int64

	// Duration, if positive, makes each run produce for that long instead
	// of producing a fixed count of Records.
	Duration time.Duration

	// RecordSize is the size in bytes of each record value, default 100.
	// Values are random bytes and so incompressible; records have no key
	// and no headers.
	RecordSize int

	// Acks is the producer's required acks: "0", "1" or "all" ("-1" is
	// accepted as a synonym of "all"), default "1", like Kafka's producer
	// setting `acks`.
	Acks string

	// Idempotent enables the idempotent producer (Kafka's
	// `enable.idempotence`). It requires Acks "all" and is off by default.
	Idempotent bool

	// Partitions is the partition count of a created topic, default 6.
	Partitions int32

	// ReplicationFactor is the replication factor of a created topic; zero
	// (the default) asks for the cluster's default.replication.factor, so
	// the topic survives a broker stopping like the cluster's other topics.
	ReplicationFactor int16

	// KeepTopic keeps a topic the benchmark created; by default it is
	// deleted at the end, so no benchmark topic is left behind to become
	// "partitions have no leader" later. A produce-only run keeps it for the
	// consume-only run that follows.
	KeepTopic bool

	// TopicConfigs are the topic configs of a created topic, in Kafka's
	// names, e.g. {"min.insync.replicas": "2"}; none by default, so that
	// the broker's defaults apply.
	TopicConfigs map[string]string

	// Compression is the batch codec: none, gzip, snappy, lz4 or zstd,
	// default none (Kafka's `compression.type`). Because values are random,
	// compressed batches will usually not shrink and franz-go then sends
	// them uncompressed; the cost of trying is still measured.
	Compression string

	// Producers is how many independent producer clients (each with its
	// own connections) share the Records, default 1.
	Producers int

	// BatchMaxBytes caps a produce batch, default 1 MiB, like Kafka's
	// producer `batch.size` (franz-go ProducerBatchMaxBytes). The broker
	// must accept batches of this size (Kafka's `message.max.bytes`).
	BatchMaxBytes int32

	// Linger is how long a producer waits for a batch to fill, default
	// 2ms, like Kafka's `linger.ms`. A negative value disables lingering.
	Linger time.Duration

	// MaxInflight is the maximum of produce requests in flight per broker
	// for a non-idempotent producer, default 5, like Kafka's
	// `max.in.flight.requests.per.connection`.
	MaxInflight int

	// MaxBufferedRecords bounds how many records a producer buffers before
	// Produce blocks, default 262,144 (about 40 full 1 MiB batches of 100 B
	// records: enough to keep 5 requests in flight, small enough that the
	// bench's own heap stays small).
	MaxBufferedRecords int

	// FetchMaxBytes bounds one fetch response, default 4 MiB, like
	// Kafka's `fetch.max.bytes`; each partition may return up to a quarter
	// of it or 1 MiB, whichever is more (`max.partition.fetch.bytes`).
	// franz-go has one fetch in flight per broker and decodes a response
	// while the next is being served, so moderate responses pipeline
	// better than huge ones: on the reference machine 4 MiB consumed about
	// twice as fast as 64 MiB.
	FetchMaxBytes int32

	// Mode is produce, consume or both, default both.
	Mode string

	// Runs is how many times the benchmark is repeated, default 1. The
	// figures reported in Result are the medians.
	Runs int

	// TransactionalRecords, if positive, makes every run produce twice:
	// first with the idempotent producer, then with transactional
	// producers that commit a transaction after every TransactionalRecords
	// records (Kafka's transactional.id, one per producer), and reports
	// the ratio of the two rates. It requires Acks "all" and Mode
	// produce; zero (the default) produces once, without transactions.
	TransactionalRecords int64
}

// FieldError is returned by Config.Complete for an invalid field. It names
// the field so that callers (flags, config files) can point at it.
type FieldError struct {
	Field  string // Field is the Config field name, e.g. "Acks".
	Value  any    // Value is the rejected value.
	Reason string // Reason says what a valid value looks like.
}

// Error implements error.
func (e *FieldError) Error() string {
	return fmt.Sprintf("bench config: %s %v: %s", e.Field, e.Value, e.Reason)
}

// Complete returns c with defaults applied to zero-valued fields, or a
// *FieldError naming the first invalid field. It is the one place where
// defaults and validation live.
func (c Config) Complete() (Config, error) {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Records == 0 && c.Duration == 0 {
		c.Records = DefaultRecords
	}
	if c.RecordSize == 0 {
		c.RecordSize = DefaultRecordSize
	}
	if c.Acks == "" {
		c.Acks = DefaultAcks
	}
	if c.Acks == "-1" {
		c.Acks = "all"
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	c.Compression = strings.ToLower(c.Compression)
	if c.Producers == 0 {
		c.Producers = DefaultProducers
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Runs == 0 {
		c.Runs = DefaultRuns
	}

	switch {
	case strings.TrimSpace(c.Bootstrap) == "":
		return c, &FieldError{"Bootstrap", `""`, "is required (host:port[,host:port...])"}
	case !validTopic(c.Topic):
		return c, &FieldError{"Topic", fmt.Sprintf("%q", c.Topic), "must be 1-249 characters of [a-zA-Z0-9._-]"}
	case c.Records < 0:
		return c, &FieldError{"Records", c.Records, "must not be negative"}
	case c.Duration < 0:
		return c, &FieldError{"Duration", c.Duration, "must not be negative"}
	case c.Records > 0 && c.Duration > 0:
		return c, &FieldError{"Duration", c.Duration, "cannot be combined with Records"}
	case c.RecordSize < 1 || c.RecordSize > maxRecordSize:
		return c, &FieldError{"RecordSize", c.RecordSize, fmt.Sprintf("must be between 1 and %d", maxRecordSize)}
	case c.Acks != "0" && c.Acks != "1" && c.Acks != "all":
		return c, &FieldError{"Acks", fmt.Sprintf("%q", c.Acks), `must be "0", "1" or "all"`}
	case c.Idempotent && c.Acks != "all":
		return c, &FieldError{"Idempotent", true, `requires Acks "all"`}
	case c.Partitions < 1:
		return c, &FieldError{"Partitions", c.Partitions, "must be at least 1"}
	case c.ReplicationFactor < 0:
		return c, &FieldError{"ReplicationFactor", c.ReplicationFactor, "must be at least 1, or 0 for the cluster's default"}
	case !validTopicConfigs(c.TopicConfigs):
		return c, &FieldError{"TopicConfigs", c.TopicConfigs, "names must be non-empty and values set"}
	case codec(c.Compression) == nil:
		return c, &FieldError{"Compression", fmt.Sprintf("%q", c.Compression), "must be none, gzip, snappy, lz4 or zstd"}
	case c.Producers < 1:
		return c, &FieldError{"Producers", c.Producers, "must be at least 1"}
	case c.BatchMaxBytes < 1024 || c.BatchMaxBytes > 64<<20:
		return c, &FieldError{"BatchMaxBytes", c.BatchMaxBytes, "must be between 1024 and 67108864"}
	case int64(c.RecordSize)+128 > int64(c.BatchMaxBytes):
		return c, &FieldError{"RecordSize", c.RecordSize, fmt.Sprintf("does not fit a batch of BatchMaxBytes %d", c.BatchMaxBytes)}
	case c.MaxInflight < 1:
		return c, &FieldError{"MaxInflight", c.MaxInflight, "must be at least 1"}
	case c.MaxBufferedRecords < 1:
		return c, &FieldError{"MaxBufferedRecords", c.MaxBufferedRecords, "must be at least 1"}
	case c.FetchMaxBytes < 1024:
		return c, &FieldError{"FetchMaxBytes", c.FetchMaxBytes, "must be at least 1024"}
	case c.Mode != ModeProduce && c.Mode != ModeConsume && c.Mode != ModeBoth:
		return c, &FieldError{"Mode", fmt.Sprintf("%q", c.Mode), "must be produce, consume or both"}
	case c.Runs < 1:
		return c, &FieldError{"Runs", c.Runs, "must be at least 1"}
	case c.TransactionalRecords < 0:
		return c, &FieldError{"TransactionalRecords", c.TransactionalRecords, "must not be negative"}
	case c.TransactionalRecords > 0 && c.Acks != "all":
		return c, &FieldError{"TransactionalRecords", c.TransactionalRecords, `requires Acks "all"`}
	case c.TransactionalRecords > 0 && c.Mode != ModeProduce:
		return c, &FieldError{"TransactionalRecords", c.TransactionalRecords, "requires Mode produce (transaction markers take offsets the consume phase would wait for)"}
	}
	return c, nil
}

// seeds splits Bootstrap into franz-go seed brokers.
func (c Config) seeds() []string {
	var out []string
	for _, s := range strings.Split(c.Bootstrap, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// acks maps Acks to the franz-go option.
func (c Config) acks() kgo.Acks {
	switch c.Acks {
	case "0":
		return kgo.NoAck()
	case "all":
		return kgo.AllISRAcks()
	default:
		return kgo.LeaderAck()
	}
}

// codec maps a compression name to franz-go codecs, nil if unknown.
func codec(name string) []kgo.CompressionCodec {
	switch name {
	case "none":
		return []kgo.CompressionCodec{kgo.NoCompression()}
	case "gzip":
		return []kgo.CompressionCodec{kgo.GzipCompression()}
	case "snappy":
		return []kgo.CompressionCodec{kgo.SnappyCompression()}
	case "lz4":
		return []kgo.CompressionCodec{kgo.Lz4Compression()}
	case "zstd":
		return []kgo.CompressionCodec{kgo.ZstdCompression()}
	}
	return nil
}

// validTopicConfigs reports whether every topic config has a name and a
// value. The broker checks the names and values themselves.
func validTopicConfigs(cfgs map[string]string) bool {
	for k, v := range cfgs {
		if strings.TrimSpace(k) == "" || v == "" {
			return false
		}
	}
	return true
}

// validTopic reports whether name is a legal Kafka topic name.
func validTopic(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// TopicConfigsFlag is a flag.Value that adds one "name=value" topic
// config per use to a Config's TopicConfigs, so that a command line can
// say `--topic-config min.insync.replicas=2 --topic-config retention.ms=-1`.
type TopicConfigsFlag map[string]string

// String implements flag.Value, listing the configs in name order.
func (f TopicConfigsFlag) String() string {
	return strings.TrimPrefix(topicConfigs(f), ", ")
}

// Set implements flag.Value.
func (f TopicConfigsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" || v == "" {
		return fmt.Errorf("topic config %q is not name=value", s)
	}
	f[strings.TrimSpace(k)] = v
	return nil
}
