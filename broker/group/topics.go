package group

import (
	"context"
	"maps"
	"slices"
	"strings"
)

// TopicsChanged tells the coordinator of topics deleted (their topic ID is
// gone, also when a topic of the same name was created again) and of topics
// created or whose partition count changed, as the metadata log shows them. Like Kafka's
// onPartitionsDeleted, the committed offsets of deleted topics are removed, so
// a topic created again under the name is consumed from the reset policy, not
// from offsets of the old one. Unlike Kafka's classic coordinator, groups whose
// consumer members subscribe to such a topic also rebalance at once (as Kafka's
// KIP-848 coordinator does): librdkafka's classic consumer otherwise only
// notices at its periodic metadata refresh (topic.metadata.refresh.interval.ms,
// five minutes), and keeps fetching and committing partitions that no longer
// exist. Until the group has rejoined, its members may not commit offsets of
// a deleted topic (REBALANCE_IN_PROGRESS): their positions belong to the old
// topic, and would otherwise skip records of a topic created again under the
// name. It does not block: the work is done by Run.
func (c *Coordinator) TopicsChanged(deleted, resized []string) {
	if len(deleted) == 0 && len(resized) == 0 {
		return
	}
	c.topicMu.Lock()
	if c.topicsDeleted == nil {
		c.topicsDeleted, c.topicsResized = map[string]bool{}, map[string]bool{}
	}
	for _, t := range deleted {
		c.topicsDeleted[t] = true
	}
	for _, t := range resized {
		c.topicsResized[t] = true
	}
	c.topicMu.Unlock()
	select {
	case c.topicWake <- struct{}{}:
	default:
	}
}

// applyTopicChanges carries out what TopicsChanged recorded, from Run.
func (c *Coordinator) applyTopicChanges(ctx context.Context) {
	c.topicMu.Lock()
	deleted, resized := c.topicsDeleted, c.topicsResized
	c.topicsDeleted, c.topicsResized = nil, nil
	c.topicMu.Unlock()
	if len(deleted) == 0 && len(resized) == 0 {
		return
	}
	groups, _ := c.snapshotGroups()
	for _, g := range groups {
		g.mu.Lock()
		if g.state == stateDead {
			g.mu.Unlock()
			continue
		}
		var hit []string
		for t := range g.subscribed {
			if deleted[t] || resized[t] {
				hit = append(hit, t)
			}
		}
		if len(hit) > 0 && (g.state == stateStable || g.state == stateCompletingRebalance) {
			// First, so commits of the old generation's stale positions are
			// refused from now on.
			slices.Sort(hit)
			g.prepareRebalance(ctx, "metadata of subscribed topics changed: "+strings.Join(hit, ", "))
		}
		for t := range deleted {
			if g.staleTopics == nil {
				g.staleTopics = map[string]int32{}
			}
			g.staleTopics[t] = g.generation
		}
		var gone []topicPartition
		for _, t := range slices.Sorted(maps.Keys(deleted)) {
			for p := range g.offsets[t] {
				gone = append(gone, topicPartition{t, p})
			}
		}
		if len(gone) > 0 {
			if err := g.deleteOffsets(ctx, gone); err == nil {
				g.logInfo("removed offsets of deleted topics", "partitions", len(gone))
			}
		}
		dead := g.state == stateDead
		g.mu.Unlock()
		if dead {
			c.forget(g)
		}
	}
}
