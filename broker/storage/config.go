package storage

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// FlushPolicy says when appended data is forced to stable storage.
type FlushPolicy int

// The flush policies a broker can run with.
const (
	// FlushNone leaves durability to the operating system's page cache and
	// to replication, like Kafka's defaults; rolled segments are still
	// synced in the background.
	FlushNone FlushPolicy = iota
	// FlushInterval has the broker call Log.Flush periodically.
	FlushInterval
	// FlushAlways makes Append return only after an fsync that covers its
	// data; concurrent appends share one fsync (group commit).
	FlushAlways
)

// String returns the policy's configuration name.
func (p FlushPolicy) String() string {
	switch p {
	case FlushNone:
		return "none"
	case FlushInterval:
		return "interval"
	case FlushAlways:
		return "always"
	}
	return fmt.Sprintf("FlushPolicy(%d)", int(p))
}

// ParseFlushPolicy parses "none", "interval" or "always".
func ParseFlushPolicy(s string) (FlushPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none":
		return FlushNone, nil
	case "interval":
		return FlushInterval, nil
	case "always":
		return FlushAlways, nil
	}
	return 0, fmt.Errorf("storage: unknown flush policy %q (want none, interval or always)", s)
}

// Timestamp types, the values of message.timestamp.type.
const (
	CreateTime    = "CreateTime"
	LogAppendTime = "LogAppendTime"
)

// Cleanup policies, the values of cleanup.policy.
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// Config is the per-partition log configuration. Field comments give the
// Kafka topic setting and its default, which DefaultConfig returns.
type Config struct {
	// OnSync, if set, is called with the duration of every fsync of segment
	// data (group commits and flushes), for the broker's fsync latency
	// histogram. It is read once, by Open; SetConfig does not change it.
	OnSync func(time.Duration)
	// SegmentBytes is the size at which a new segment is rolled
	// (segment.bytes, default 1 GiB; at most 2 GiB - 1 because index
	// positions are int32).
	SegmentBytes int64
	// SegmentMs is the age in milliseconds at which a non-empty active
	// segment is rolled (segment.ms, default 7 days).
	SegmentMs int64
	// IndexIntervalBytes is how many log bytes lie between offset index
	// entries (index.interval.bytes, default 4096).
	IndexIntervalBytes int32
	// RetentionMs is how long a segment is kept after its newest
	// timestamp (retention.ms, default 7 days; -1 keeps forever).
	RetentionMs int64
	// RetentionBytes caps the partition size by deleting old segments
	// (retention.bytes, default -1: no cap).
	RetentionBytes int64
	// CleanupPolicy is "delete", "compact" or "compact,delete"
	// (cleanup.policy, default "delete").
	CleanupPolicy string
	// DeleteRetentionMs is how long tombstones survive compaction
	// (delete.retention.ms, default 1 day).
	DeleteRetentionMs int64
	// MinCompactionLagMs keeps segments newer than this out of compaction
	// (min.compaction.lag.ms, default 0).
	MinCompactionLagMs int64
	// MaxMessageBytes is the largest batch accepted (max.message.bytes,
	// default 1048588).
	MaxMessageBytes int32
	// MessageTimestampType is CreateTime or LogAppendTime
	// (message.timestamp.type, default CreateTime).
	MessageTimestampType string
	// Flush is the broker-level flush policy (default FlushNone).
	Flush FlushPolicy
}

// DefaultConfig returns Kafka's defaults for every setting.
func DefaultConfig() Config {
	const day = 24 * 60 * 60 * 1000
	return Config{
		SegmentBytes:         1 << 30,
		SegmentMs:            7 * day,
		IndexIntervalBytes:   4096,
		RetentionMs:          7 * day,
		RetentionBytes:       -1,
		CleanupPolicy:        CleanupDelete,
		DeleteRetentionMs:    day,
		MinCompactionLagMs:   0,
		MaxMessageBytes:      1048588,
		MessageTimestampType: CreateTime,
		Flush:                FlushNone,
	}
}

// Validate reports the first invalid field, named by its Kafka setting.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < 14 || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("storage: segment.bytes %d out of range [14, %d]", c.SegmentBytes, math.MaxInt32)
	case c.SegmentMs <= 0:
		return fmt.Errorf("storage: segment.ms %d must be positive", c.SegmentMs)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("storage: index.interval.bytes %d must not be negative", c.IndexIntervalBytes)
	case c.RetentionMs < -1:
		return fmt.Errorf("storage: retention.ms %d must be -1 or more", c.RetentionMs)
	case c.RetentionBytes < -1:
		return fmt.Errorf("storage: retention.bytes %d must be -1 or more", c.RetentionBytes)
	case c.DeleteRetentionMs < 0:
		return fmt.Errorf("storage: delete.retention.ms %d must not be negative", c.DeleteRetentionMs)
	case c.MinCompactionLagMs < 0:
		return fmt.Errorf("storage: min.compaction.lag.ms %d must not be negative", c.MinCompactionLagMs)
	case c.MaxMessageBytes <= 0:
		return fmt.Errorf("storage: max.message.bytes %d must be positive", c.MaxMessageBytes)
	case c.Flush < FlushNone || c.Flush > FlushAlways:
		return fmt.Errorf("storage: unknown flush policy %d", int(c.Flush))
	}
	switch c.CleanupPolicy {
	case CleanupDelete, CleanupCompact, CleanupCompactDelete, "delete,compact":
	default:
		return fmt.Errorf("storage: cleanup.policy %q must be delete, compact or compact,delete", c.CleanupPolicy)
	}
	switch c.MessageTimestampType {
	case CreateTime, LogAppendTime:
	default:
		return fmt.Errorf("storage: message.timestamp.type %q must be CreateTime or LogAppendTime", c.MessageTimestampType)
	}
	return nil
}

// compact reports whether the policy includes compaction.
func (c Config) compact() bool { return strings.Contains(c.CleanupPolicy, CleanupCompact) }

// deleteRetention reports whether the policy includes time and size retention.
func (c Config) deleteRetention() bool { return strings.Contains(c.CleanupPolicy, CleanupDelete) }
