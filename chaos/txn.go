package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Modes of a chaos run (Config.Mode).
const (
	// ModeIdempotent runs idempotent producers only and checks the topic.
	ModeIdempotent = "idempotent"
	// ModeTxn adds an exactly-once consume-transform-produce pipeline over the topic and a producer of
	// deliberately aborted transactions, and checks the output topic with read_committed readers.
	ModeTxn = "txn"
)

// abortedPrefix starts the values of the records written by aborted transactions.
const abortedPrefix = "ABORTED/"

// sentinelPrefix starts the values of the end-of-read records the checker writes to the output topic.
const sentinelPrefix = "sentinel/"

// pipeline is the transactional part of a chaos run: Transformers GroupTransactSessions in one group
// read the input topic (read_committed) and write "<partition>/<offset>/<value>" for every input
// record to the same partition of the output topic, committing the input offsets in the same
// transaction; and one transactional producer writes marker records to every output partition and
// aborts every such transaction.
type pipeline struct {
	cfg    Config
	seeds  []string
	out    string
	group  string
	txnIDs []string

	stopping atomic.Bool
	wg       sync.WaitGroup

	mu          sync.Mutex
	commitTimes []time.Time // when each committed transaction's End returned
	stats       TxnStats
	errs        map[string]int
	markers     []string // aborted-transaction marker values the broker acknowledged
}

// TxnStats counts what the pipeline did.
type TxnStats struct {
	// Committed and Aborted count the pipeline's transactions by outcome (a rebalance aborts).
	Committed, Aborted int64
	// Records counts the input records of committed transactions.
	Records int64
	// ProduceFailedAborts counts the pipeline's transactions aborted because a record of theirs
	// failed (included in Aborted).
	ProduceFailedAborts int64
	// Restarts counts sessions closed after an error and opened again with the same transactional
	// id (fencing the old one), as an exactly-once service does.
	Restarts int64
	// MarkerTxns counts the deliberately aborted transactions, MarkerRecords their acknowledged
	// records.
	MarkerTxns, MarkerRecords int64
}

// outputTopic is the pipeline's output topic for the input topic.
func outputTopic(cfg Config) string { return cfg.Topic + "-out" }

// groupName is the pipeline's consumer group.
func groupName(cfg Config) string { return cfg.Topic + "-eos" }

func startPipeline(ctx context.Context, cfg Config, seeds []string) *pipeline {
	pl := &pipeline{cfg: cfg, seeds: seeds, out: outputTopic(cfg), group: groupName(cfg), errs: map[string]int{}}
	for i := range cfg.Transformers {
		pl.txnIDs = append(pl.txnIDs, fmt.Sprintf("%s-eos-%d", cfg.Topic, i))
	}
	for _, id := range pl.txnIDs {
		pl.wg.Add(1)
		go func() {
			defer pl.wg.Done()
			pl.transform(ctx, id)
		}()
	}
	pl.wg.Add(1)
	go func() {
		defer pl.wg.Done()
		pl.abortLoop(ctx, cfg.Topic+"-aborter")
	}()
	return pl
}

// stop ends the loops after their current transaction and waits for them.
func (pl *pipeline) stop() {
	pl.stopping.Store(true)
	pl.wg.Wait()
}

func (pl *pipeline) fail(what string, err error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	msg := what + ": " + err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	pl.errs[msg]++
}

// clientOpts are the options every pipeline client shares: quick to notice new leaders and
// coordinators, patient with a failover.
func (pl *pipeline) clientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(pl.seeds...),
		kgo.MetadataMinAge(pl.cfg.MetadataMinAge),
		kgo.RetryBackoffFn(javaBackoff(pl.cfg.RetryBackoffMax)),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(pl.out),
		kgo.RetryTimeout(pl.cfg.FailoverTimeout + 10*time.Second),
		kgo.TransactionTimeout(pl.cfg.TransactionTimeout),
	}
}

// transform runs one exactly-once worker until stop: a GroupTransactSession that is closed after
// any error End reports (none is retryable) and opened again with the same transactional id.
func (pl *pipeline) transform(ctx context.Context, txnID string) {
	opts := append(pl.clientOpts(),
		kgo.TransactionalID(txnID),
		kgo.ConsumerGroup(pl.group),
		kgo.ConsumeTopics(pl.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.SessionTimeout(pl.cfg.FailoverTimeout),
	)
	for first := true; !pl.stopping.Load() && ctx.Err() == nil; first = false {
		if !first {
			pl.mu.Lock()
			pl.stats.Restarts++
			pl.mu.Unlock()
		}
		s, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			pl.fail("new session", err)
			return
		}
		pl.session(ctx, s)
		s.Close()
	}
}

// session runs transactions on s until stop or an error.
func (pl *pipeline) session(ctx context.Context, s *kgo.GroupTransactSession) {
	for !pl.stopping.Load() && ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fs := s.PollFetches(pollCtx)
		cancel()
		if fs.NumRecords() == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			pl.fail("begin", err)
			return
		}
		n := int64(fs.NumRecords())
		var produceFailed atomic.Bool
		fs.EachRecord(func(r *kgo.Record) {
			s.Produce(ctx, &kgo.Record{Partition: r.Partition, Value: fmt.Appendf(nil, "%d/%d/%s", r.Partition, r.Offset, r.Value)},
				func(_ *kgo.Record, err error) {
					if err != nil {
						produceFailed.Store(true)
						pl.fail("transform produce", err)
					}
				})
		})
		// Ending is not cut short by stop: a transaction left open would hold the last stable
		// offset back until its timeout.
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*pl.cfg.FailoverTimeout)
		// A transaction with a failed record must abort, as Kafka's producer enforces (an abortable
		// error) and kgo leaves to the application: committing it would commit the input offsets
		// of records that are not in the output. Flush first, so every promise has run.
		end := kgo.TryCommit
		if err := s.Client().Flush(endCtx); err != nil || produceFailed.Load() {
			end = kgo.TryAbort
		}
		committed, err := s.End(endCtx, end)
		cancel()
		pl.mu.Lock()
		if end == kgo.TryAbort {
			pl.stats.ProduceFailedAborts++
		}
		if committed {
			pl.stats.Committed++
			pl.stats.Records += n
			// Read under the lock, so that commitTimes stays sorted for resumedAfter.
			pl.commitTimes = append(pl.commitTimes, time.Now())
		} else {
			pl.stats.Aborted++
		}
		pl.mu.Unlock()
		if err != nil {
			pl.fail("end", err)
			return
		}
	}
}

// abortLoop writes a marker record to every output partition in a transaction and aborts it, about
// every 200ms, until stop.
func (pl *pipeline) abortLoop(ctx context.Context, txnID string) {
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 0; !pl.stopping.Load() && ctx.Err() == nil; n++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if cl == nil {
			var err error
			if cl, err = kgo.NewClient(append(pl.clientOpts(), kgo.TransactionalID(txnID))...); err != nil {
				pl.fail("aborter client", err)
				return
			}
		}
		if err := pl.abortOne(ctx, cl, n); err != nil {
			pl.fail("aborted transaction", err)
			// A new client with the same transactional id fences this one and aborts whatever it
			// left open.
			cl.Close()
			cl = nil
		}
	}
}

func (pl *pipeline) abortOne(ctx context.Context, cl *kgo.Client, n int) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	rs := make([]*kgo.Record, pl.cfg.Partitions)
	for p := range rs {
		rs[p] = &kgo.Record{Partition: int32(p), Value: fmt.Appendf(nil, "%s%d/%d", abortedPrefix, n, p)}
	}
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*pl.cfg.FailoverTimeout)
	defer cancel()
	res := cl.ProduceSync(endCtx, rs...)
	pl.mu.Lock()
	for _, r := range res {
		if r.Err == nil {
			pl.markers = append(pl.markers, string(r.Record.Value))
			pl.stats.MarkerRecords++
		}
	}
	pl.mu.Unlock()
	if err := cl.EndTransaction(endCtx, kgo.TryAbort); err != nil {
		return err
	}
	if err := res.FirstErr(); err != nil {
		return err
	}
	pl.mu.Lock()
	pl.stats.MarkerTxns++
	pl.mu.Unlock()
	return nil
}

// coordinator returns the broker that coordinates the transactional id of kill n (FindCoordinator
// with key type 1), rotating over the pipeline's transactional ids.
func (pl *pipeline) coordinator(ctx context.Context, adm *kadm.Client, n int) (int32, error) {
	id := pl.txnIDs[n%len(pl.txnIDs)]
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp := adm.FindTxnCoordinators(ctx, id)
	c, ok := resp[id]
	if !ok {
		return -1, fmt.Errorf("no FindCoordinator answer for %s", id)
	}
	if c.Err != nil {
		return -1, fmt.Errorf("coordinator of %s: %w", id, c.Err)
	}
	return c.NodeID, nil
}

// resumedAfter returns the time from at to the first committed transaction after it.
func (pl *pipeline) resumedAfter(at time.Time) (time.Duration, bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	i := sort.Search(len(pl.commitTimes), func(i int) bool { return pl.commitTimes[i].After(at) })
	if i == len(pl.commitTimes) {
		return 0, false
	}
	return pl.commitTimes[i].Sub(at), true
}

// waitCaughtUp waits until the group's committed offsets equal the input's end offsets.
func (pl *pipeline) waitCaughtUp(ctx context.Context, adm *kadm.Client, timeout time.Duration) error {
	return WaitFor(ctx, timeout, "the pipeline to commit every input offset", func(ctx context.Context) (bool, error) {
		ends, err := adm.ListEndOffsets(ctx, pl.cfg.Topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return false, err
		}
		offs, err := adm.FetchOffsets(ctx, pl.group)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return false, err
		}
		var behind []string
		ends.Each(func(o kadm.ListedOffset) {
			c, _ := offs.Lookup(o.Topic, o.Partition)
			if c.At != o.Offset {
				behind = append(behind, fmt.Sprintf("%d: %d of %d", o.Partition, c.At, o.Offset))
			}
		})
		if len(behind) > 0 {
			return false, fmt.Errorf("committed offsets behind the input: %s", strings.Join(behind, ", "))
		}
		return true, nil
	})
}

// snapshot returns the stats, the most frequent errors and the acknowledged markers.
func (pl *pipeline) snapshot() (TxnStats, []string, []string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.stats, topFailures(pl.errs, 5), slices.Clone(pl.markers)
}

// TxnCheck is the read_committed checker's verdict on the pipeline's output.
type TxnCheck struct {
	// Input counts the records in the input topic; Output the output's read_committed records
	// (markers of aborted transactions included, if any were visible).
	Input, Output int
	// Missing counts input records with no copy in the output; Duplicated the extra copies of input
	// records found more than once.
	Missing, Duplicated int
	// Foreign counts output records that are no input record (wrong value for the offset, wrong
	// partition, unparsable).
	Foreign int
	// AbortedVisible counts records of aborted transactions that read_committed showed.
	AbortedVisible int
	// Markers counts the acknowledged records of aborted transactions; MarkersSeenUncommitted those
	// that read_uncommitted showed (all of them, or acknowledged records were lost).
	Markers, MarkersSeenUncommitted int
	// OffsetMismatch counts input partitions whose committed offset is not the number of their
	// records in the output.
	OffsetMismatch int
	// Examples describe the first violations.
	Examples []string
}

// Violations is the number of broken exactly-once promises.
func (c TxnCheck) Violations() int {
	return c.Missing + c.Duplicated + c.Foreign + c.AbortedVisible + c.OffsetMismatch + (c.Markers - c.MarkersSeenUncommitted)
}

// CheckPipeline compares the input topic (read in full) with the output's read_committed and
// read_uncommitted records, the group's committed offsets and the acknowledged markers of aborted
// transactions.
func CheckPipeline(input map[int32][]LogRecord, committed, uncommitted map[int32][]LogRecord, offsets map[int32]int64, markers []string) TxnCheck {
	var c TxnCheck
	example := func(format string, args ...any) {
		if len(c.Examples) < 4*maxExamples {
			c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
		}
	}
	inputAt := map[int32]map[int64]string{}
	for p, rs := range input {
		inputAt[p] = make(map[int64]string, len(rs))
		for _, r := range rs {
			inputAt[p][r.Offset] = string(r.Value)
		}
		c.Input += len(rs)
	}
	copies := map[int32]map[int64]int{}
	for p, rs := range committed {
		for _, r := range rs {
			c.Output++
			v := string(r.Value)
			if strings.HasPrefix(v, abortedPrefix) {
				c.AbortedVisible++
				example("read_committed shows %q of an aborted transaction at %d/%d", v, p, r.Offset)
				continue
			}
			fields := strings.SplitN(v, "/", 3)
			var inPart, inOff int64
			var err error
			if len(fields) == 3 {
				inPart, err = strconv.ParseInt(fields[0], 10, 32)
				if err == nil {
					inOff, err = strconv.ParseInt(fields[1], 10, 64)
				}
			}
			if len(fields) != 3 || err != nil || int32(inPart) != p || inputAt[p][inOff] != fields[2] {
				c.Foreign++
				example("output %d/%d holds %q, which is no input record of partition %d", p, r.Offset, v, p)
				continue
			}
			if copies[p] == nil {
				copies[p] = map[int64]int{}
			}
			copies[p][inOff]++
			if copies[p][inOff] == 2 {
				example("input %d/%d is in the output more than once (again at output offset %d)", p, inOff, r.Offset)
			}
		}
	}
	for p, rs := range input {
		for _, r := range rs {
			switch n := copies[p][r.Offset]; {
			case n == 0:
				c.Missing++
				example("input %d/%d (%s) is not in the output", p, r.Offset, r.Value)
			case n > 1:
				c.Duplicated += n - 1
			}
		}
		if got := int64(len(copies[p])); offsets[p] != got || (len(rs) > 0 && offsets[p] != rs[len(rs)-1].Offset+1) {
			c.OffsetMismatch++
			example("partition %d: committed offset %d, %d input records in the output, input ends at %d", p, offsets[p], got, endOf(rs))
		}
	}
	c.Markers = len(markers)
	seen := map[string]bool{}
	for _, rs := range uncommitted {
		for _, r := range rs {
			seen[string(r.Value)] = true
		}
	}
	for _, m := range markers {
		if seen[m] {
			c.MarkersSeenUncommitted++
		} else {
			example("acknowledged marker %q of an aborted transaction is not in the log (read_uncommitted)", m)
		}
	}
	return c
}

func endOf(rs []LogRecord) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].Offset + 1
}

// checkPipeline reads the input, writes a sentinel to every output partition and reads the output
// up to it with read_committed and read_uncommitted, and checks the pipeline.
func checkPipeline(ctx context.Context, cfg Config, seeds []string, markers []string) (TxnCheck, error) {
	input, err := ReadPartitions(ctx, seeds, cfg.Topic, 2*time.Minute)
	if err != nil {
		return TxnCheck{}, fmt.Errorf("read input: %w", err)
	}
	out := outputTopic(cfg)
	ends, err := writeSentinels(ctx, cfg, seeds, out)
	if err != nil {
		return TxnCheck{}, err
	}
	committed, err := readUntil(ctx, seeds, out, kgo.ReadCommitted(), ends, 2*time.Minute)
	if err != nil {
		return TxnCheck{}, err
	}
	uncommitted, err := readUntil(ctx, seeds, out, kgo.ReadUncommitted(), ends, 2*time.Minute)
	if err != nil {
		return TxnCheck{}, err
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return TxnCheck{}, err
	}
	defer admCl.Close()
	var offs kadm.OffsetResponses
	err = WaitFor(ctx, time.Minute, "committed offsets of "+groupName(cfg), func(ctx context.Context) (bool, error) {
		offs, err = kadm.NewClient(admCl).FetchOffsets(ctx, groupName(cfg))
		if err == nil {
			err = offs.Error()
		}
		return err == nil, err
	})
	if err != nil {
		return TxnCheck{}, err
	}
	offsets := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == cfg.Topic {
			offsets[o.Partition] = o.At
		}
	})
	return CheckPipeline(input, committed, uncommitted, offsets, markers), nil
}

// writeSentinels writes one plain record to every partition of topic and returns, per partition,
// the offset after it: a read_committed reader reaches it only once every transaction before it is
// decided.
func writeSentinels(ctx context.Context, cfg Config, seeds []string, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MetadataMinAge(cfg.MetadataMinAge))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rs := make([]*kgo.Record, cfg.Partitions)
	stamp := time.Now().UnixNano()
	for p := range rs {
		rs[p] = &kgo.Record{Partition: int32(p), Value: fmt.Appendf(nil, "%s%d", sentinelPrefix, stamp)}
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res := cl.ProduceSync(pctx, rs...)
	if err := res.FirstErr(); err != nil {
		return nil, fmt.Errorf("write sentinels to %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	for _, r := range res {
		ends[r.Record.Partition] = r.Record.Offset + 1
	}
	return ends, nil
}

// readUntil reads every partition of topic from its start with the given isolation level until the
// record before ends[partition], within timeout. Sentinels are left out.
func readUntil(ctx context.Context, seeds []string, topic string, level kgo.IsolationLevel, ends map[int32]int64, timeout time.Duration) (map[int32][]LogRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	offsets := map[int32]kgo.Offset{}
	for p := range ends {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(level),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	logs := map[int32][]LogRecord{}
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	var lastErr error
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w; read up to %v of %v; last fetch error: %v", topic, ctx.Err(), next, ends, lastErr)
		}
		var fatal error
		fs.EachError(func(_ string, p int32, err error) {
			lastErr = fmt.Errorf("partition %d: %w", p, err)
			if ke := (*kerr.Error)(nil); errors.As(err, &ke) && !ke.Retriable {
				fatal = lastErr
			}
		})
		if fatal != nil {
			return nil, fmt.Errorf("read %s: %w", topic, fatal)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] && !strings.HasPrefix(string(r.Value), sentinelPrefix) {
				logs[r.Partition] = append(logs[r.Partition], LogRecord{Offset: r.Offset, Value: r.Value})
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
	}
	return logs, nil
}
