// Package clienttest runs real Kafka clients (franz-go, IBM/sarama,
// segmentio/kafka-go and librdkafka through kcat) against a Sluice broker,
// in-process and as a separate bin/sluice process. It holds tests only.
//
// The harness that starts the broker lives in harness_sluice_test.go. Building
// with -tags kfake swaps in franz-go's in-memory kfake cluster instead, which
// is how these tests were calibrated before the broker existed and how a
// failing case can be checked against a second implementation; tests that
// need bin/sluice or Sluice-specific behaviour skip under that tag.
package clienttest
