// Package metadata is Sluice's replicated cluster metadata log, modelled on Kafka's KRaft: every broker is
// a voter of a hashicorp/raft quorum whose log holds the cluster metadata (brokers, topics, partition
// leaders and ISRs, topic configs, producer-id blocks) as versioned JSON records, applied in order into an
// immutable [Image]. The Raft leader is the active controller: it alone proposes records, and it runs the
// controller loop that fences brokers whose sessions expire, elects partition leaders and restores
// preferred leaders.
//
// Readers call [Quorum.Image] and never lock: every applied log entry builds a new image (copy on write,
// untouched topics shared with the previous image) that is swapped in atomically. Images and everything
// reachable from them must be treated as read-only.
//
// Lock ordering: Quorum.ctlMu (controller decisions and proposals) is taken before anything inside
// hashicorp/raft (Apply, Barrier) and before sessions.mu (broker sessions), which is a leaf: a live
// broker's heartbeat takes only sessions.mu, so it never waits for a proposal. The FSM goroutine of raft
// never takes ctlMu, so a proposal waiting for its entry to be applied under ctlMu cannot deadlock.
package metadata
