package broker

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

var cleanupPolicyDef = topicConfigDefByName("cleanup.policy")

// recordRules are the per-record checks of Kafka's LogValidator that a topic's
// configs call for; the zero value checks nothing.
type recordRules struct {
	keyed bool // compacted: every record needs a key
	// before and after bound CreateTime timestamps around the broker's clock
	// (message.timestamp.before.max.ms / after.max.ms); <0 leaves them unchecked.
	before, after int64
}

func (r recordRules) any() bool { return r.keyed || r.before >= 0 || r.after >= 0 }

var (
	timestampTypeDef   = topicConfigDefByName("message.timestamp.type")
	timestampBeforeDef = topicConfigDefByName("message.timestamp.before.max.ms")
	timestampAfterDef  = topicConfigDefByName("message.timestamp.after.max.ms")
	timestampDiffDef   = topicConfigDefByName("message.timestamp.difference.max.ms")
)

// recordRulesOf reads the topic's configs that need records checked one by one;
// on the produce path, so it does not copy the configs.
func (b *Broker) recordRulesOf(t *topic) recordRules {
	b.mu.RLock()
	defer b.mu.RUnlock()
	get := func(d *topicConfigDef) string { v, _ := b.topicConfigValue(t.configs, d); return v }
	num := func(d *topicConfigDef) int64 {
		n, err := strconv.ParseInt(get(d), 10, 64)
		if err != nil {
			return maxInt64
		}
		return n
	}
	r := recordRules{before: -1, after: -1}
	for _, p := range strings.Split(get(cleanupPolicyDef), ",") {
		r.keyed = r.keyed || strings.TrimSpace(p) == "compact"
	}
	if get(timestampTypeDef) == "CreateTime" {
		// Kafka 3.6+ (KIP-937): the deprecated difference bounds both sides
		// unless before / after are set.
		diff := num(timestampDiffDef)
		r.before, r.after = num(timestampBeforeDef), num(timestampAfterDef)
		if r.before == maxInt64 {
			r.before = diff
		}
		if r.after == maxInt64 {
			r.after = diff
		}
		if r.before == maxInt64 {
			r.before = -1
		}
		if r.after == maxInt64 {
			r.after = -1
		}
	}
	return r
}

// checkRecords applies a topic's record rules as Kafka's LogValidator does:
// keyless records of a compacted topic get INVALID_RECORD, CreateTime
// timestamps outside [now - before, now + after] INVALID_TIMESTAMP, with one
// record error per record (its index in the batch) from Produce v8 on. Nothing of
// the partition is appended. Batches that do not decode are left to the log,
// which answers CORRUPT_MESSAGE.
func checkRecords(version int16, rules recordRules, topicName string, partition int32, records []byte, now time.Time, sp *kmsg.ProduceResponseTopicPartition) error {
	var errs []kmsg.ProduceResponseTopicPartitionErrorRecord
	keyless := false
	index := int32(0)
	nowMs := now.UnixMilli()
	add := func(msg string) {
		e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		e.RelativeOffset, e.ErrorMessage = index, &msg
		errs = append(errs, e)
	}
	for b := records; len(b) > 0; {
		h, err := record.Validate(b)
		if err != nil {
			return nil
		}
		recs, err := record.Records(b)
		if err != nil {
			return nil
		}
		for _, r := range recs {
			ts := h.BaseTimestamp + r.TimestampDelta64
			switch {
			case rules.keyed && r.Key == nil:
				keyless = true
				add(fmt.Sprintf("Compacted topic cannot accept message without key in topic partition %s-%d.", topicName, partition))
			case ts != -1 && ((rules.before >= 0 && ts < nowMs-rules.before) || (rules.after >= 0 && ts > nowMs+rules.after)):
				lo, hi := int64(-1), int64(-1)
				if rules.before >= 0 {
					lo = nowMs - rules.before
				}
				if rules.after >= 0 {
					hi = nowMs + rules.after
				}
				add(fmt.Sprintf("Timestamp %d of message with offset %d is out of range. The timestamp should be within [%d, %d]", ts, index, lo, hi))
			}
			index++
		}
		b = b[h.Size():]
	}
	if len(errs) == 0 {
		return nil
	}
	if version >= 8 {
		sp.ErrorRecords = errs
	}
	var first []string
	for _, e := range errs[:min(len(errs), 3)] {
		first = append(first, fmt.Sprintf("ApiRecordError(batchIndex=%d, message=%s)", e.RelativeOffset, *e.ErrorMessage))
	}
	code := kerr.InvalidTimestamp
	if keyless {
		code = kerr.InvalidRecord
	}
	return kafkaErr(code, fmt.Sprintf("One or more records have been rejected due to %d record errors in total, and only showing the first three errors at most: [%s]",
		len(errs), strings.Join(first, ", ")))
}
