package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// fetchers are the follower side of replication: one goroutine per leader broker
// fetches every partition this broker follows from it, like Kafka's
// ReplicaFetcherThread.
type fetchers struct {
	b *Broker

	mu     sync.Mutex
	byPart map[*partition]*fetcher
	byLead map[int32]*fetcher
	wg     sync.WaitGroup
	ctx    context.Context
}

// fetcher fetches from one leader.
type fetcher struct {
	leader int32
	cancel context.CancelFunc

	mu    sync.Mutex
	parts map[*partition]*fetchState
	wake  chan struct{}
}

// fetchState is a followed partition: truncating until its log matches the
// leader's at the leader epoch it follows.
type fetchState struct {
	epoch      int32
	truncating bool
	// delayedUntil: the leader answered an error for the partition, which is
	// left out of fetches until then (Kafka's replica.fetch.backoff.ms), so
	// one failing partition does not make every fetch of its fetcher return
	// at once while the others have nothing new (a busy loop, or the 100ms
	// pause of throttled fetches that held back the in-sync partitions).
	delayedUntil time.Time
}

// replicaFetchBackoff is how long a partition whose fetch failed waits before
// it is fetched again; a new image (a new leader epoch) fetches it at once.
const replicaFetchBackoff = 250 * time.Millisecond

func (fs *fetchers) init(b *Broker) {
	fs.b = b
	fs.byPart = map[*partition]*fetcher{}
	fs.byLead = map[int32]*fetcher{}
}

// start lets fetchers run under ctx; partitions added before run on it too.
func (fs *fetchers) start(ctx context.Context) {
	fs.mu.Lock()
	fs.ctx = ctx
	for _, f := range fs.byLead {
		fs.launch(f)
	}
	fs.mu.Unlock()
}

func (fs *fetchers) launch(f *fetcher) {
	ctx, cancel := context.WithCancel(fs.ctx)
	f.cancel = cancel
	fs.wg.Add(1)
	go func() {
		defer fs.wg.Done()
		fs.b.runFetcher(ctx, f)
	}()
}

// add makes p fetched from leader, starting with truncation.
func (fs *fetchers) add(p *partition, leader int32) {
	_, epoch, _ := p.state()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if old := fs.byPart[p]; old != nil && old.leader != leader {
		fs.removeLocked(p)
	}
	f := fs.byLead[leader]
	if f == nil {
		f = &fetcher{leader: leader, parts: map[*partition]*fetchState{}, wake: make(chan struct{}, 1)}
		fs.byLead[leader] = f
		if fs.ctx != nil {
			fs.launch(f)
		}
	}
	f.mu.Lock()
	f.parts[p] = &fetchState{epoch: epoch, truncating: true}
	f.mu.Unlock()
	fs.byPart[p] = f
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// remove stops fetching p.
func (fs *fetchers) remove(p *partition) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.removeLocked(p)
}

func (fs *fetchers) removeLocked(p *partition) {
	f := fs.byPart[p]
	if f == nil {
		return
	}
	delete(fs.byPart, p)
	f.mu.Lock()
	delete(f.parts, p)
	empty := len(f.parts) == 0
	f.mu.Unlock()
	if empty {
		delete(fs.byLead, f.leader)
		if f.cancel != nil {
			f.cancel()
		}
	}
}

// wait returns when every fetcher has stopped; their ctx must be done.
func (fs *fetchers) wait() { fs.wg.Wait() }

// runFetcher is one leader's fetch loop.
func (b *Broker) runFetcher(ctx context.Context, f *fetcher) {
	backoff := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
			return true
		}
	}
	for ctx.Err() == nil {
		f.mu.Lock()
		var truncating, fetching []*partition
		now := time.Now()
		var nextDue time.Time // of the first delayed partition
		for p, st := range f.parts {
			switch {
			case st.delayedUntil.After(now):
				if nextDue.IsZero() || st.delayedUntil.Before(nextDue) {
					nextDue = st.delayedUntil
				}
			case st.truncating:
				truncating = append(truncating, p)
			default:
				fetching = append(fetching, p)
			}
		}
		f.mu.Unlock()
		if len(truncating)+len(fetching) == 0 {
			var due <-chan time.Time
			var t *time.Timer
			if !nextDue.IsZero() {
				t = time.NewTimer(time.Until(nextDue))
				due = t.C
			}
			select {
			case <-ctx.Done():
			case <-f.wake:
			case <-due:
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		peer, err := b.peerFor(f.leader)
		if err != nil {
			if !backoff() {
				return
			}
			continue
		}
		if len(truncating) > 0 {
			if err := b.truncateFollowers(ctx, peer, f, truncating); err != nil {
				if !backoff() {
					return
				}
				continue
			}
		}
		if len(fetching) > 0 {
			if err := b.fetchFromLeader(ctx, peer, f, fetching); err != nil {
				if ctx.Err() == nil {
					b.logger.Debug("replica fetch failed", "leader", f.leader, "err", err)
				}
				if !backoff() {
					return
				}
			}
		}
	}
}

// truncateFollowers asks the leader where each partition's latest local epoch ends
// (OffsetForLeaderEpoch) and truncates what diverges, Kafka's KIP-101 rule.
func (b *Broker) truncateFollowers(ctx context.Context, peer *peer, f *fetcher, parts []*partition) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 3
	req.ReplicaID = b.cfg.NodeID
	byTopic := map[string]*kmsg.OffsetForLeaderEpochRequestTopic{}
	var order []string
	for _, p := range parts {
		rt := byTopic[p.topic.name]
		if rt == nil {
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = p.topic.name
			rt = &t
			byTopic[p.topic.name] = rt
			order = append(order, p.topic.name)
		}
		_, epoch, _ := p.state()
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.index, epoch, p.log.LatestEpoch()
		rt.Partitions = append(rt.Partitions, rp)
	}
	for _, name := range order {
		req.Topics = append(req.Topics, *byTopic[name])
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kresp, err := peer.request(rctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			p := b.partitionOf(st.Topic, sp.Partition)
			if p == nil {
				continue
			}
			if sp.ErrorCode != 0 {
				// Retried after the backoff; a new image may move it.
				f.mu.Lock()
				if fs := f.parts[p]; fs != nil {
					fs.delayedUntil = time.Now().Add(replicaFetchBackoff)
				}
				f.mu.Unlock()
				continue
			}
			leo := p.log.LogEndOffset()
			to := leo
			switch {
			case p.log.LatestEpoch() < 0:
				// Nothing of ours carries an epoch: nothing can diverge.
			case sp.LeaderEpoch >= 0 && sp.EndOffset >= 0:
				// The leader's answer is the end of the largest epoch at most
				// ours; our own end for that epoch bounds it too.
				_, ours := p.log.EndOffsetForEpoch(sp.LeaderEpoch)
				to = min(leo, sp.EndOffset, ours)
			default:
				// The leader knows no epoch at or below ours (Kafka's
				// UNDEFINED_EPOCH_OFFSET): keep what is committed, as Kafka
				// does, and let the fetch settle the rest.
				to = min(leo, p.hw.Load())
			}
			if to < leo {
				b.logger.Info("truncating divergent log", "topic", p.topic.name, "partition", p.index, "from", leo, "to", to)
				if err := p.log.TruncateTo(to); err != nil {
					b.logger.Error("truncating", "topic", p.topic.name, "partition", p.index, "err", err)
					continue
				}
				if p.hw.Load() > to {
					p.hw.Store(to)
				}
			}
			f.mu.Lock()
			if fs := f.parts[p]; fs != nil {
				fs.truncating = false
			}
			f.mu.Unlock()
		}
	}
	return nil
}

// fetchFromLeader sends one replica fetch and appends what comes back.
func (b *Broker) fetchFromLeader(ctx context.Context, peer *peer, f *fetcher, parts []*partition) error {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = b.cfg.NodeID
	req.MaxWaitMillis = 250
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	req.SessionID, req.SessionEpoch = 0, -1
	// Throttled replicas (throttle.go) are left out while the follower throttle
	// is used up; if that leaves nothing, wait until it is not.
	now := time.Now()
	over, wait := b.throttles.follower.exceeded(now)
	throttled := map[*partition]bool{}
	if b.throttles.follower.limited() {
		kept := parts[:0:0]
		for _, p := range parts {
			if b.replicaThrottled(p, b.cfg.NodeID, b.cfg.NodeID, followerThrottledReplicasDef) {
				throttled[p] = true
				if over {
					continue
				}
			}
			kept = append(kept, p)
		}
		parts = kept
	}
	if len(parts) == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(min(wait, time.Second)):
		}
		return nil
	}
	byTopic := map[string]int{}
	for _, p := range parts {
		i, ok := byTopic[p.topic.name]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = p.topic.name
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[p.topic.name] = i
		}
		_, epoch, _ := p.state()
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.index
		rp.CurrentLeaderEpoch = epoch
		rp.FetchOffset = p.log.LogEndOffset()
		rp.LastFetchedEpoch = -1
		rp.LogStartOffset = p.log.LogStartOffset()
		rp.PartitionMaxBytes = 4 << 20
		if throttled[p] {
			rp.PartitionMaxBytes = b.throttles.follower.maxFetch(rp.PartitionMaxBytes)
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sent := time.Now()
	kresp, err := peer.request(rctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	got := 0
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			got += len(sp.RecordBatches)
		}
	}
	if got == 0 && len(throttled) > 0 && time.Since(sent) < time.Duration(req.MaxWaitMillis)*time.Millisecond/4 {
		// An empty answer that did not wait for data: the leader's throttle held back
		// the data it has (throttle.go). Wait a little instead of asking again at once.
		defer func() {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}()
	}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			p := b.partitionOf(st.Topic, sp.Partition)
			if p == nil {
				continue
			}
			f.mu.Lock()
			fs := f.parts[p]
			f.mu.Unlock()
			if fs == nil {
				continue
			}
			switch sp.ErrorCode {
			case 0:
			case kerr.OffsetOutOfRange.Code:
				if leo := p.log.LogEndOffset(); sp.LogStartOffset > leo {
					// The leader deleted what we miss (retention, DeleteRecords): start
					// over at its log start, like Kafka's follower, instead of asking
					// for an offset it no longer has forever.
					b.logger.Info("log behind the leader's log start; starting over there", "topic", p.topic.name,
						"partition", p.index, "log_end_offset", leo, "leader_log_start_offset", sp.LogStartOffset)
					if err := p.log.TruncateFullyAndStartAt(sp.LogStartOffset); err != nil {
						b.logger.Error("starting the log at the leader's log start", "topic", p.topic.name, "partition", p.index, "err", err)
						continue
					}
					if p.hw.Load() < sp.LogStartOffset {
						p.hw.Store(sp.LogStartOffset)
					}
					continue
				}
				f.mu.Lock()
				fs.truncating = true
				f.mu.Unlock()
				continue
			default:
				// Fenced or moved leadership (the next image says where to go), or
				// the leader has not applied the image that made us a replica yet.
				f.mu.Lock()
				fs.delayedUntil = time.Now().Add(replicaFetchBackoff)
				f.mu.Unlock()
				continue
			}
			if throttled[p] {
				b.throttles.follower.record(time.Now(), len(sp.RecordBatches))
			}
			if len(sp.RecordBatches) > 0 {
				if _, err := p.log.AppendReplicated(sp.RecordBatches); err != nil {
					if errors.Is(err, storage.ErrClosed) {
						continue
					}
					if errors.Is(err, kerr.OffsetOutOfRange) {
						f.mu.Lock()
						fs.truncating = true
						f.mu.Unlock()
						continue
					}
					b.logger.Warn("appending replicated batches", "topic", p.topic.name, "partition", p.index, "err", err)
					continue
				}
			}
			if sp.LogStartOffset > p.log.LogStartOffset() {
				if _, err := p.log.DeleteRecordsBefore(min(sp.LogStartOffset, p.log.LogEndOffset())); err != nil && !errors.Is(err, storage.ErrClosed) {
					b.logger.Warn("following log start offset", "topic", p.topic.name, "partition", p.index, "err", err)
				}
			}
			if hw := min(sp.HighWatermark, p.log.LogEndOffset()); hw > p.hw.Load() {
				p.hw.Store(hw)
				p.notifyAppend()
			}
		}
	}
	return nil
}
