package metadata

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// AutoBalanceConfig configures the controller's automatic balancing (balance.go decides the moves).
// Zero values take the defaults given.
type AutoBalanceConfig struct {
	// Disabled turns automatic balancing off (`auto.balance.enable: false`; on by default).
	Disabled bool
	// Enabled, when set, decides instead of Disabled before each round whether the balancer
	// works: `auto.balance.enable` is a dynamic broker config, so an operator can pause balancing
	// (and the scaling scenario measures a cluster with new brokers and no moves) and resume it.
	Enabled func() bool
	// Interval is how often the controller looks at the balance (`auto.balance.interval.ms`,
	// default 10s). It also looks right after a broker is unfenced.
	Interval time.Duration
	// MaxMoves bounds the reassignments in progress at once (`auto.balance.max.moves`, default 2),
	// which with the replication throttle bounds what moves take from client traffic.
	MaxMoves int
	// RoundGap is the least time between two rounds that started moves (`auto.balance.round.gap.ms`,
	// default 1s): a small partition moves at once, and without a gap the next round would start
	// on its completion, so the balancer's metadata and log churn, not the copying the throttle
	// bounds, would take the clients' throughput (docs/benchmarks.md, "Scaling drill").
	RoundGap time.Duration
	// DiskThreshold is the share of a broker's disk in use above which partitions move off it
	// (`auto.balance.disk.threshold`, default 0.85).
	DiskThreshold float64
	// ByteTolerance is how far bytes per broker may differ, as a share of the mean, before partitions
	// move for bytes alone (`auto.balance.bytes.tolerance`, default 0.1).
	ByteTolerance float64
	// Usage reports a live broker's disk and partition sizes; the controller asks every live broker
	// each round. Nil balances by replica and leader counts only.
	Usage func(ctx context.Context, b Broker) (BrokerUsage, error)
	// OnMoves is called with the cause and number of reassignments the balancer started (metrics).
	OnMoves func(cause string, n int)
}

// BrokerUsage is what a broker reports of its disk: the file system's size and free bytes, and the
// size of each partition replica it holds by topic name and partition.
type BrokerUsage struct {
	DiskTotal, DiskUsable int64
	Partitions            map[string]map[int32]int64
}

func (c AutoBalanceConfig) withDefaults() AutoBalanceConfig {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.MaxMoves <= 0 {
		c.MaxMoves = 2
	}
	if c.RoundGap <= 0 {
		c.RoundGap = time.Second
	}
	if c.DiskThreshold <= 0 {
		c.DiskThreshold = 0.85
	}
	if c.ByteTolerance <= 0 {
		c.ByteTolerance = 0.1
	}
	return c
}

// CordonConfig is the per-broker dynamic config that cordons a broker (KIP-1066's
// `cordoned.log.dirs`; Sluice has one log dir, so any value cordons the broker): no new replica is
// placed on it, and the balancer moves its replicas off (`sluice cluster drain`).
const CordonConfig = "cordoned.log.dirs"

// Cordoned reports whether broker id is cordoned.
func (img *Image) Cordoned(id int32) bool {
	return img.BrokerConfigs[strconv.Itoa(int(id))][CordonConfig] != ""
}

// assignableBrokerIDs returns the live brokers that may receive new replicas (not cordoned),
// sorted; all live brokers if every one is cordoned.
func (img *Image) assignableBrokerIDs() []int32 {
	live := img.liveBrokerIDs()
	out := slices.DeleteFunc(slices.Clone(live), img.Cordoned)
	if len(out) == 0 {
		return live
	}
	return out
}

// runBalancer is the automatic balancer of one controller term: every interval (and when kicked by
// a broker being unfenced) it plans moves over the cluster and starts them as reassignments.
func (q *Quorum) runBalancer(ctx context.Context) {
	cfg := q.cfg.AutoBalance.withDefaults()
	if cfg.Disabled && cfg.Enabled == nil {
		return
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-q.balanceKick:
		}
		if cfg.Enabled != nil && !cfg.Enabled() {
			continue // paused; KickBalance resumes at once
		}
		if q.balanceOnce(ctx, cfg) > 0 {
			// Pace the moves: kicks meanwhile (a completed move) wait for the gap's end.
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.RoundGap):
			}
		}
	}
}

// KickBalance asks the balancer for a round now (when it was enabled again).
func (q *Quorum) KickBalance() { q.kickBalance() }

// kickBalance asks the balancer for a round now.
func (q *Quorum) kickBalance() {
	select {
	case q.balanceKick <- struct{}{}:
	default:
	}
}

// balanceOnce plans and starts one round of moves and returns how many it started. It moves
// nothing while a broker that is not cordoned is fenced: its replicas may come back, and until then
// the cluster is not what it is balanced for.
func (q *Quorum) balanceOnce(ctx context.Context, cfg AutoBalanceConfig) int {
	img := q.Image()
	for _, b := range img.Brokers {
		if b.Fenced && !img.Cordoned(b.ID) {
			return 0
		}
	}
	brokers, parts := q.balanceInput(ctx, img, cfg)
	moves := PlanBalance(brokers, parts, BalanceConfig{MaxMoves: cfg.MaxMoves, ByteTolerance: cfg.ByteTolerance, DiskThreshold: cfg.DiskThreshold})
	if len(moves) == 0 {
		return 0
	}
	byCause := map[string][]ReassignmentRequest{}
	for _, m := range moves {
		byCause[m.Cause] = append(byCause[m.Cause], ReassignmentRequest{Topic: m.Topic, Partition: m.Partition, Replicas: m.To})
	}
	causes := make([]string, 0, len(byCause))
	for c := range byCause {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	total := 0
	for _, cause := range causes {
		reqs := byCause[cause]
		errs, err := q.alterReassignments(ctx, reqs, true, cause)
		if err != nil {
			q.log.Warn("balancer could not start moves", "cause", cause, "err", err)
			return total
		}
		started := 0
		for i, e := range errs {
			if e != nil {
				q.log.Warn("balancer move refused", "topic", reqs[i].Topic, "partition", reqs[i].Partition, "err", e)
				continue
			}
			started++
		}
		q.log.Info("balancer started moves", "cause", cause, "moves", started)
		if cfg.OnMoves != nil && started > 0 {
			cfg.OnMoves(cause, started)
		}
		total += started
	}
	return total
}

// balanceInput builds the balancer's picture of img, asking every live broker for its usage.
func (q *Quorum) balanceInput(ctx context.Context, img *Image, cfg AutoBalanceConfig) ([]BalanceBroker, []BalancePartition) {
	usage := map[int32]BrokerUsage{}
	if cfg.Usage != nil {
		var mu sync.Mutex
		var wg sync.WaitGroup
		uctx, cancel := context.WithTimeout(ctx, min(cfg.Interval, 5*time.Second))
		defer cancel()
		for _, b := range img.LiveBrokers() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u, err := cfg.Usage(uctx, b)
				if err != nil {
					q.log.Debug("balancer: broker usage", "broker", b.ID, "err", err)
					return
				}
				mu.Lock()
				usage[b.ID] = u
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	var brokers []BalanceBroker
	for _, b := range img.Brokers {
		u := usage[b.ID]
		brokers = append(brokers, BalanceBroker{ID: b.ID, Rack: b.Rack, Live: !b.Fenced, Cordoned: img.Cordoned(b.ID),
			DiskTotal: u.DiskTotal, DiskUsable: u.DiskUsable})
	}
	sort.Slice(brokers, func(i, j int) bool { return brokers[i].ID < brokers[j].ID })
	var parts []BalancePartition
	for _, t := range img.SortedTopics() {
		for i, p := range t.Partitions {
			var size int64
			for _, r := range p.Replicas {
				size = max(size, usage[r].Partitions[t.Name][int32(i)])
			}
			parts = append(parts, BalancePartition{Topic: t.Name, Partition: int32(i), Replicas: slices.Clone(p.Replicas),
				Bytes: size, Reassigning: p.Reassigning()})
		}
	}
	return brokers, parts
}
