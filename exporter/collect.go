package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"
)

// The stages of a collection, the values of the stage label of
// sluice_exporter_collection_errors_total.
const (
	stageMetadata       = "metadata"
	stageListGroups     = "list_groups"
	stageDescribeGroups = "describe_groups"
	stageFetchOffsets   = "fetch_offsets"
	stageStartOffsets   = "start_offsets"
	stageEndOffsets     = "end_offsets"
	stageLagTime        = "lag_time"
	stageStableOffsets  = "stable_offsets"
)

var stages = []string{stageMetadata, stageListGroups, stageDescribeGroups, stageFetchOffsets, stageStartOffsets, stageEndOffsets, stageLagTime, stageStableOffsets}

// groupPartitionKey names a partition of a group, the key of its status window.
type groupPartitionKey struct {
	group string
	topicPartition
}

// groupData is what the group stages learned of one group.
type groupData struct {
	members   int
	assigned  kadm.TopicsSet
	committed map[topicPartition]int64
}

// collect runs one collection and returns its snapshot. The caller holds
// e.collectMu. Metadata and end offsets are required; a failure of any other
// stage is counted and leaves its part out of the snapshot.
//
// Committed offsets are read before end offsets: the end offset only grows,
// so lag = end - committed cannot go negative unless a log was truncated
// (unclean election, DeleteRecords past a commit) or a group committed
// beyond the end. Then lag is clamped to 0 and
// sluice_exporter_lag_clamped_total counts it.
func (e *Exporter) collect(ctx context.Context) (*snapshot, error) {
	e.cycle++
	cycle := e.cycle

	meta, err := e.adm.Metadata(ctx)
	if err != nil {
		e.stageError(stageMetadata, err)
		return nil, fmt.Errorf("metadata: %w", err)
	}
	s := &snapshot{}
	for _, b := range meta.Brokers {
		s.brokers = append(s.brokers, brokerSnap{id: strconv.Itoa(int(b.NodeID)), address: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))})
	}
	var topics []string
	exported := map[string]bool{}
	leaders := map[topicPartition]partitionLeader{}
	partitionsOf := map[string][]int32{}
	for _, td := range meta.Topics.Sorted() {
		if !e.topicRe.MatchString(td.Topic) {
			continue
		}
		if td.Err != nil {
			e.stageError(stageMetadata, fmt.Errorf("topic %s: %w", td.Topic, td.Err))
			continue
		}
		topics = append(topics, td.Topic)
		exported[td.Topic] = true
		for _, pd := range td.Partitions.Sorted() {
			leaders[topicPartition{td.Topic, pd.Partition}] = partitionLeader{leader: pd.Leader, topicID: td.ID}
			partitionsOf[td.Topic] = append(partitionsOf[td.Topic], pd.Partition)
		}
	}

	groups, err := e.listGroups(ctx)
	if err != nil {
		e.stageError(stageListGroups, err)
	}
	data := make(map[string]*groupData, len(groups))
	for _, g := range groups {
		data[g] = &groupData{committed: map[topicPartition]int64{}}
	}

	// Committed offsets and group descriptions, in parallel with start
	// offsets, all before end offsets.
	var mu sync.Mutex
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(e.cfg.FetchOffsetsConcurrency)
	var starts kadm.ListedOffsets
	if len(topics) > 0 {
		eg.Go(func() error {
			var err error
			if starts, err = e.adm.ListStartOffsets(gctx, topics...); err != nil {
				e.stageError(stageStartOffsets, err)
			}
			return nil
		})
	}
	for chunk := range slices.Chunk(groups, e.cfg.GroupsPerRequest) {
		eg.Go(func() error {
			fetched := e.adm.FetchManyOffsets(gctx, chunk...)
			mu.Lock()
			defer mu.Unlock()
			for _, g := range chunk {
				r, ok := fetched[g]
				if !ok {
					e.stageError(stageFetchOffsets, fmt.Errorf("group %s: no response", g))
					continue
				}
				if r.Err != nil {
					e.stageError(stageFetchOffsets, fmt.Errorf("group %s: %w", g, r.Err))
					continue
				}
				r.Fetched.Each(func(o kadm.OffsetResponse) {
					if o.Err == nil && o.At >= 0 {
						data[g].committed[topicPartition{o.Topic, o.Partition}] = o.At
					}
				})
			}
			return nil
		})
		eg.Go(func() error {
			described, err := e.adm.DescribeGroups(gctx, chunk...)
			if err != nil {
				e.stageError(stageDescribeGroups, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, dg := range described {
				d := data[dg.Group]
				if d == nil || dg.Err != nil {
					continue
				}
				d.members = len(dg.Members)
				d.assigned = dg.AssignedPartitions()
			}
			return nil
		})
	}
	_ = eg.Wait()

	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		ends, err = e.adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			e.stageError(stageEndOffsets, err)
			var se *kadm.ShardErrors
			if !errors.As(err, &se) || se.AllFailed {
				return nil, fmt.Errorf("end offsets: %w", err)
			}
		}
	}
	// Last stable offsets (ListOffsets with isolation_level read_committed)
	// right after the end offsets: the LSO never passes the high
	// watermark, so reading it second can only understate the LSO lag of
	// a partition written in between (clamped to 0), never report a lag
	// that is not there.
	var stable kadm.ListedOffsets
	if len(topics) > 0 {
		if stable, err = e.adm.ListCommittedOffsets(ctx, topics...); err != nil {
			e.stageError(stageStableOffsets, err)
		}
	}
	now := time.Now()
	s.at = now

	endOf := func(tp topicPartition) (int64, bool) {
		o, ok := ends.Lookup(tp.topic, tp.partition)
		return o.Offset, ok && o.Err == nil && o.Offset >= 0
	}
	startOf := func(tp topicPartition) (int64, bool) {
		o, ok := starts.Lookup(tp.topic, tp.partition)
		return o.Offset, ok && o.Err == nil && o.Offset >= 0
	}

	for _, td := range meta.Topics.Sorted() {
		if !exported[td.Topic] {
			continue
		}
		ts := topicSnap{name: td.Topic}
		for _, pd := range td.Partitions.Sorted() {
			tp := topicPartition{td.Topic, pd.Partition}
			ps := partitionSnap{
				id:        partitionLabel(pd.Partition),
				leader:    pd.Leader,
				replicas:  len(pd.Replicas),
				isr:       len(pd.ISR),
				preferred: len(pd.Replicas) > 0 && pd.Leader == pd.Replicas[0],
			}
			ps.current, ps.hasCurr = endOf(tp)
			ps.oldest, ps.hasOldest = startOf(tp)
			if o, ok := stable.Lookup(tp.topic, tp.partition); ok && o.Err == nil && o.Offset >= 0 && ps.hasCurr {
				ps.lsoLag, ps.hasLSOLag = max(0, ps.current-o.Offset), true
			}
			ts.partitions = append(ts.partitions, ps)
		}
		s.topics = append(s.topics, ts)
	}

	// Lag in seconds: the timestamps of the records at committed offsets
	// that are behind.
	var want []recordKey
	readAt := func(tp topicPartition, committed int64) int64 {
		if start, ok := startOf(tp); ok && committed < start {
			return start
		}
		return committed
	}
	for _, g := range groups {
		for tp, c := range data[g].committed {
			if end, ok := endOf(tp); ok && c < end {
				want = append(want, recordKey{tp, readAt(tp, c)})
			}
		}
	}
	if e.cfg.LagTimeReadsPerCycle > 0 && len(want) > 0 {
		failed, err := readTimestamps(ctx, e.kcl, e.timestamps, cycle, want, leaders, e.cfg.LagTimeReadsPerCycle)
		if err != nil {
			e.stageError(stageLagTime, err)
		} else if failed > 0 {
			e.stageError(stageLagTime, fmt.Errorf("%d record timestamps could not be read", failed))
		}
		e.timestamps.prune(cycle)
	}

	nowMs := now.UnixMilli()
	for _, g := range groups {
		d := data[g]
		gs := groupSnap{name: g, members: d.members}
		// The group's topics: those it committed to or is assigned.
		topicSet := map[string]bool{}
		for tp := range d.committed {
			topicSet[tp.topic] = true
		}
		for t := range d.assigned {
			topicSet[t] = true
		}
		gtopics := make([]string, 0, len(topicSet))
		for t := range topicSet {
			if e.topicRe.MatchString(t) {
				gtopics = append(gtopics, t)
			}
		}
		slices.Sort(gtopics)
		for _, t := range gtopics {
			gt := groupTopicSnap{topic: t}
			parts := partitionsOf[t]
			if parts == nil {
				// Committed to a topic the metadata does not show (deleted):
				// offsets without lag.
				for tp := range d.committed {
					if tp.topic == t {
						parts = append(parts, tp.partition)
					}
				}
				slices.Sort(parts)
			}
			for _, p := range parts {
				tp := topicPartition{t, p}
				gp := groupPartitionSnap{id: partitionLabel(p)}
				c, ok := d.committed[tp]
				if !ok {
					gt.uncommitted++
					gt.partitions = append(gt.partitions, gp)
					continue
				}
				gp.committed, gp.offset = true, c
				gt.committedCount++
				gt.offsetSum += c
				if end, ok := endOf(tp); ok {
					gp.hasLag = true
					gp.lag = end - c
					if gp.lag < 0 {
						e.lagClamped.Inc()
						gp.lag = 0
					}
					gt.lagSum += gp.lag
					if gp.lag == 0 {
						gp.hasLagSeconds = true
					} else if ts, ok := e.timestamps.ts[recordKey{tp, readAt(tp, c)}]; ok {
						gp.hasLagSeconds = true
						gp.lagSeconds = max(0, float64(nowMs-ts)/1000)
					}
					key := groupPartitionKey{g, tp}
					w := e.windows[key]
					if w == nil {
						w = &window{}
						e.windows[key] = w
					}
					w.seen = cycle
					w.add(observation{unixMs: nowMs, committed: c, end: end, lag: gp.lag}, e.cfg.StatusWindow)
					gp.status = evaluate(w.obs, e.cfg.StatusWindow, d.members > 0)
					gs.worst = max(gs.worst, gp.status)
				}
				gt.partitions = append(gt.partitions, gp)
			}
			gs.topics = append(gs.topics, gt)
		}
		s.groups = append(s.groups, gs)
	}
	for k, w := range e.windows {
		if w.seen != cycle {
			delete(e.windows, k)
		}
	}
	return s, nil
}

// listGroups returns the names of the groups that pass the filter, sorted.
// Groups of a coordinator that failed to answer are missing, and the error
// says so.
func (e *Exporter) listGroups(ctx context.Context) ([]string, error) {
	listed, err := e.adm.ListGroups(ctx)
	var se *kadm.ShardErrors
	if err != nil && (!errors.As(err, &se) || se.AllFailed) {
		return nil, err
	}
	var groups []string
	for _, g := range listed.Sorted() {
		if e.groupRe.MatchString(g.Group) {
			groups = append(groups, g.Group)
		}
	}
	return groups, err
}
