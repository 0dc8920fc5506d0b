package broker

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

var cleanupPolicyDef = topicConfigDefByName("cleanup.policy")

// compacted reports whether the topic's cleanup.policy includes compact; read on
// the produce path, so it does not copy the configs.
func (b *Broker) compacted(t *topic) bool {
	b.mu.RLock()
	v, _ := b.topicConfigValue(t.configs, cleanupPolicyDef)
	b.mu.RUnlock()
	for _, p := range strings.Split(v, ",") {
		if strings.TrimSpace(p) == "compact" {
			return true
		}
	}
	return false
}

// checkKeyedRecords refuses records without a key for a compacted topic, as
// Kafka's LogValidator does: INVALID_RECORD for the partition, with one record
// error per keyless record (its index in the batch) from Produce v8 on. Nothing
// of the partition is appended. Batches that do not decode are left to the log,
// which answers CORRUPT_MESSAGE.
func checkKeyedRecords(version int16, topicName string, partition int32, records []byte, sp *kmsg.ProduceResponseTopicPartition) error {
	var errs []kmsg.ProduceResponseTopicPartitionErrorRecord
	index := int32(0)
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
			if r.Key == nil {
				msg := fmt.Sprintf("Compacted topic cannot accept message without key in topic partition %s-%d.", topicName, partition)
				e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
				e.RelativeOffset, e.ErrorMessage = index, &msg
				errs = append(errs, e)
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
	return kafkaErr(kerr.InvalidRecord, fmt.Sprintf("One or more records have been rejected due to %d record errors in total, and only showing the first three errors at most: [%s]",
		len(errs), strings.Join(first, ", ")))
}
