// Package group implements Kafka's classic consumer group coordinator: the
// JoinGroup/SyncGroup/Heartbeat/LeaveGroup rebalance protocol, offset commits
// and fetches, and the admin APIs over groups (DescribeGroups, ListGroups,
// DeleteGroups, OffsetDelete).
//
// The broker's request layer decodes a request, asks [Coordinator.IsCoordinator]
// whether this broker coordinates the group, and passes the request to the
// matching method, which returns the response of the same version with Kafka
// error codes filled in. Durable state lives in the __consumer_offsets topic,
// reached through the [Store] interface, in the record formats Kafka uses
// (kmsg.OffsetCommitKey/Value and kmsg.GroupMetadataKey/Value), so a log
// written by Sluice replays the same way as one written by Kafka.
//
// # State machine
//
// A group moves Empty -> PreparingRebalance -> CompletingRebalance -> Stable,
// and back to PreparingRebalance whenever membership or subscriptions change.
// Dead is terminal: the group was deleted, expired or unloaded. The rules follow
// Kafka's GroupCoordinator (Kafka 2.8 to 3.x, before KIP-848), including
// KIP-394 (MEMBER_ID_REQUIRED), KIP-345 (static membership) and KIP-814
// (SkipAssignment for a rejoining static leader).
//
// # Timers
//
// Nothing in a group runs on its own goroutine. Every deadline (member
// sessions, the join window, the sync window, pending member ids) is armed on a
// single heap owned by [Coordinator.Run], which wakes up at the earliest one and
// re-examines that group. Run must be running for timeouts to fire and for
// rebalances that wait on the initial rebalance delay to complete.
//
// # Lock ordering
//
// Three kinds of mutex exist and are always taken in this order:
//
//  1. Coordinator.mu guards the partition table and the group map.
//  2. group.mu guards everything inside one group. At most one group lock is
//     held at a time.
//  3. Coordinator.timerMu guards the timer heap and each group's timerAt; it is
//     a leaf and nothing is called while holding it.
//
// Coordinator.mu is never acquired while a group lock is held: code that must
// drop a group from the map marks it dead under group.mu, unlocks, and then
// removes it under Coordinator.mu if the map still points at it.
// Store.Append is called with one group lock held (and never with
// Coordinator.mu or timerMu held), so a Store must not call back into the
// Coordinator.
package group
