// Package chaos runs a local Sluice cluster of broker processes, kills its brokers with SIGKILL while
// idempotent acks=all producers write sequenced records, and then checks that every acknowledged record
// is still in the log exactly once and in order. It is the engine of `sluice chaos`, and its [Cluster]
// is also the process harness of the cluster tests under test/cluster.
//
// A record's value is "p<producer>/<partition>/<sequence>", the sequence counting the records one
// producer sent to one partition. The checker reads every partition from its start and reports per
// partition: acknowledged-but-lost records (the acknowledged offset no longer holds the acknowledged
// value), duplicated records (a value found at more than one offset) and reordered records (a sequence
// lower than one found earlier in the log for the same producer and partition).
//
// Failover time is measured per killed partition leader: from the SIGKILL to the first acknowledgement of
// a record that was handed to the producer after the kill, on each partition the killed broker led.
package chaos
