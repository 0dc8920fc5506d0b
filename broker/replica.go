package broker

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Replication follows Kafka's ISR model. The leader tracks each follower's log end
// offset from its fetches; the high watermark is the smallest log end offset over
// the ISR (and ISR additions in flight), and only what is below it is visible to
// consumers and acknowledges acks=all produces. Followers that stop catching up for
// replica.lag.time.max.ms leave the ISR, and rejoin once they reach the high
// watermark; the controller records each change (AlterPartition).

// becomeLeader starts leading p at its current leader epoch.
func (b *Broker) becomeLeader(ctx context.Context, p *partition) {
	b.fetchers.remove(p)
	now := time.Now()
	p.mu.Lock()
	p.epochStartOffset = p.log.LogEndOffset()
	p.followers = make(map[int32]*followerState)
	for _, r := range p.replicas {
		if r != b.cfg.NodeID {
			p.followers[r] = &followerState{leo: -1, lastCaughtUp: now}
		}
	}
	epoch := p.leaderEpoch
	p.mu.Unlock()
	b.logger.Debug("leading partition", "topic", p.topic.name, "partition", p.index, "leader_epoch", epoch)
	p.maybeAdvanceHW()
	p.notifyAppend()
	if p.topic.name == offsetsTopic {
		if err := b.groups.LoadPartition(ctx, p.index); err != nil {
			b.logger.Warn("loading groups", "partition", p.index, "err", err)
		}
	}
	b.onTxnLeadership(p, true)
}

// syncFollowersLocked makes a leader's follower states match its replicas after a
// reassignment changed them at the same leader epoch: adding replicas get a state
// (they catch up and join the ISR like any follower), removed ones lose theirs.
// p.mu must be held.
func (p *partition) syncFollowersLocked() {
	now := time.Now()
	for r := range p.followers {
		if !slices.Contains(p.replicas, r) {
			delete(p.followers, r)
		}
	}
	for _, r := range p.replicas {
		if r != p.b.cfg.NodeID && p.followers[r] == nil {
			p.followers[r] = &followerState{leo: -1, lastCaughtUp: now}
		}
	}
}

// becomeFollower makes p follow its leader, truncating divergent entries first.
func (b *Broker) becomeFollower(p *partition) {
	leader, epoch, _ := p.state()
	p.notifyAppend() // acks=all waiters learn they lost leadership
	if p.topic.name == offsetsTopic {
		b.groups.UnloadPartition(p.index)
	}
	b.onTxnLeadership(p, false)
	if leader < 0 {
		b.fetchers.remove(p)
		b.logger.Info("partition offline", "topic", p.topic.name, "partition", p.index, "leader_epoch", epoch)
		return
	}
	b.logger.Debug("following partition", "topic", p.topic.name, "partition", p.index, "leader", leader, "leader_epoch", epoch)
	b.fetchers.add(p, leader)
}

// maximalISR is the ISR including additions not yet committed: the high watermark
// must wait for a replica as soon as it may be in the ISR.
func (p *partition) maximalISR() []int32 {
	isr := slices.Clone(p.isr)
	for _, r := range p.pendingISR {
		if !slices.Contains(isr, r) {
			isr = append(isr, r)
		}
	}
	return isr
}

// maybeAdvanceHW raises the leader's high watermark to the smallest log end offset
// over the maximal ISR, and wakes waiters when it moves.
func (p *partition) maybeAdvanceHW() {
	p.mu.Lock()
	if !p.isLeader {
		p.mu.Unlock()
		return
	}
	hw := p.log.LogEndOffset()
	for _, r := range p.maximalISR() {
		if r == p.b.cfg.NodeID {
			continue
		}
		f := p.followers[r]
		if f == nil || f.leo < 0 {
			hw = min(hw, p.hw.Load())
			continue
		}
		hw = min(hw, f.leo)
	}
	moved := hw > p.hw.Load()
	if moved {
		p.hw.Store(hw)
	}
	p.mu.Unlock()
	if moved {
		p.notifyAppend()
	}
}

// onReplicaFetch records a follower's fetch at fetchOffset: its log end offset and
// whether it is caught up (Kafka's rules: it has everything the leader had at this
// fetch, or at its previous fetch).
func (p *partition) onReplicaFetch(ctx context.Context, replica int32, fetchOffset int64) error {
	now := time.Now()
	leo := p.log.LogEndOffset()
	p.mu.Lock()
	f := p.followers[replica]
	if f == nil {
		p.mu.Unlock()
		return kerr.NotLeaderForPartition
	}
	if fetchOffset > leo {
		// Beyond our log: the follower holds records we do not (it led before and
		// has not truncated yet). Its offset says nothing of what it has of ours;
		// the read answers OFFSET_OUT_OF_RANGE and it truncates.
		p.mu.Unlock()
		return nil
	}
	if fetchOffset >= leo {
		f.lastCaughtUp = now
	} else if fetchOffset >= f.lastFetchLEO && !f.lastFetch.IsZero() {
		f.lastCaughtUp = f.lastFetch
	}
	f.leo, f.lastFetch, f.lastFetchLEO = fetchOffset, now, leo
	var expand []int32
	switch {
	case p.pendingISR != nil:
		expand = p.retryISRLocked()
	case !slices.Contains(p.isr, replica) && fetchOffset >= p.hw.Load() &&
		fetchOffset >= p.epochStartOffset && p.b.quorum.Image().Live(replica):
		expand = append(slices.Clone(p.isr), replica)
		slices.Sort(expand)
		p.askISRLocked(expand)
	}
	p.mu.Unlock()
	p.maybeAdvanceHW()
	if expand != nil {
		p.b.isrWG.Go(func() { p.b.changeISR(ctx, p, expand) })
	}
	return nil
}

// askISRLocked makes isr the pending ISR change, about to be sent. p.mu must be held.
func (p *partition) askISRLocked(isr []int32) {
	p.pendingISR, p.pendingBase = isr, p.partitionEpoch
	p.isrInFlight, p.isrRetry = true, false
}

// retryISRLocked returns the pending ISR change to send again if its last
// attempt ended without a known outcome (its answer lost or timed out), else
// nil. p.mu must be held.
func (p *partition) retryISRLocked() []int32 {
	if p.pendingISR == nil || p.isrInFlight || !p.isrRetry {
		return nil
	}
	p.isrInFlight, p.isrRetry = true, false
	return slices.Clone(p.pendingISR)
}

// clearPendingISRLocked forgets the pending ISR change. p.mu must be held.
func (p *partition) clearPendingISRLocked() {
	p.pendingISR, p.pendingBase, p.isrInFlight, p.isrRetry = nil, 0, false, false
}

// isrChangeFailedLocked settles a pending ISR change whose AlterPartition failed with
// err. Only an answer by which the controller says the change was not made at the
// partition epoch it was asked at (INELIGIBLE_REPLICA, INVALID_REQUEST) drops it,
// as Kafka does: after a lost or timed-out answer the change may have been
// committed, so it stays pending (the high watermark waits for an added replica
// the controller may count in sync, which could otherwise be elected without
// records acknowledged meanwhile) and is asked again; after an answer that the
// partition moved on (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, a new leader,
// the topic gone) the next metadata image settles it. p.mu must be held.
func (p *partition) isrChangeFailedLocked(isr []int32, err error) {
	if !slices.Equal(p.pendingISR, isr) {
		return // settled meanwhile
	}
	p.isrInFlight = false
	switch {
	case errors.Is(err, kerr.IneligibleReplica), errors.Is(err, kerr.InvalidRequest):
		p.clearPendingISRLocked()
	case errors.Is(err, kerr.FencedLeaderEpoch), errors.Is(err, kerr.InvalidUpdateVersion),
		errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.UnknownTopicID), errors.Is(err, kerr.UnknownTopicOrPartition):
		p.isrRetry = false // the controller moved on: the image brings the outcome
	default:
		p.isrRetry = true
	}
}

// checkFollower returns NOT_LEADER_OR_FOLLOWER unless replica is a follower this
// leader knows: a replica fetch whose first round was refused (a broker that
// applied a reassignment before its leader did) must not be served data in a
// later round of its long poll.
func (p *partition) checkFollower(replica int32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.followers[replica] == nil {
		return kerr.NotLeaderForPartition
	}
	return nil
}

// checkISR shrinks the ISR of a led partition by the followers that have not caught
// up within replica.lag.time.max.ms.
func (p *partition) checkISR(ctx context.Context, lag time.Duration) {
	now := time.Now()
	p.mu.Lock()
	if !p.isLeader {
		p.mu.Unlock()
		return
	}
	if p.pendingISR != nil {
		retry := p.retryISRLocked()
		p.mu.Unlock()
		if retry != nil {
			p.b.changeISR(ctx, p, retry)
		}
		return
	}
	shrunk := slices.DeleteFunc(slices.Clone(p.isr), func(r int32) bool {
		if r == p.b.cfg.NodeID {
			return false
		}
		f := p.followers[r]
		return f == nil || now.Sub(f.lastCaughtUp) > lag
	})
	if len(shrunk) == len(p.isr) {
		p.mu.Unlock()
		return
	}
	p.askISRLocked(shrunk)
	p.mu.Unlock()
	p.b.changeISR(ctx, p, shrunk)
}

// changeISR asks the controller for a new ISR and applies the answer; the metadata
// image confirms it later too. ctx is the broker's run (the ISR check loop) or the
// follower's connection (an expansion its fetch started): either ending abandons
// the request.
func (b *Broker) changeISR(ctx context.Context, p *partition, isr []int32) {
	p.mu.Lock()
	epoch, pepoch := p.leaderEpoch, p.partitionEpoch
	p.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := b.alterPartition(cctx, p.topic.id, p.index, epoch, pepoch, isr)
	p.mu.Lock()
	if err != nil {
		p.isrChangeFailedLocked(isr, err)
		p.mu.Unlock()
		if ctx.Err() == nil {
			b.logger.Debug("ISR change refused", "topic", p.topic.name, "partition", p.index, "isr", isr, "err", err)
		}
		return
	}
	if res.LeaderEpoch == p.leaderEpoch && res.PartitionEpoch > p.partitionEpoch {
		switch {
		case len(res.ISR) < len(p.isr):
			b.metrics.isrShrinks.Inc()
		case len(res.ISR) > len(p.isr):
			b.metrics.isrExpands.Inc()
		}
		p.isr, p.partitionEpoch = res.ISR, res.PartitionEpoch
	}
	if slices.Equal(p.pendingISR, isr) {
		p.clearPendingISRLocked()
	}
	p.mu.Unlock()
	b.logger.Info("ISR changed", "topic", p.topic.name, "partition", p.index, "isr", res.ISR)
	p.maybeAdvanceHW()
}

// runISRChecks shrinks ISRs of led partitions periodically.
func (b *Broker) runISRChecks(ctx context.Context) {
	lag := time.Duration(b.cfg.ReplicaLagTimeMaxMs) * time.Millisecond
	t := time.NewTicker(min(lag/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, p := range b.allPartitions() {
				p.checkISR(ctx, lag)
			}
		}
	}
}

var minISRDef = topicConfigDefByName("min.insync.replicas")

// minISR is the topic's min.insync.replicas; it is read on every acks=all
// produce and per partition at scrape time, so it does not copy the configs.
func (b *Broker) minISR(t *topic) int {
	b.mu.RLock()
	v, _ := b.topicConfigValue(t.configs, minISRDef)
	b.mu.RUnlock()
	n, _ := strconv.Atoi(v)
	return max(n, 1)
}

// waitReplicated blocks an acks=all produce until the high watermark passes
// target, leadership is lost, or the timeout ends.
func (p *partition) waitReplicated(ctx context.Context, target int64, timeout time.Duration, minISR int) error {
	ch := make(chan struct{}, 1)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	defer p.removeWaiter(ch)
	for {
		p.addWaiter(ch)
		p.mu.Lock()
		isLeader, deleted, moved, isrLen := p.isLeader, p.deleted, p.movedAway, len(p.isr)
		p.mu.Unlock()
		switch {
		case deleted && moved:
			return kafkaErr(kerr.NotLeaderForPartition, "the partition moved off this broker before the batch was replicated")
		case deleted:
			return kerr.UnknownTopicOrPartition
		case !isLeader:
			return kafkaErr(kerr.NotLeaderForPartition, "leadership moved before the batch was replicated")
		case p.hw.Load() >= target:
			if isrLen < minISR {
				return kerr.NotEnoughReplicasAfterAppend
			}
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return kerr.RequestTimedOut
		case <-ctx.Done():
			return errors.Join(kerr.RequestTimedOut, ctx.Err())
		}
	}
}
