// Package txn is Sluice's transaction coordinator, Kafka's TransactionCoordinator:
// one coordinator per broker serves the transactional ids whose
// __transaction_state partition that broker leads.
//
// Every change of a transaction is first written to its __transaction_state
// partition in Kafka's TransactionLogKey/TransactionLogValue format and
// replicated to the partition's ISR (Store.Append), and only then applied in
// memory and answered, so the state survives the loss of the coordinator: the
// broker that leads the partition next replays it (LoadPartition) and resumes
// any commit or abort in flight.
//
// A transaction moves through Kafka's states (State): Empty, Ongoing,
// PrepareCommit or PrepareAbort (the decision is durable; markers are being
// written), CompleteCommit or CompleteAbort, with PrepareEpochFence when a new
// producer instance or the timeout reaper fences an ongoing transaction, and
// Dead for an expired transactional id. While a change is being written the
// transaction has a pending state, and other requests for it are answered
// CONCURRENT_TRANSACTIONS as Kafka does.
//
// Locking: Coordinator.mu guards the partitions and every transaction's
// metadata. It is never held while calling the Store, the MarkerWriter or the
// producer id source.
package txn
