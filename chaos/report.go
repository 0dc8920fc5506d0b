package chaos

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Kill is what happened around one SIGKILL.
type Kill struct {
	// N counts the kills from 1.
	N int
	// Victim is the killed broker; WasController says it was the active controller.
	Victim        int32
	WasController bool
	// Led are the partitions the victim led when it was killed.
	Led []int32
	// Failover is, per partition in Led, the time from the kill to the first acknowledgement of a
	// record issued after the kill. Partitions missing here did not fail over within FailoverTimeout.
	Failover map[int32]time.Duration
	// Elected is, per partition in Led, the time from the kill until a running broker's Metadata first
	// named another leader: the broker's share of Failover.
	Elected map[int32]time.Duration
	// NewController is the controller after the victim rejoined.
	NewController int32
	// Down is how long the victim was down; Rejoin the time from its restart until every ISR was full.
	Down, Rejoin time.Duration
	// Problem describes what went wrong, if anything.
	Problem string
	// At is when the SIGKILL was sent.
	At time.Time
	// WasCoordinator says the victim was the transaction coordinator of one of the pipeline's
	// transactional ids (ModeTxn; FindCoordinator key type 1).
	WasCoordinator bool
	// Resumed is the time from the kill to the pipeline's first committed transaction after it
	// (ModeTxn; -1 if none followed).
	Resumed time.Duration
}

// Report is the outcome of a chaos run.
type Report struct {
	// Config is the configuration the run used, defaults applied.
	Config Config
	// Duration is the wall time of the run; Producing the time the producers ran.
	Duration, Producing time.Duration
	// Kills are the kills done, in order.
	Kills []Kill
	// Acked and Failed count produced records with and without an acknowledgement.
	Acked, Failed int64
	// Failures are the most frequent produce errors.
	Failures []string
	// AckLatencyP50 and AckLatencyP99 are over all acknowledged records, from the produce call to the
	// acknowledgement, failovers included.
	AckLatencyP50, AckLatencyP99 time.Duration
	// DataLossEvents counts kgo's own detections of data loss (OUT_OF_ORDER_SEQUENCE_NUMBER and the like).
	DataLossEvents int
	// Check is the verdict after the kills.
	Check Check
	// AfterRestartAll is the verdict after all brokers were killed and restarted at once (nil when not
	// done).
	AfterRestartAll *Check
	// Txn is the exactly-once pipeline's outcome (ModeTxn only).
	Txn *TxnReport
	// Problems are the failures that stopped or spoiled the run (a broker that did not rejoin, a stuck
	// failover, a read-back that did not finish).
	Problems []string
}

// FailoverSamples returns every measured failover time, sorted.
func (r Report) FailoverSamples() []time.Duration {
	return r.samples(func(k Kill) map[int32]time.Duration { return k.Failover }, nil)
}

// ElectionSamples returns every measured time to a new leader in Metadata, sorted.
func (r Report) ElectionSamples() []time.Duration {
	return r.samples(func(k Kill) map[int32]time.Duration { return k.Elected }, nil)
}

// samples collects one map of every kill, optionally only the kills keep accepts.
func (r Report) samples(of func(Kill) map[int32]time.Duration, keep func(Kill) bool) []time.Duration {
	var ds []time.Duration
	for _, k := range r.Kills {
		if keep != nil && !keep(k) {
			continue
		}
		for _, d := range of(k) {
			ds = append(ds, d)
		}
	}
	slices.Sort(ds)
	return ds
}

// Percentile returns the nearest-rank q-th percentile (0 < q <= 100) of sorted samples, 0 if none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// OK reports whether the run did every kill, lost, moved, duplicated and reordered nothing, and hit
// no problem.
func (r Report) OK() bool {
	if len(r.Problems) > 0 || len(r.Kills) < r.Config.Kills || r.Check.Violations() > 0 {
		return false
	}
	if r.Txn != nil && (r.Txn.Check.Violations() > 0 || r.Txn.AfterRestartAll != nil && r.Txn.AfterRestartAll.Violations() > 0) {
		return false
	}
	return r.AfterRestartAll == nil || r.AfterRestartAll.Violations() == 0
}

// TxnReport is the outcome of the exactly-once pipeline of a ModeTxn run.
type TxnReport struct {
	// Stats count the pipeline's transactions and records.
	Stats TxnStats
	// Errors are the most frequent errors of the pipeline's clients.
	Errors []string
	// Check is the read_committed checker's verdict after the kills.
	Check TxnCheck
	// AfterRestartAll is the verdict after all brokers were killed and restarted at once.
	AfterRestartAll *TxnCheck
}

// ResumedSamples returns, sorted, the time from each kill to the pipeline's next committed
// transaction, of the kills keep accepts (nil: all).
func (r Report) ResumedSamples(keep func(Kill) bool) []time.Duration {
	var ds []time.Duration
	for _, k := range r.Kills {
		if k.Resumed >= 0 && (keep == nil || keep(k)) {
			ds = append(ds, k.Resumed)
		}
	}
	slices.Sort(ds)
	return ds
}

func writeTxn(w io.Writer, r Report) {
	t := r.Txn
	c := r.Config
	fmt.Fprintf(w, "\nexactly-once pipeline: %d GroupTransactSessions (read_committed, transaction.timeout.ms %v) copy %s to %s\n",
		c.Transformers, c.TransactionTimeout, c.Topic, outputTopic(c))
	fmt.Fprintf(w, "  transactions: %d committed, %d aborted by the pipeline (%d of them because a record failed, the others at rebalances), %d session restarts; %d input records committed\n",
		t.Stats.Committed, t.Stats.Aborted, t.Stats.ProduceFailedAborts, t.Stats.Restarts, t.Stats.Records)
	fmt.Fprintf(w, "  deliberately aborted transactions: %d, %d marker records acknowledged\n", t.Stats.MarkerTxns, t.Stats.MarkerRecords)
	coord := 0
	for _, k := range r.Kills {
		if k.WasCoordinator {
			coord++
		}
	}
	fmt.Fprintf(w, "  kills of a transaction coordinator: %d\n", coord)
	fmt.Fprintf(w, "  %-4s %-7s %-10s %-11s %s\n", "kill", "victim", "controller", "coordinator", "pipeline resumed")
	for _, k := range r.Kills {
		resumed := "never"
		if k.Resumed >= 0 {
			resumed = k.Resumed.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "  %-4d %-7d %-10v %-11v %s\n", k.N, k.Victim, k.WasController, k.WasCoordinator, resumed)
	}
	fmt.Fprintf(w, "pipeline resumed (kill -> next committed transaction):\n")
	writeDist(w, "all kills", r.ResumedSamples(nil))
	writeDist(w, "controller kills", r.ResumedSamples(func(k Kill) bool { return k.WasController }))
	writeDist(w, "coordinator kills", r.ResumedSamples(func(k Kill) bool { return k.WasCoordinator }))
	for _, e := range t.Errors {
		fmt.Fprintf(w, "  %s\n", e)
	}
	writeTxnCheck(w, "after the kills", t.Check)
	if t.AfterRestartAll != nil {
		writeTxnCheck(w, "after killing and restarting all brokers at once", *t.AfterRestartAll)
	}
}

func writeTxnCheck(w io.Writer, title string, c TxnCheck) {
	fmt.Fprintf(w, "\nread_committed check %s: %d input records, %d output records: missing %d, duplicated %d, foreign %d, aborted visible %d, offset mismatches %d; aborted markers in the log %d of %d\n",
		title, c.Input, c.Output, c.Missing, c.Duplicated, c.Foreign, c.AbortedVisible, c.OffsetMismatch, c.MarkersSeenUncommitted, c.Markers)
	for _, e := range c.Examples {
		fmt.Fprintf(w, "      %s\n", e)
	}
}

// Write prints the report for people.
func (r Report) Write(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\n== sluice chaos report ==\n")
	fmt.Fprintf(w, "config: %d brokers (%s), topic %q: %d partitions, RF %d, min.insync.replicas %d, %d CPU hogs\n",
		c.Brokers, strings.ReplaceAll(strings.TrimSpace(c.BrokerConfig), "\n", "; "), c.Topic, c.Partitions,
		c.ReplicationFactor, c.MinInsyncReplicas, c.Hogs)
	fmt.Fprintf(w, "producers: %d idempotent kgo clients, acks=all, %d records/s offered in total, %d in flight per producer and partition,\n",
		c.Producers, c.Rate, c.InFlight)
	fmt.Fprintf(w, "           delivery timeout %v, metadata min age %v, retry backoff 100ms..%v\n", c.DeliveryTimeout, c.MetadataMinAge, c.RetryBackoffMax)
	fmt.Fprintf(w, "kills: %d of %d done (kill n targets the controller when n is a multiple of %d), down %v..%v, seed %d, wall time %v\n",
		len(r.Kills), c.Kills, c.ControllerEvery, c.MinDown, c.MaxDown, c.Seed, r.Duration.Round(time.Second))
	ctl, leaders := 0, 0
	for _, k := range r.Kills {
		if k.WasController {
			ctl++
		}
		if len(k.Led) > 0 {
			leaders++
		}
	}
	fmt.Fprintf(w, "       %d hit the controller, %d hit a partition leader\n", ctl, leaders)
	fmt.Fprintf(w, "\n%-4s %-7s %-5s %-8s %-32s %-8s %-8s %s\n", "kill", "victim", "ctrl", "led", "elected/acked", "down", "rejoin", "problem")
	for _, k := range r.Kills {
		var fo []string
		for _, p := range k.Led {
			e := "?"
			if d, ok := k.Elected[p]; ok {
				e = fmt.Sprint(d.Milliseconds())
			}
			if d, ok := k.Failover[p]; ok {
				fo = append(fo, fmt.Sprintf("%d:%s/%dms", p, e, d.Milliseconds()))
			} else {
				fo = append(fo, fmt.Sprintf("%d:%s/stuck", p, e))
			}
		}
		fmt.Fprintf(w, "%-4d %-7d %-5v %-8s %-32s %-8s %-8s %s\n", k.N, k.Victim, k.WasController,
			fmt.Sprint(k.Led), strings.Join(fo, " "), k.Down.Round(time.Millisecond), k.Rejoin.Round(time.Millisecond), k.Problem)
	}
	failover := func(k Kill) map[int32]time.Duration { return k.Failover }
	elected := func(k Kill) map[int32]time.Duration { return k.Elected }
	isCtl := func(k Kill) bool { return k.WasController }
	notCtl := func(k Kill) bool { return !k.WasController }
	fmt.Fprintf(w, "\nfailover (kill -> first ack of a record issued after the kill, per partition the victim led):\n")
	writeDist(w, "all kills", r.samples(failover, nil))
	writeDist(w, "controller kills", r.samples(failover, isCtl))
	writeDist(w, "other kills", r.samples(failover, notCtl))
	fmt.Fprintf(w, "new leader in Metadata (kill -> a running broker names another leader; the broker's share):\n")
	writeDist(w, "all kills", r.samples(elected, nil))
	writeDist(w, "controller kills", r.samples(elected, isCtl))
	writeDist(w, "other kills", r.samples(elected, notCtl))
	rate := 0.0
	if r.Producing > 0 {
		rate = float64(r.Acked) / r.Producing.Seconds()
	}
	fmt.Fprintf(w, "\nproduced: %d acknowledged (%.0f/s while producing), %d not acknowledged; kgo data-loss detections: %d\n",
		r.Acked, rate, r.Failed, r.DataLossEvents)
	fmt.Fprintf(w, "acknowledgement latency (produce call -> ack, failovers included): p50 %v, p99 %v\n",
		r.AckLatencyP50.Round(time.Millisecond/10), r.AckLatencyP99.Round(time.Millisecond/10))
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  %s\n", f)
	}
	writeCheck(w, "after the kills", r.Check)
	if r.AfterRestartAll != nil {
		writeCheck(w, "after killing and restarting all brokers at once", *r.AfterRestartAll)
	}
	if r.Txn != nil {
		writeTxn(w, r)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
	if r.OK() {
		if r.Txn != nil {
			fmt.Fprintf(w, "\nRESULT: PASS (0 lost, 0 duplicated, 0 reordered; exactly once, nothing aborted visible)\n")
			return
		}
		fmt.Fprintf(w, "\nRESULT: PASS (0 lost, 0 duplicated, 0 reordered)\n")
	} else {
		fmt.Fprintf(w, "\nRESULT: FAIL\n")
	}
}

func writeDist(w io.Writer, title string, sorted []time.Duration) {
	fmt.Fprintf(w, "  %-17s samples %3d  p50 %-8v p99 %-8v max %v\n", title+":", len(sorted),
		Percentile(sorted, 50).Round(time.Millisecond), Percentile(sorted, 99).Round(time.Millisecond),
		Percentile(sorted, 100).Round(time.Millisecond))
}

func writeCheck(w io.Writer, title string, c Check) {
	fmt.Fprintf(w, "\ncheck %s: %d acknowledged, %d in the log: lost %d, moved %d, duplicated %d, reordered %d, foreign %d (unacknowledged but present %d)\n",
		title, c.Acked, c.InLog, c.Lost, c.Moved, c.Duplicated, c.Reordered, c.Foreign, c.Unacked)
	fmt.Fprintf(w, "  %-9s %-9s %-9s %-5s %-6s %-10s %-9s %-8s %s\n", "partition", "acked", "in log", "lost", "moved", "duplicated", "reordered", "unacked", "foreign")
	for _, p := range c.Partitions {
		fmt.Fprintf(w, "  %-9d %-9d %-9d %-5d %-6d %-10d %-9d %-8d %d\n", p.Partition, p.Acked, p.InLog, p.Lost, p.Moved,
			p.Duplicated, p.Reordered, p.Unacked, p.Foreign)
		for _, e := range p.Examples {
			fmt.Fprintf(w, "      %s\n", e)
		}
	}
}
