package metadata

import (
	"slices"
	"sort"
)

// The balancer decides partition moves from a picture of the cluster: brokers (rack, liveness,
// bytes on disk, disk capacity) and partitions (replicas, size). It is a pure function, so the
// controller's automatic balancing, `sluice cluster drain` and the tests share one set of rules:
//   - a replica on a cordoned broker (being drained) or on a broker whose disk is fuller than the
//     threshold moves to another broker first;
//   - then replicas move from the broker with the most replicas to the one with the fewest, while
//     they differ by more than one; then, with replica counts even, partitions move from the
//     broker with the most bytes to the one with the fewest while bytes differ by more than the
//     tolerance;
//   - a count move takes a partition whose preferred leader moves along (the moving replica is
//     the first) only while the source broker is preferred leader more than one partition more
//     often than the target, and one whose leader stays otherwise: every leader change stalls the
//     partition's producers until they find the new leader, so the data moves even out the leaders
//     on the way and no leader moves twice (docs/benchmarks.md, "Scaling drill");
//   - then preferred leaders (the first replica) rotate within a partition's replicas, from the
//     broker that is preferred leader most often to the one least often (no data moves);
//   - every new replica goes to a live, uncordoned broker with room on its disk, on a rack none of
//     the partition's other replicas is on when the cluster has enough racks;
//   - at most MaxMoves reassignments are in progress at a time, counting those already running, and
//     a partition being reassigned is left alone.

// BalanceBroker is one broker as the balancer sees it.
type BalanceBroker struct {
	ID   int32
	Rack string
	// Live brokers are registered and unfenced; only they receive replicas.
	Live bool
	// Cordoned brokers are being drained: every replica moves off and none moves on.
	Cordoned bool
	// DiskTotal and DiskUsable are the file system's size and free bytes (0: unknown).
	DiskTotal, DiskUsable int64
}

// BalancePartition is one partition as the balancer sees it.
type BalancePartition struct {
	Topic     string
	Partition int32
	Replicas  []int32
	// Bytes is the partition's size on one replica (its leader's, or the largest reported).
	Bytes int64
	// Reassigning partitions are not moved again until their reassignment ends.
	Reassigning bool
}

// BalanceConfig holds the balancer's thresholds.
type BalanceConfig struct {
	// MaxMoves bounds the reassignments in progress at once (auto.balance.max.moves).
	MaxMoves int
	// ByteTolerance is how far (a fraction of the mean) a broker's bytes may exceed the least
	// loaded broker's before partitions move for bytes alone (auto.balance.bytes.tolerance).
	ByteTolerance float64
	// DiskThreshold is the fraction of a broker's disk in use above which partitions move off it
	// (auto.balance.disk.threshold); 0 disables the check.
	DiskThreshold float64
}

// Move is one reassignment the balancer asks for.
type Move struct {
	Topic     string
	Partition int32
	From, To  []int32
	// Cause is CauseBalance, CauseDisk or CauseDrain.
	Cause string
}

// CauseDrain is a move off a cordoned broker (`sluice cluster drain`).
const CauseDrain = "drain"

// balanceState is the balancer's working copy of the cluster.
type balanceState struct {
	brokers  map[int32]BalanceBroker
	racks    int
	replicas map[int32]int            // replica count by broker
	topicN   map[string]map[int32]int // replica count by topic and broker
	leaders  map[int32]int            // preferred-leader count by broker
	bytes    map[int32]int64          // bytes by broker
	parts    []BalancePartition
}

func newBalanceState(brokers []BalanceBroker, parts []BalancePartition) *balanceState {
	s := &balanceState{brokers: map[int32]BalanceBroker{}, replicas: map[int32]int{}, topicN: map[string]map[int32]int{},
		leaders: map[int32]int{}, bytes: map[int32]int64{}}
	racks := map[string]bool{}
	for _, b := range brokers {
		s.brokers[b.ID] = b
		if b.Live && !b.Cordoned {
			racks[b.Rack] = true
		}
	}
	s.racks = len(racks)
	for _, p := range parts {
		p.Replicas = slices.Clone(p.Replicas)
		s.parts = append(s.parts, p)
		if s.topicN[p.Topic] == nil {
			s.topicN[p.Topic] = map[int32]int{}
		}
		for i, r := range p.Replicas {
			s.replicas[r]++
			s.topicN[p.Topic][r]++
			s.bytes[r] += p.Bytes
			if i == 0 {
				s.leaders[r]++
			}
		}
	}
	return s
}

// eligible reports whether broker id may receive a replica.
func (s *balanceState) eligible(id int32, threshold float64) bool {
	b, ok := s.brokers[id]
	return ok && b.Live && !b.Cordoned && !s.overDisk(id, threshold)
}

// overDisk reports whether broker id's disk is fuller than threshold.
func (s *balanceState) overDisk(id int32, threshold float64) bool {
	b := s.brokers[id]
	return threshold > 0 && b.DiskTotal > 0 && float64(b.DiskTotal-b.DiskUsable)/float64(b.DiskTotal) > threshold
}

// rackOK reports whether a replica on broker to keeps partition p's replicas (without from) on
// distinct racks, as far as the cluster's racks allow.
func (s *balanceState) rackOK(p BalancePartition, from, to int32) bool {
	used := map[string]int{}
	for _, r := range p.Replicas {
		if r != from {
			used[s.brokers[r].Rack]++
		}
	}
	rack := s.brokers[to].Rack
	if used[rack] == 0 {
		return true
	}
	// The rack is taken: acceptable only if every rack is taken by the other replicas.
	distinct := len(used)
	return distinct >= s.racks
}

// target picks the broker that should receive p's replica on from: eligible, not already a
// replica, rack-aware, fewest replicas then fewest bytes then lowest id.
func (s *balanceState) target(p BalancePartition, from int32, cfg BalanceConfig) (int32, bool) {
	var ids []int32
	for id := range s.brokers {
		if s.eligible(id, cfg.DiskThreshold) && !slices.Contains(p.Replicas, id) && s.rackOK(p, from, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return -1, false
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if s.replicas[a] != s.replicas[b] {
			return s.replicas[a] < s.replicas[b]
		}
		if s.bytes[a] != s.bytes[b] {
			return s.bytes[a] < s.bytes[b]
		}
		return a < b
	})
	return ids[0], true
}

// move replaces from by to in partition i, in place (a moved preferred leader stays first).
func (s *balanceState) move(i int, from, to int32) Move {
	p := &s.parts[i]
	old := slices.Clone(p.Replicas)
	idx := slices.Index(p.Replicas, from)
	p.Replicas[idx] = to
	p.Reassigning = true
	s.replicas[from]--
	s.replicas[to]++
	s.topicN[p.Topic][from]--
	s.topicN[p.Topic][to]++
	s.bytes[from] -= p.Bytes
	s.bytes[to] += p.Bytes
	if idx == 0 {
		s.leaders[from]--
		s.leaders[to]++
	}
	return Move{Topic: p.Topic, Partition: p.Partition, From: old, To: slices.Clone(p.Replicas)}
}

// PlanBalance returns the moves that bring the cluster closer to balance, at most
// cfg.MaxMoves minus the reassignments already in progress, in the order given in the package
// comment. Running it again on the cluster after the moves completed returns the next moves, and
// nothing once the cluster is balanced.
func PlanBalance(brokers []BalanceBroker, parts []BalancePartition, cfg BalanceConfig) []Move {
	s := newBalanceState(brokers, parts)
	budget := cfg.MaxMoves
	for _, p := range parts {
		if p.Reassigning {
			budget--
		}
	}
	var out []Move
	add := func(m Move, cause string) {
		m.Cause = cause
		out = append(out, m)
		budget--
	}
	// 1. Off cordoned brokers and brokers over the disk threshold (largest partitions first, so
	// the disk frees fastest).
	order := make([]int, len(s.parts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return s.parts[order[a]].Bytes > s.parts[order[b]].Bytes })
	diskFreed := map[int32]int64{}
	for _, i := range order {
		if budget <= 0 {
			return out
		}
		p := s.parts[i]
		if p.Reassigning {
			continue
		}
		for _, r := range p.Replicas {
			br := s.brokers[r]
			cause := ""
			switch {
			case br.Cordoned:
				cause = CauseDrain
			case s.overDisk(r, cfg.DiskThreshold) && br.Live:
				// Move until the estimate of what was freed brings the broker under the threshold.
				over := float64(br.DiskTotal-br.DiskUsable) - cfg.DiskThreshold*float64(br.DiskTotal)
				if float64(diskFreed[r]) < over {
					cause = CauseDisk
				}
			}
			if cause == "" {
				continue
			}
			if to, ok := s.target(p, r, cfg); ok {
				diskFreed[r] += p.Bytes
				add(s.move(i, r, to), cause)
				break
			}
		}
	}
	// 2. Replica counts per topic (so each topic spreads over the brokers, as CreateTopics
	// places it), then in total, then bytes.
	for budget > 0 {
		m, ok := s.topicMove(cfg)
		if !ok {
			m, ok = s.countMove(cfg)
		}
		if !ok {
			m, ok = s.byteMove(cfg)
		}
		if !ok {
			break
		}
		add(m, CauseBalance)
	}
	// 3. Preferred leaders: a reorder completes at once and moves no data, so it does not count
	// against the budget of moves in progress.
	for range len(s.parts) {
		m, ok := s.leaderMove()
		if !ok {
			break
		}
		m.Cause = CauseBalance
		out = append(out, m)
	}
	return out
}

// eligibleIDs returns the brokers that may receive replicas, sorted.
func (s *balanceState) eligibleIDs(cfg BalanceConfig) []int32 {
	var ids []int32
	for id := range s.brokers {
		if s.eligible(id, cfg.DiskThreshold) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// topicMove moves one replica of a topic from the broker with the most replicas of it to the one
// with the fewest, while they differ by more than one.
func (s *balanceState) topicMove(cfg BalanceConfig) (Move, bool) {
	ids := s.eligibleIDs(cfg)
	if len(ids) < 2 {
		return Move{}, false
	}
	topics := make([]string, 0, len(s.topicN))
	for t := range s.topicN {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		n := s.topicN[t]
		byLoad := slices.Clone(ids)
		sort.SliceStable(byLoad, func(i, j int) bool {
			a, b := byLoad[i], byLoad[j]
			if n[a] != n[b] {
				return n[a] > n[b]
			}
			return s.replicas[a] > s.replicas[b]
		})
		for _, from := range byLoad {
			for k := len(byLoad) - 1; k >= 0; k-- {
				to := byLoad[k]
				if n[from]-n[to] <= 1 {
					break
				}
				if i, ok := s.pickOf(t, from, to); ok {
					return s.move(i, from, to), true
				}
			}
		}
	}
	return Move{}, false
}

// pickOf returns a small partition of topic t on from that may move to to (smallPick).
func (s *balanceState) pickOf(t string, from, to int32) (int, bool) {
	return s.smallPick(from, to, func(p BalancePartition) bool { return p.Topic == t })
}

// smallPick returns the partition on from that a count move to to should take, of those ok
// accepts that are not on to, not being reassigned and may move to to by their racks: one whose
// preferred leader moves along (from leads it) when from is preferred leader of more than one
// partition more than to, one that from does not lead otherwise, so that the moves themselves even
// out the leaders and no leader moves twice (once with the data, once back by the leader
// balancing); among those the smallest. Its size still comes first when the sizes differ by more
// than twice the smallest and 1 MiB: a count move copies as little as it can.
func (s *balanceState) smallPick(from, to int32, ok func(BalancePartition) bool) (int, bool) {
	least := int64(-1)
	for _, p := range s.parts {
		if s.movable(p, from, to) && ok(p) && (least < 0 || p.Bytes < least) {
			least = p.Bytes
		}
	}
	if least < 0 {
		return -1, false
	}
	lead := s.leaders[from]-s.leaders[to] > 1
	best, bestFits := -1, false
	for i, p := range s.parts {
		if !s.movable(p, from, to) || !ok(p) || p.Bytes > 2*least+(1<<20) {
			continue
		}
		fits := (p.Replicas[0] == from) == lead
		if best < 0 || (fits && !bestFits) || (fits == bestFits && p.Bytes < s.parts[best].Bytes) {
			best, bestFits = i, fits
		}
	}
	return best, best >= 0
}

// movable reports whether p's replica on from may move to to.
func (s *balanceState) movable(p BalancePartition, from, to int32) bool {
	return !p.Reassigning && slices.Contains(p.Replicas, from) && !slices.Contains(p.Replicas, to) && s.rackOK(p, from, to)
}

// countMove moves one replica from the broker with the most replicas to the one with the fewest,
// choosing a partition whose topic it does not unbalance.
func (s *balanceState) countMove(cfg BalanceConfig) (Move, bool) {
	ids := s.eligibleIDs(cfg)
	if len(ids) < 2 {
		return Move{}, false
	}
	// Most loaded first, least loaded last; ties by bytes.
	sort.SliceStable(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if s.replicas[a] != s.replicas[b] {
			return s.replicas[a] > s.replicas[b]
		}
		return s.bytes[a] > s.bytes[b]
	})
	for _, from := range ids {
		for k := len(ids) - 1; k >= 0; k-- {
			to := ids[k]
			if s.replicas[from]-s.replicas[to] <= 1 {
				break
			}
			// A count move keeps the topic balanced; a byte move may not, and the topic's next
			// move, of its smallest partition, makes the pair a swap.
			if i, ok := s.smallPick(from, to, func(p BalancePartition) bool { return s.topicN[p.Topic][from] > s.topicN[p.Topic][to] }); ok {
				return s.move(i, from, to), true
			}
		}
	}
	return Move{}, false
}

// byteMove moves one partition from the broker with the most bytes to the one with the fewest, if
// they differ by more than the tolerance and the move narrows the gap without unbalancing counts.
func (s *balanceState) byteMove(cfg BalanceConfig) (Move, bool) {
	ids := s.eligibleIDs(cfg)
	if len(ids) < 2 || cfg.ByteTolerance <= 0 {
		return Move{}, false
	}
	var total int64
	for _, id := range ids {
		total += s.bytes[id]
	}
	mean := float64(total) / float64(len(ids))
	sort.SliceStable(ids, func(i, j int) bool { return s.bytes[ids[i]] > s.bytes[ids[j]] })
	from, to := ids[0], ids[len(ids)-1]
	gap := s.bytes[from] - s.bytes[to]
	if mean == 0 || float64(gap) <= cfg.ByteTolerance*mean || s.replicas[from] < s.replicas[to] {
		return Move{}, false
	}
	if i, ok := s.pick(from, to, gap); ok {
		return s.move(i, from, to), true
	}
	return Move{}, false
}

// pick returns a partition on from that is not on to, not being reassigned, and may move to to by
// its racks, the one whose move narrows a byte gap the most (its size closest to half the gap, and
// below the gap).
func (s *balanceState) pick(from, to int32, gap int64) (int, bool) {
	best, bestScore := -1, int64(0)
	for i, p := range s.parts {
		if !s.movable(p, from, to) || p.Bytes <= 0 || p.Bytes >= gap {
			continue
		}
		score := max(gap-2*p.Bytes, 2*p.Bytes-gap)
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	return best, best >= 0
}

// leaderMove makes another replica of one partition its preferred leader, from the broker that is
// preferred most often to one preferred least often, while they differ by more than one.
func (s *balanceState) leaderMove() (Move, bool) {
	var ids []int32
	for id, b := range s.brokers {
		if b.Live && !b.Cordoned {
			ids = append(ids, id)
		}
	}
	if len(ids) < 2 {
		return Move{}, false
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if s.leaders[a] != s.leaders[b] {
			return s.leaders[a] > s.leaders[b]
		}
		return a < b
	})
	for _, from := range ids {
		for k := len(ids) - 1; k >= 0; k-- {
			to := ids[k]
			if s.leaders[from]-s.leaders[to] <= 1 {
				break
			}
			for i, p := range s.parts {
				if p.Reassigning || p.Replicas[0] != from || !slices.Contains(p.Replicas, to) {
					continue
				}
				old := slices.Clone(p.Replicas)
				j := slices.Index(p.Replicas, to)
				s.parts[i].Replicas[0], s.parts[i].Replicas[j] = to, from
				s.parts[i].Reassigning = true // one change per partition and plan
				s.leaders[from]--
				s.leaders[to]++
				return Move{Topic: p.Topic, Partition: p.Partition, From: old, To: slices.Clone(s.parts[i].Replicas)}, true
			}
		}
	}
	return Move{}, false
}
