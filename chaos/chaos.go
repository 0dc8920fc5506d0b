package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Run starts a cluster, runs the producers and the kills, checks the topic and returns the report,
// printing progress to out. The error is for a run that could not take place (no binary, a cluster
// that does not start); broken promises are in the report (Report.OK).
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	start := time.Now()
	if err := cfg.SetDefaults(); err != nil {
		return Report{}, err
	}
	rep := Report{Config: cfg}
	tempDir := cfg.Dir == ""
	if tempDir {
		dir, err := os.MkdirTemp("", "sluice-chaos-")
		if err != nil {
			return rep, err
		}
		cfg.Dir = dir
		rep.Config.Dir = dir
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	stopHogs, err := startHogs(cfg.Hogs)
	if err != nil {
		return rep, err
	}
	defer stopHogs()
	if cfg.Hogs > 0 {
		say("started %d CPU hogs", cfg.Hogs)
	}
	say("starting %d brokers under %s", cfg.Brokers, cfg.Dir)
	cl, err := StartCluster(ctx, ClusterConfig{Bin: cfg.Bin, Dir: cfg.Dir, Brokers: cfg.Brokers, BrokerConfig: cfg.BrokerConfig})
	if err != nil {
		return rep, fmt.Errorf("start cluster (logs under %s): %w", cfg.Dir, err)
	}
	defer func() {
		cl.Close()
		if tempDir && rep.OK() && !cfg.KeepDir {
			os.RemoveAll(cfg.Dir)
		} else {
			say("broker logs and data kept under %s", cfg.Dir)
		}
	}()
	if err := createTopic(ctx, cl, cfg); err != nil {
		return rep, err
	}
	topics := []string{cfg.Topic}
	if cfg.Mode == ModeTxn {
		out := cfg
		out.Topic = outputTopic(cfg)
		if err := createTopic(ctx, cl, out); err != nil {
			return rep, err
		}
		topics = append(topics, out.Topic)
	}
	if err := cl.WaitHealthy(ctx, cfg.RejoinTimeout, topics...); err != nil {
		return rep, err
	}
	say("topic %s ready: %d partitions, RF %d, min.insync.replicas %d", cfg.Topic, cfg.Partitions, cfg.ReplicationFactor, cfg.MinInsyncReplicas)

	l := newLedger()
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	producingSince := time.Now()
	ps, err := startProducers(prodCtx, cfg, cl.Bootstrap(), l)
	if err != nil {
		return rep, err
	}
	if err := waitEveryPartitionAcked(ctx, cfg, l); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	var (
		pl      *pipeline
		coord   func(context.Context, int) (int32, error)
		adm     *kadm.Client
		markers []string
	)
	if cfg.Mode == ModeTxn {
		pl = startPipeline(ctx, cfg, cl.Bootstrap())
		defer pl.stop()
		admCl, err := kgo.NewClient(kgo.SeedBrokers(cl.Bootstrap()...), kgo.MetadataMinAge(100*time.Millisecond))
		if err != nil {
			return rep, err
		}
		defer admCl.Close()
		adm = kadm.NewClient(admCl)
		coord = func(ctx context.Context, n int) (int32, error) { return pl.coordinator(ctx, adm, n) }
		say("exactly-once pipeline started: %d sessions in group %s, %s -> %s, aborted transactions on %s",
			cfg.Transformers, groupName(cfg), cfg.Topic, outputTopic(cfg), outputTopic(cfg))
	}

	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0))
	for n := 1; n <= cfg.Kills && len(rep.Problems) == 0 && ctx.Err() == nil; n++ {
		k := killOne(ctx, cl, cfg, l, rng, n, coord)
		rep.Kills = append(rep.Kills, k)
		acked, failed := l.counts()
		var fo []string
		for _, p := range k.Led {
			if d, ok := k.Failover[p]; ok {
				fo = append(fo, fmt.Sprintf("%d:%dms", p, d.Milliseconds()))
			}
		}
		k.Resumed = -1
		if pl != nil {
			if d, ok := pl.resumedAfter(k.At); ok {
				k.Resumed = d
			}
		}
		resumed := ""
		if pl != nil {
			resumed = "; pipeline resumed after " + k.Resumed.Round(time.Millisecond).String()
			if k.Resumed < 0 {
				resumed = "; pipeline has committed no transaction since (yet)"
			}
		}
		say("kill %d/%d: broker %d (controller %v, coordinator %v) led %v, failover %v, down %v, rejoined in %v, controller now %d; acked %d failed %d%s %s",
			n, cfg.Kills, k.Victim, k.WasController, k.WasCoordinator, k.Led, fo, k.Down.Round(time.Millisecond),
			k.Rejoin.Round(time.Millisecond), k.NewController, acked, failed, resumed, k.Problem)
		if k.Problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("kill %d (broker %d): %s", n, k.Victim, k.Problem))
		}
	}
	if err := ctx.Err(); err != nil {
		rep.Problems = append(rep.Problems, "interrupted: "+err.Error())
	}

	say("stopping producers")
	if err := ps.stop(stopProducing, cfg.DeliveryTimeout+10*time.Second); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.Producing = time.Since(producingSince)
	if pl != nil {
		rep.Txn = &TxnReport{}
		say("waiting for the pipeline to commit every input offset")
		if err := pl.waitCaughtUp(context.WithoutCancel(ctx), adm, cfg.CatchUpTimeout); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		}
		pl.stop()
		// A pipeline may resume after the victim rejoined: measure every kill again at the end.
		for i := range rep.Kills {
			rep.Kills[i].Resumed = -1
			if d, ok := pl.resumedAfter(rep.Kills[i].At); ok {
				rep.Kills[i].Resumed = d
			}
		}
		rep.Txn.Stats, rep.Txn.Errors, markers = pl.snapshot()
		if c, err := checkPipeline(context.WithoutCancel(ctx), cfg, cl.Bootstrap(), markers); err != nil {
			rep.Problems = append(rep.Problems, "pipeline check after the kills: "+err.Error())
		} else {
			rep.Txn.Check = c
			say("read_committed check: %d input, %d output: missing %d, duplicated %d, aborted visible %d, offset mismatches %d, markers in the log %d of %d",
				c.Input, c.Output, c.Missing, c.Duplicated, c.AbortedVisible, c.OffsetMismatch, c.MarkersSeenUncommitted, c.Markers)
		}
	}
	acks, failures, dataLoss := l.snapshot()
	rep.Acked, rep.Failed = l.counts()
	rep.Failures = topFailures(failures, 5)
	rep.DataLossEvents = dataLoss
	lat := l.latencies()
	rep.AckLatencyP50, rep.AckLatencyP99 = Percentile(lat, 50), Percentile(lat, 99)

	check := func(what string) (Check, bool) {
		checkCtx := context.WithoutCancel(ctx)
		if err := cl.WaitHealthy(checkCtx, cfg.RejoinTimeout, cfg.Topic); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("before the check %s: %v", what, err))
		}
		logs, err := ReadPartitions(checkCtx, cl.Bootstrap(), cfg.Topic, 2*time.Minute)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("read back %s: %v", what, err))
			return Check{}, false
		}
		c := CheckTopic(cfg.Partitions, acks, logs)
		say("checked %s: %d acknowledged, %d in the log, lost %d, moved %d, duplicated %d, reordered %d",
			what, c.Acked, c.InLog, c.Lost, c.Moved, c.Duplicated, c.Reordered)
		return c, true
	}
	say("reading every partition back")
	rep.Check, _ = check("after the kills")

	if cfg.RestartAll {
		say("killing all brokers at once and restarting them")
		if err := restartAll(context.WithoutCancel(ctx), cl); err != nil {
			rep.Problems = append(rep.Problems, "restart all: "+err.Error())
		} else if c, ok := check("after restarting all brokers"); ok {
			rep.AfterRestartAll = &c
			if rep.Txn != nil {
				if c, err := checkPipeline(context.WithoutCancel(ctx), cfg, cl.Bootstrap(), markers); err != nil {
					rep.Problems = append(rep.Problems, "pipeline check after restarting all brokers: "+err.Error())
				} else {
					rep.Txn.AfterRestartAll = &c
				}
			}
		}
	}
	rep.Duration = time.Since(start)
	if !rep.OK() {
		say("broker log tails:\n%s", cl.Logs(20))
	}
	return rep, nil
}

// createTopic creates the chaos topic, retrying while the cluster is still forming.
func createTopic(ctx context.Context, cl *Cluster, cfg Config) error {
	kcl, err := kgo.NewClient(kgo.SeedBrokers(cl.Bootstrap()...))
	if err != nil {
		return err
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	minISR := strconv.Itoa(cfg.MinInsyncReplicas)
	return WaitFor(ctx, 30*time.Second, "create topic "+cfg.Topic, func(ctx context.Context) (bool, error) {
		resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor,
			map[string]*string{"min.insync.replicas": &minISR}, cfg.Topic)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return true, nil
		}
		return err == nil, err
	})
}

// waitEveryPartitionAcked waits until the producers have an acknowledgement on every partition, so
// that failover times are measured against a running stream.
func waitEveryPartitionAcked(ctx context.Context, cfg Config, l *ledger) error {
	return WaitFor(ctx, 30*time.Second, "a first acknowledgement on every partition", func(context.Context) (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for p := int32(0); p < cfg.Partitions; p++ {
			if len(l.acks[p]) == 0 {
				return false, fmt.Errorf("partition %d has no acknowledgement yet; produce errors so far: %v", p, topFailures(l.failures, 3))
			}
		}
		return true, nil
	})
}

// killOne kills one broker of a healthy cluster, measures the failover of the partitions it led,
// restarts it and waits until every ISR is full again.
//
// With coord (ModeTxn), the kills that do not hit the controller hit the transaction coordinator coord
// names, when it is running; coord's error falls back to a random broker.
func killOne(ctx context.Context, cl *Cluster, cfg Config, l *ledger, rng *rand.Rand, n int, coord func(context.Context, int) (int32, error)) Kill {
	k := Kill{N: n, Victim: -1, NewController: -1, Failover: map[int32]time.Duration{}}
	view, err := cl.healthy(ctx, []string{cfg.Topic})
	if err != nil {
		k.Problem = "cluster not healthy before the kill: " + err.Error()
		return k
	}
	ctl, err := cl.Controller(ctx)
	if err != nil {
		k.Problem = "no controller before the kill: " + err.Error()
		return k
	}
	running := cl.Running()
	if n%cfg.ControllerEvery == 0 {
		k.Victim = ctl
	} else {
		others := slices.DeleteFunc(slices.Clone(running), func(id int32) bool { return id == ctl })
		k.Victim = others[rng.IntN(len(others))]
		if coord != nil {
			if c, err := coord(ctx, n); err == nil && slices.Contains(running, c) {
				k.Victim, k.WasCoordinator = c, true
			}
		}
	}
	k.WasController = k.Victim == ctl
	k.Led = view.LeaderOf(cfg.Topic, k.Victim)

	killedAt := time.Now()
	k.At = killedAt
	watchers := make([]*watcher, len(k.Led))
	for i, p := range k.Led {
		watchers[i] = l.watch(p, killedAt)
	}
	defer l.unwatch(watchers)
	if err := cl.Kill(k.Victim); err != nil {
		k.Problem = err.Error()
		return k
	}
	downUntil := killedAt.Add(cfg.MinDown + time.Duration(rng.Int64N(int64(cfg.MaxDown-cfg.MinDown)+1)))
	failoverCtx, cancelFailover := context.WithDeadline(ctx, killedAt.Add(cfg.FailoverTimeout))
	defer cancelFailover()
	electedDone := make(chan map[int32]time.Duration, 1)
	go func() { electedDone <- watchElections(failoverCtx, cl, cfg.Topic, k.Victim, k.Led, killedAt) }()
	for i, w := range watchers {
		select {
		case at := <-w.acked:
			k.Failover[k.Led[i]] = at.Sub(killedAt)
		case <-failoverCtx.Done():
		}
	}
	k.Elected = <-electedDone
	if ctx.Err() != nil {
		k.Problem = ctx.Err().Error()
		return k
	}
	if len(k.Failover) < len(k.Led) {
		var stuck []int32
		for _, p := range k.Led {
			if _, ok := k.Failover[p]; !ok {
				stuck = append(stuck, p)
			}
		}
		k.Problem = fmt.Sprintf("partitions %v accepted no produce within %v of the kill", stuck, cfg.FailoverTimeout)
		if v, err := cl.AnyView(ctx, cfg.Topic); err == nil {
			for _, p := range stuck {
				st := v.Partitions[cfg.Topic][p]
				k.Problem += fmt.Sprintf("; node %d says %d: leader %d epoch %d isr %v", v.Node, p, st.Leader, st.LeaderEpoch, st.ISR)
			}
		}
	}
	select {
	case <-time.After(time.Until(downUntil)):
	case <-ctx.Done():
		return k
	}
	restartAt := time.Now()
	k.Down = restartAt.Sub(killedAt)
	if err := cl.Restart(ctx, k.Victim); err != nil {
		k.Problem = joinProblem(k.Problem, "restart: "+err.Error())
		return k
	}
	if err := cl.WaitHealthy(ctx, cfg.RejoinTimeout, cfg.Topic); err != nil {
		k.Problem = joinProblem(k.Problem, "did not rejoin: "+err.Error())
		return k
	}
	k.Rejoin = time.Since(restartAt)
	// Give the controller a moment to hand the restarted broker's preferred leaderships back, so
	// the next kill of it measures failovers too; not having them is not a failure.
	_ = WaitFor(ctx, 5*time.Second, "preferred leaders", func(ctx context.Context) (bool, error) {
		v, err := cl.healthy(ctx, []string{cfg.Topic})
		if err != nil {
			return false, err
		}
		for _, st := range v.Partitions[cfg.Topic] {
			if len(st.Replicas) > 0 && st.Leader != preferred(st) {
				return false, nil
			}
		}
		return true, nil
	})
	if c, err := cl.Controller(ctx); err == nil {
		k.NewController = c
	}
	return k
}

// watchElections polls Metadata until every partition in led has a leader other than victim, and
// returns per partition the time from the kill until a node first reported it. This is the broker's
// share of the failover time; the rest is the client noticing.
func watchElections(ctx context.Context, cl *Cluster, topic string, victim int32, led []int32, killedAt time.Time) map[int32]time.Duration {
	elected := map[int32]time.Duration{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(elected) < len(led) {
		for _, id := range cl.Running() {
			v, err := cl.View(ctx, id, topic)
			if err != nil {
				continue
			}
			at := time.Since(killedAt)
			for _, p := range led {
				st, ok := v.Partitions[topic][p]
				if _, seen := elected[p]; !seen && ok && st.Leader >= 0 && st.Leader != victim {
					elected[p] = at
				}
			}
		}
		select {
		case <-ctx.Done():
			return elected
		case <-tick.C:
		}
	}
	return elected
}

// preferred is the preferred leader of a partition, its first assigned replica.
func preferred(st PartitionState) int32 { return st.Replicas[0] }

func joinProblem(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// restartAll kills every broker at once and starts them all again.
func restartAll(ctx context.Context, cl *Cluster) error {
	for _, id := range cl.Running() {
		if err := cl.Kill(id); err != nil {
			return err
		}
	}
	for _, n := range cl.Nodes() {
		if err := cl.Start(n.ID); err != nil {
			return err
		}
	}
	for _, n := range cl.Nodes() {
		if err := cl.WaitReady(ctx, n.ID); err != nil {
			return err
		}
	}
	return cl.WaitBrokers(ctx, 60*time.Second)
}

// startHogs starts n CPU hogs: busy shell loops in processes of their own, so that they compete with
// the brokers for the CPU at the same priority. The returned function kills them.
func startHogs(n int) (stop func(), err error) {
	var hogs []*exec.Cmd
	stop = func() {
		for _, h := range hogs {
			h.Process.Kill()
			h.Wait()
		}
	}
	for range n {
		h := exec.Command("sh", "-c", "while :; do :; done")
		if err := h.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start CPU hog: %w", err)
		}
		hogs = append(hogs, h)
	}
	return stop, nil
}
