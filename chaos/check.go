package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxExamples bounds the examples kept per kind of violation and partition.
const maxExamples = 5

// LogRecord is a record read back from a partition.
type LogRecord struct {
	Offset int64
	Value  []byte
}

// PartitionCheck is the verdict on one partition.
type PartitionCheck struct {
	Partition int32
	// Acked is the number of acknowledged records; InLog the records read back.
	Acked, InLog int
	// Lost counts acknowledged values found nowhere in the partition.
	Lost int
	// Moved counts acknowledged values found, but not at the acknowledged offset.
	Moved int
	// Duplicated counts the extra copies of values found more than once.
	Duplicated int
	// Reordered counts records whose sequence is lower than one before it in the log from the same
	// producer.
	Reordered int
	// Unacked counts values in the log that were never acknowledged (failed or timed-out produces that
	// landed anyway; allowed).
	Unacked int
	// Foreign counts records that no chaos producer wrote (or wrote to another partition).
	Foreign int
	// Examples describe the first violations.
	Examples []string
}

// Violations is the number of broken promises: lost, moved, duplicated, reordered or foreign records.
func (pc PartitionCheck) Violations() int {
	return pc.Lost + pc.Moved + pc.Duplicated + pc.Reordered + pc.Foreign
}

// CheckPartition compares the acknowledgements of one partition with its log, read from the start
// in offset order.
func CheckPartition(partition int32, acks []Ack, log []LogRecord) PartitionCheck {
	pc := PartitionCheck{Partition: partition, Acked: len(acks), InLog: len(log)}
	example := func(format string, args ...any) {
		if len(pc.Examples) < 4*maxExamples {
			pc.Examples = append(pc.Examples, fmt.Sprintf(format, args...))
		}
	}
	acked := make(map[Value]int64, len(acks))
	for _, a := range acks {
		acked[a.Value] = a.Offset
	}
	at := make(map[int64]string, len(log))
	seen := make(map[Value][]int64, len(log))
	maxSeq := map[int]int64{}
	for _, r := range log {
		at[r.Offset] = string(r.Value)
		v, ok := ParseValue(r.Value)
		if !ok || v.Partition != partition {
			pc.Foreign++
			example("offset %d holds a foreign value %q", r.Offset, r.Value)
			continue
		}
		seen[v] = append(seen[v], r.Offset)
		if n := len(seen[v]); n > 1 {
			pc.Duplicated++
			example("%s duplicated: at offsets %v", v, seen[v])
			continue
		}
		if _, ok := acked[v]; !ok {
			pc.Unacked++
		}
		if m, ok := maxSeq[v.Producer]; ok && v.Seq < m {
			pc.Reordered++
			example("%s at offset %d after sequence %d of the same producer", v, r.Offset, m)
		}
		maxSeq[v.Producer] = max(maxSeq[v.Producer], v.Seq)
	}
	for _, a := range acks {
		offs := seen[a.Value]
		switch {
		case len(offs) == 0:
			pc.Lost++
			if got, ok := at[a.Offset]; ok {
				example("%s acknowledged at offset %d is lost; the offset holds %s", a.Value, a.Offset, got)
			} else {
				example("%s acknowledged at offset %d is lost; the offset is not in the log", a.Value, a.Offset)
			}
		case offs[0] != a.Offset:
			pc.Moved++
			example("%s acknowledged at offset %d is at offset %d", a.Value, a.Offset, offs[0])
		}
	}
	return pc
}

// ReadPartitions reads every partition of topic from its start to the end offset listed when it
// starts, within timeout.
func ReadPartitions(ctx context.Context, seeds []string, topic string, timeout time.Duration) (map[int32][]LogRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(admCl)
	var ends kadm.ListedOffsets
	err = WaitFor(ctx, timeout, "end offsets of "+topic, func(ctx context.Context) (bool, error) {
		ends, err = adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		return err == nil, err
	})
	admCl.Close()
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		offsets[o.Partition] = kgo.NewOffset().AtStart()
	})
	logs := make(map[int32][]LogRecord, len(want))
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	if done() {
		return logs, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var lastErr error // the client retries retriable errors (a leader moving); kept for the timeout message
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w; read up to %v of end offsets %v; last fetch error: %v", topic, ctx.Err(), next, want, lastErr)
		}
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			lastErr = fmt.Errorf("partition %d: %w", p, err)
			// A Kafka error the broker says is final (authorization, say) cannot go away by waiting.
			if ke := (*kerr.Error)(nil); errors.As(err, &ke) && !ke.Retriable {
				fatal = lastErr
			}
		})
		if fatal != nil {
			return nil, fmt.Errorf("read %s: %w", topic, fatal)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				logs[r.Partition] = append(logs[r.Partition], LogRecord{Offset: r.Offset, Value: r.Value})
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
	}
	for p := range logs {
		sort.Slice(logs[p], func(i, j int) bool { return logs[p][i].Offset < logs[p][j].Offset })
	}
	return logs, nil
}

// Check is the verdict on a whole topic.
type Check struct {
	// Partitions are the per-partition verdicts in partition order.
	Partitions []PartitionCheck
	// Acked, InLog, Lost, Moved, Duplicated, Reordered, Unacked and Foreign sum the partitions.
	Acked, InLog, Lost, Moved, Duplicated, Reordered, Unacked, Foreign int
}

// Violations is the number of broken promises over all partitions.
func (c Check) Violations() int { return c.Lost + c.Moved + c.Duplicated + c.Reordered + c.Foreign }

// CheckTopic checks every partition of a topic.
func CheckTopic(partitions int32, acks map[int32][]Ack, logs map[int32][]LogRecord) Check {
	var c Check
	for p := int32(0); p < partitions; p++ {
		pc := CheckPartition(p, acks[p], logs[p])
		c.Partitions = append(c.Partitions, pc)
		c.Acked += pc.Acked
		c.InLog += pc.InLog
		c.Lost += pc.Lost
		c.Moved += pc.Moved
		c.Duplicated += pc.Duplicated
		c.Reordered += pc.Reordered
		c.Unacked += pc.Unacked
		c.Foreign += pc.Foreign
	}
	return c
}
