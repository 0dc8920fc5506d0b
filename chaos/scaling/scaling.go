// Package scaling is the scaling scenario of issue 16, shared by the scaling drill
// (test/cluster, TestScalingDrill) and `make demo SCENARIO=scale` (stack): idempotent
// acks=all producers and a consumer group that know only the gateway's address;
// two broker-only nodes join (the balancer paused with the dynamic config
// auto.balance.enable=false while they do) and, once it is resumed, the
// controller balances onto them by itself; a
// controller-only node joins the quorum and an original broker leaves it, is
// drained, stopped and unregistered; another broker is killed with SIGKILL and
// restarted. Afterwards every acknowledged record was consumed, in order per
// partition, without duplicates in the log; no client surfaced an error; and
// replicas, leaders and bytes are within 10% of the mean per broker.
//
// It measures the time to reach balance and the acknowledged throughput before
// the brokers joined, with them joined and nothing moving, during balancing and
// after it, and reports them; it asserts no speed
// (docs/benchmarks.md, "Scaling drill").
package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/chaos"
)

// Partitions is the scenario topic's partition count: with the balancer evening
// out to within one per broker, it makes "within 10% of the mean" reachable for
// leaders on the final four brokers (ten each).
const Partitions = 40

// Node is a broker of the cluster the scenario runs on.
type Node struct {
	// ID is the node id.
	ID int32
	// Addr is its Kafka listener, MetricsAddr its /metrics and admin interface.
	Addr, MetricsAddr string
}

// Cluster is what the scenario does to the cluster it runs on: the drill's
// processes or the local stack.
type Cluster interface {
	// AddBroker starts a broker-only node without a node id that finds the
	// quorum through the controllers, waits until it is ready and returns it.
	AddBroker(ctx context.Context, name string) (Node, error)
	// AddController starts a controller-only node with node id id and waits
	// until it is ready (an observer of the quorum).
	AddController(ctx context.Context, id int32) error
	// Stop stops broker id cleanly and waits until it exited.
	Stop(ctx context.Context, id int32) error
	// Kill ends broker id with SIGKILL.
	Kill(ctx context.Context, id int32) error
	// Restart starts broker id again, after Kill, and waits until it is ready.
	Restart(ctx context.Context, id int32) error
}

// Config is the scenario's setting.
type Config struct {
	// Gateway is the one address the clients know.
	Gateway string
	// Brokers are the original controllers+brokers, node ids 1, 2, 3.
	Brokers []Node
	// Bin is the sluice binary, for the operator's `sluice cluster` commands.
	Bin string
	// Topic is the topic the clients use, default "scaling".
	Topic string
	// Leave is the original broker that leaves the quorum and is drained,
	// stopped and unregistered, default 3.
	Leave int32
	// Kill is the broker killed with SIGKILL and restarted, one of the original
	// brokers but Leave; 0 kills the first broker added (the local stack's
	// original brokers run in its process).
	Kill int32
	// Controller is the node id of the controller-only node added, default 4.
	Controller int32
	// Out receives a line per step and its outcome.
	Out io.Writer
	// Paired has the balancer work in windows of 10 s, each followed by 10 s
	// paused, and reports their paired ratio (Result.Pairs); it makes the
	// scenario about 100 s longer (bench/scaling.sh sets it). Without it the
	// balancer works without a pause until balance.
	Paired bool
}

// Result is what the scenario measured.
type Result struct {
	// Added are the node ids the controller allocated to the two new brokers.
	Added []int32
	// Before is the acknowledged records/s over the 10 s before the brokers
	// were added; During over the windows the balancer worked until balance.
	Before, During float64
	// Idle is the acknowledged records/s over 10 s with the new brokers joined
	// and the balancer paused (auto.balance.enable=false): the same five
	// processes as During with nothing moving, the baseline of what balancing
	// itself costs.
	Idle float64
	// After is the acknowledged records/s over the 10 s after balance.
	After float64
	// Pairs are the acknowledged records/s of each window of 10 s the balancer
	// worked and of the 10 s paused right after it.
	Pairs [][2]float64
	// Joining is the time the two new brokers took to start and register.
	Joining time.Duration
	// TimeToBalance is the time the balancer worked (the paused windows left
	// out), from its resumption with the new brokers registered to the first
	// Metadata answer with the topic's replicas within one per broker and every
	// ISR full.
	TimeToBalance time.Duration
	// Acked is the number of records acknowledged, all of them consumed.
	Acked int64
	// Redelivered counts records the group received more than once (at least once).
	Redelivered int
}

// Ratio is During/Before, the share of its throughput client traffic kept
// while partitions moved, against the three brokers before the new ones joined.
func (r Result) Ratio() float64 {
	if r.Before == 0 {
		return 0
	}
	return r.During / r.Before
}

// PairedRatio is the median over Pairs of the rate while moving over the rate
// paused right after: the cost of balancing with the machine's drift paired out.
func (r Result) PairedRatio() float64 {
	var rs []float64
	for _, p := range r.Pairs {
		if p[1] > 0 {
			rs = append(rs, p[0]/p[1])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	if n := len(rs); n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2
	}
	return rs[len(rs)/2]
}

// IdleRatio is During/Idle, the share kept against the same five brokers with
// nothing moving: what balancing itself costs the clients.
func (r Result) IdleRatio() float64 {
	if r.Idle == 0 {
		return 0
	}
	return r.During / r.Idle
}

func (c *Config) defaults() error {
	if c.Topic == "" {
		c.Topic = "scaling"
	}
	if c.Leave == 0 {
		c.Leave = 3
	}
	if c.Controller == 0 {
		c.Controller = 4
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Gateway == "" || c.Bin == "" {
		return errors.New("scaling: the gateway's address and the sluice binary are required")
	}
	ids := make([]int32, 0, len(c.Brokers))
	for _, b := range c.Brokers {
		ids = append(ids, b.ID)
	}
	if !slices.Equal(ids, []int32{1, 2, 3}) {
		return fmt.Errorf("scaling: the original brokers are %v, want [1 2 3]", ids)
	}
	if c.Kill == c.Leave {
		return fmt.Errorf("scaling: broker %d cannot both leave and be killed", c.Kill)
	}
	return nil
}

// Run runs the scenario on cl and reports each step to cfg.Out. Any client error,
// lost or reordered record, or a step that does not finish in its generous
// deadline is an error.
func Run(ctx context.Context, cl Cluster, cfg Config) (Result, error) {
	var res Result
	if err := cfg.defaults(); err != nil {
		return res, err
	}
	var outMu sync.Mutex // the rate watcher says things too
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(cfg.Out, "scaling: "+format+"\n", args...)
	}
	var seeds []string
	for _, b := range cfg.Brokers {
		seeds = append(seeds, b.Addr)
	}
	// The operator's tools talk to the brokers; the gateway presents the cluster as one broker.
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }), kgo.DialTimeout(time.Second))
	if err != nil {
		return res, err
	}
	defer admin.Close()
	if err := createTopic(ctx, admin, cfg.Topic); err != nil {
		return res, err
	}
	say("topic %s: %d partitions, replication factor 3, min.insync.replicas 2", cfg.Topic, Partitions)

	load := newLoad(cfg.Gateway, cfg.Topic)
	if err := load.start(ctx); err != nil {
		return res, err
	}
	defer load.close()
	if err := chaos.WaitFor(ctx, time.Minute, "first acknowledgements", func(context.Context) (bool, error) {
		if err := load.firstError(); err != nil {
			return false, chaos.Permanent{Err: err}
		}
		return load.acked.Load() >= 2000, nil
	}); err != nil {
		return res, err
	}
	res.Before = load.rate(10 * time.Second)
	say("2 idempotent acks=all producers and group %q through the gateway %s: %.0f records/s acknowledged", loadGroup, cfg.Gateway, res.Before)

	// The balancer is paused while the brokers join, so that the cluster's rate
	// with the new processes and nothing moving can be measured.
	if err := setAutoBalance(ctx, admin, false); err != nil {
		return res, err
	}
	say("balancer paused (auto.balance.enable=false, cluster default)")

	// Two broker-only nodes join; the controller balances by itself once resumed.
	joinStart := time.Now()
	brokers := slices.Clone(cfg.Brokers)
	var added []Node
	for _, name := range []string{"broker-a", "broker-b"} {
		n, err := cl.AddBroker(ctx, name)
		if err != nil {
			return res, fmt.Errorf("adding %s: %w", name, err)
		}
		added = append(added, n)
		res.Added = append(res.Added, n.ID)
		brokers = append(brokers, n)
		say("%s joined as broker %d (%s), broker-only, its id allocated by the controller", name, n.ID, n.Addr)
	}
	ids := nodeIDs(brokers)
	res.Joining = time.Since(joinStart)
	// 5 s for the new processes to settle, then 10 s measured with nothing moving.
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(15 * time.Second):
	}
	res.Idle = load.rate(10 * time.Second)
	if sum, err := balanceActivity(ctx, cfg.Brokers[0].MetricsAddr, joinStart, cfg.Topic); err == nil {
		say("paused since the brokers joined (/api/v1/events): %s", sum)
	}
	say("joined, balancer paused: %.0f records/s acknowledged over 10 s on the five brokers, %.2f of before", res.Idle, res.Idle/res.Before)
	if err := load.firstError(); err != nil {
		return res, err
	}
	if err := setAutoBalance(ctx, admin, true); err != nil {
		return res, err
	}
	joined := time.Now()
	ackedAtJoin := load.acked.Load()
	say("balancer resumed; waiting for it to move replicas and leaders onto %v (cluster events reassignment_started, reassignment_completed)", res.Added)
	// The acknowledged rate every 5 s while the balancer works.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		last := load.acked.Load()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-t.C:
			}
			n := load.acked.Load()
			say("  %s after the start: %.0f records/s acknowledged over the last 5 s", time.Since(joined).Round(time.Second), float64(n-last)/5)
			last = n
		}
	}()
	// With cfg.Paired the balancer works in windows of 10 s, each followed by 10 s paused (after
	// 2 s for the moves in progress to complete): on a machine whose load drifts, a moving window
	// and the paused one right after it compare the same cluster at nearly the same time.
	window := 5 * time.Minute
	if cfg.Paired {
		window = pairWindow
	}
	var moving time.Duration
	var movingAcked int64
	windowStart, windowAcked := joined, ackedAtJoin
	for {
		err = waitBalanced(ctx, admin, cfg.Topic, ids, window, false, say)
		moving += time.Since(windowStart)
		movingAcked += load.acked.Load() - windowAcked
		if err == nil {
			break
		}
		if ctx.Err() != nil || !cfg.Paired || moving > 5*time.Minute {
			stopWatch()
			<-watched
			return res, err
		}
		movingRate := float64(load.acked.Load()-windowAcked) / time.Since(windowStart).Seconds()
		if err := setAutoBalance(ctx, admin, false); err != nil {
			stopWatch()
			<-watched
			return res, err
		}
		pausedRate, err := measurePaused(ctx, load)
		if err != nil {
			stopWatch()
			<-watched
			return res, err
		}
		res.Pairs = append(res.Pairs, [2]float64{movingRate, pausedRate})
		say("  pair %d: %.0f records/s while moving, %.0f paused (%.2f)", len(res.Pairs), movingRate, pausedRate, movingRate/pausedRate)
		if err := setAutoBalance(ctx, admin, true); err != nil {
			stopWatch()
			<-watched
			return res, err
		}
		windowStart, windowAcked = time.Now(), load.acked.Load()
	}
	stopWatch()
	<-watched
	res.TimeToBalance = moving
	res.During = float64(movingAcked) / moving.Seconds()
	say("balanced over %v after %s of balancing (%s with the paused windows); acknowledged %.0f records/s while moving, %.2f of before, %.2f of joined and idle, %.2f paired with the paused windows (median of %d)",
		ids, res.TimeToBalance.Round(100*time.Millisecond), time.Since(joined).Round(time.Second), res.During, res.Ratio(), res.IdleRatio(), res.PairedRatio(), len(res.Pairs))
	if sum, err := balanceActivity(ctx, cfg.Brokers[0].MetricsAddr, joined, cfg.Topic); err == nil {
		say("what the cluster did meanwhile (/api/v1/events): %s", sum)
	}
	if err := load.firstError(); err != nil {
		return res, err
	}
	// The steady rate on five brokers, for comparison: what the cluster does after the moves.
	ackedAtBalance, balancedAt := load.acked.Load(), time.Now()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(10 * time.Second):
	}
	res.After = float64(load.acked.Load()-ackedAtBalance) / time.Since(balancedAt).Seconds()
	say("then %.0f records/s acknowledged over 10 s on the five brokers, %.2f of before", res.After, res.After/res.Before)

	// A controller-only node joins the quorum; the leaving broker leaves it, is
	// drained, stopped and unregistered.
	if err := cl.AddController(ctx, cfg.Controller); err != nil {
		return res, fmt.Errorf("adding controller %d: %w", cfg.Controller, err)
	}
	var cliSeeds []string
	for _, b := range brokers {
		if b.ID != cfg.Leave && b.ID != cfg.Kill {
			cliSeeds = append(cliSeeds, b.Addr)
		}
	}
	// sluice runs `sluice cluster VERB --bootstrap ... ARGS...` until done accepts its output and
	// error (nil: until it succeeds), within timeout: a command that fails part-way (a controller
	// change under it) is run again and picks up where it stopped.
	sluice := func(timeout time.Duration, done func(out string, err error) bool, verb string, args ...string) error {
		full := append([]string{"cluster", verb, "--bootstrap", strings.Join(cliSeeds, ",")}, args...)
		return chaos.WaitFor(ctx, timeout, "sluice "+strings.Join(full, " "), func(ctx context.Context) (bool, error) {
			out, err := exec.CommandContext(ctx, cfg.Bin, full...).CombinedOutput()
			if done != nil {
				if done(string(out), err) {
					return true, nil
				}
				return false, fmt.Errorf("%v: %s", err, out)
			}
			if err != nil {
				return false, fmt.Errorf("%v: %s", err, out)
			}
			return true, nil
		})
	}
	if err := sluice(time.Minute, nil, "add-controller", strconv.Itoa(int(cfg.Controller))); err != nil {
		return res, err
	}
	say("controller-only node %d joined the quorum (sluice cluster add-controller; event controller_added)", cfg.Controller)
	// Removing the active controller hands its leadership over and may answer NOT_CONTROLLER
	// (retry with the new controller); a retry after a removal that went through finds no voter.
	removes := 0
	if err := sluice(time.Minute, func(out string, err error) bool {
		removes++
		return err == nil || (removes > 1 && strings.Contains(out, "VOTER_NOT_FOUND"))
	}, "remove-controller", strconv.Itoa(int(cfg.Leave))); err != nil {
		return res, err
	}
	say("broker %d left the quorum (sluice cluster remove-controller; event controller_removed)", cfg.Leave)
	drainStart := time.Now()
	if err := sluice(6*time.Minute, func(out string, err error) bool { return err == nil && strings.Contains(out, "safe to stop") },
		"drain", "--timeout", "5m", strconv.Itoa(int(cfg.Leave))); err != nil {
		return res, err
	}
	say("broker %d drained in %s (sluice cluster drain: its replicas and leaders moved off)", cfg.Leave, time.Since(drainStart).Round(100*time.Millisecond))
	if err := cl.Stop(ctx, cfg.Leave); err != nil {
		return res, fmt.Errorf("stopping broker %d: %w", cfg.Leave, err)
	}
	if err := sluice(time.Minute, nil, "unregister", strconv.Itoa(int(cfg.Leave))); err != nil {
		return res, err
	}
	say("broker %d stopped and unregistered (sluice cluster unregister; event broker_unregistered)", cfg.Leave)
	brokers = slices.DeleteFunc(brokers, func(n Node) bool { return n.ID == cfg.Leave })
	ids = nodeIDs(brokers)

	// Kill -9 a broker and restart it.
	victim := cfg.Kill
	if victim == 0 {
		victim = added[0].ID
	}
	if err := cl.Kill(ctx, victim); err != nil {
		return res, fmt.Errorf("killing broker %d: %w", victim, err)
	}
	say("broker %d killed with SIGKILL", victim)
	if err := cl.Restart(ctx, victim); err != nil {
		return res, fmt.Errorf("restarting broker %d: %w", victim, err)
	}
	say("broker %d restarted", victim)

	var q adminapi.Quorum
	wantVoters := slices.DeleteFunc([]int32{1, 2, 3, cfg.Controller}, func(id int32) bool { return id == cfg.Leave })
	if err := chaos.WaitFor(ctx, time.Minute, "the quorum", func(ctx context.Context) (bool, error) {
		var err error
		q, err = adminapi.DescribeQuorum(ctx, admin)
		if err != nil {
			return false, err
		}
		if !slices.Equal(q.VoterIDs(), wantVoters) {
			return false, fmt.Errorf("voters %v, want %v", q.VoterIDs(), wantVoters)
		}
		if slices.Contains(q.ObserverIDs(), cfg.Leave) {
			return false, fmt.Errorf("unregistered broker %d is still an observer", cfg.Leave)
		}
		return true, nil
	}); err != nil {
		return res, err
	}
	say("quorum: voters %v, leader %d, observers %v", q.VoterIDs(), q.LeaderID, q.ObserverIDs())
	events, err := httpGet(ctx, "http://"+cfg.Brokers[0].MetricsAddr+"/api/v1/events")
	if err != nil {
		return res, err
	}
	for _, typ := range []string{"node_id_allocated", "observer_joined", "broker_joined", "controller_added", "controller_removed", "broker_unregistered", "reassignment_completed"} {
		if !strings.Contains(events, `"`+typ+`"`) {
			return res, fmt.Errorf("no cluster event %s in /api/v1/events", typ)
		}
	}

	// Stop the load, read everything, check.
	if err := chaos.WaitFor(ctx, 2*time.Minute, "ISRs full again", func(ctx context.Context) (bool, error) {
		return fullISRs(ctx, admin, cfg.Topic)
	}); err != nil {
		return res, err
	}
	load.stop()
	if err := load.firstError(); err != nil {
		return res, fmt.Errorf("an error surfaced to the application: %w", err)
	}
	res.Acked = load.acked.Load()
	if res.Redelivered, err = load.consumeAll(ctx); err != nil {
		return res, err
	}
	say("every one of %d acknowledged records consumed through the gateway, in order, no duplicate in the log; %d redelivered to the group (at least once); no client error",
		res.Acked, res.Redelivered)
	if err := waitBalanced(ctx, admin, cfg.Topic, ids, 5*time.Minute, true, say); err != nil {
		return res, err
	}
	if err := bytesBalanced(ctx, brokers, cfg.Topic, say); err != nil {
		return res, err
	}
	say("balanced over %v: replicas, leaders and bytes within 10%% of the mean", ids)
	return res, nil
}

func nodeIDs(ns []Node) []int32 {
	var ids []int32
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	return ids
}

// createTopic creates topic and waits until every partition has a leader and a full ISR.
func createTopic(ctx context.Context, kcl *kgo.Client, topic string) error {
	adm := kadm.NewClient(kcl)
	if err := chaos.WaitFor(ctx, time.Minute, "create "+topic, func(ctx context.Context) (bool, error) {
		resp, err := adm.CreateTopic(ctx, Partitions, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return false, chaos.Permanent{Err: fmt.Errorf("topic %s exists already: the scenario needs a cluster without it", topic)}
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	return chaos.WaitFor(ctx, time.Minute, "full ISRs of "+topic, func(ctx context.Context) (bool, error) {
		return fullISRs(ctx, kcl, topic)
	})
}

// topicMetadata asks for topic's metadata, bypassing the client's cache (kadm may answer from it).
func topicMetadata(ctx context.Context, kcl *kgo.Client, topic string) (kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, kcl)
	if err != nil {
		return kmsg.MetadataResponseTopic{}, err
	}
	if len(resp.Topics) != 1 {
		return kmsg.MetadataResponseTopic{}, fmt.Errorf("metadata of %d topics", len(resp.Topics))
	}
	return resp.Topics[0], kerr.ErrorForCode(resp.Topics[0].ErrorCode)
}

// fullISRs reports whether every partition of topic has a leader and a full ISR.
func fullISRs(ctx context.Context, kcl *kgo.Client, topic string) (bool, error) {
	t, err := topicMetadata(ctx, kcl, topic)
	if err != nil {
		return false, err
	}
	if len(t.Partitions) != Partitions {
		return false, fmt.Errorf("%s has %d partitions", topic, len(t.Partitions))
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 || len(p.ISR) != len(p.Replicas) {
			return false, fmt.Errorf("%s/%d: leader %d replicas %v isr %v", topic, p.Partition, p.Leader, p.Replicas, p.ISR)
		}
	}
	return true, nil
}

// waitBalanced waits until every ISR of topic is full and its replicas are spread over brokers
// within one of the mean per broker (the balancer's own target); with strict, its replicas and the
// leaders of every partition of the cluster must be within 10% of the mean.
func waitBalanced(ctx context.Context, kcl *kgo.Client, topic string, brokers []int32, timeout time.Duration, strict bool, say func(string, ...any)) error {
	start := time.Now()
	lastLog := start
	return chaos.WaitFor(ctx, timeout, fmt.Sprintf("%s balanced over %v", topic, brokers), func(ctx context.Context) (bool, error) {
		t, err := topicMetadata(ctx, kcl, topic)
		if err != nil {
			return false, err
		}
		replicas, leaders := map[int32]int{}, map[int32]int{}
		for _, p := range t.Partitions {
			if len(p.ISR) != len(p.Replicas) || len(p.Replicas) != 3 {
				return false, fmt.Errorf("%s/%d: replicas %v isr %v", topic, p.Partition, p.Replicas, p.ISR)
			}
			leaders[p.Leader]++
			for _, r := range p.Replicas {
				replicas[r]++
			}
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			say("after %s: replicas per broker %v, leaders %v", time.Since(start).Round(time.Second), replicas, leaders)
		}
		if !strict {
			err := withinOne(replicas, brokers, "replicas")
			return err == nil, err
		}
		if err := within10(replicas, brokers, "replicas"); err != nil {
			return false, err
		}
		// Leaders are balanced over the cluster (the balancer evens out preferred leaders over
		// every partition, __consumer_offsets included), not per topic.
		all, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, kcl)
		if err != nil {
			return false, err
		}
		clusterLeaders := map[int32]int{}
		for _, t := range all.Topics {
			for _, p := range t.Partitions {
				clusterLeaders[p.Leader]++
			}
		}
		err = within10(clusterLeaders, brokers, "leaders over every topic")
		return err == nil, err
	})
}

// withinOne checks that counts over brokers (and nothing else) are within one of their mean.
func withinOne(counts map[int32]int, brokers []int32, what string) error {
	return within(counts, brokers, what, func(float64) float64 { return 1 }, false)
}

// within10 checks that counts over brokers (and nothing else) are within 10% of their mean.
func within10(counts map[int32]int, brokers []int32, what string) error {
	return within(counts, brokers, what, func(mean float64) float64 { return 0.1 * mean }, true)
}

func within(counts map[int32]int, brokers []int32, what string, tolerance func(mean float64) float64, inclusive bool) error {
	total := 0
	for id, n := range counts {
		if !slices.Contains(brokers, id) {
			return fmt.Errorf("%s on broker %d, not one of %v", what, id, brokers)
		}
		total += n
	}
	mean := float64(total) / float64(len(brokers))
	tol := tolerance(mean)
	for _, id := range brokers {
		d := float64(counts[id]) - mean
		if d < 0 {
			d = -d
		}
		if d > tol || (!inclusive && d == tol) {
			return fmt.Errorf("%s per broker %v, mean %.1f", what, counts, mean)
		}
	}
	return nil
}

// bytesBalanced waits until the bytes of topic on each broker are within 10% of the mean, asking
// each broker for its own log dirs with DescribeLogDirs.
func bytesBalanced(ctx context.Context, brokers []Node, topic string, say func(string, ...any)) error {
	lastLog := time.Now()
	ids := nodeIDs(brokers)
	return chaos.WaitFor(ctx, time.Minute, "bytes balanced", func(ctx context.Context) (bool, error) {
		bytes := map[int32]int{}
		for _, b := range brokers {
			n, err := logDirBytes(ctx, b.Addr, topic)
			if err != nil {
				return false, fmt.Errorf("log dirs of broker %d: %w", b.ID, err)
			}
			bytes[b.ID] = n
		}
		err := within10(bytes, ids, "bytes")
		if time.Since(lastLog) > 10*time.Second || err == nil {
			lastLog = time.Now()
			say("bytes of %s per broker: %v", topic, bytes)
		}
		return err == nil, err
	})
}

func logDirBytes(ctx context.Context, addr, topic string) (int, error) {
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second), kgo.RequestRetries(0))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := kmsg.NewPtrDescribeLogDirsRequest()
	rt := kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < Partitions; p++ {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range resp.(*kmsg.DescribeLogDirsResponse).Dirs {
		for _, dt := range d.Topics {
			for _, dp := range dt.Partitions {
				n += int(dp.Size)
			}
		}
	}
	return n, nil
}

// pairWindow is the length of a window the balancer works or is paused in.
const pairWindow = 10 * time.Second

// measurePaused waits 2 s for the moves in progress to complete and returns the
// acknowledged records/s of the next pairWindow.
func measurePaused(ctx context.Context, l *load) (float64, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	start, acked := time.Now(), l.acked.Load()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(pairWindow):
	}
	return float64(l.acked.Load()-acked) / time.Since(start).Seconds(), nil
}

// setAutoBalance sets the cluster-wide dynamic broker config auto.balance.enable.
func setAutoBalance(ctx context.Context, kcl *kgo.Client, on bool) error {
	rs, err := kadm.NewClient(kcl).AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig,
		Name: "auto.balance.enable", Value: kadm.StringPtr(strconv.FormatBool(on))}})
	if err == nil {
		for _, r := range rs {
			if r.Err != nil {
				err = fmt.Errorf("auto.balance.enable=%v: %w: %s", on, r.Err, r.ErrMessage)
			}
		}
	}
	return err
}

// balanceActivity summarizes the cluster events since from: moves started by cause and by topic
// (the scenario's or internal), and leader changes.
func balanceActivity(ctx context.Context, metricsAddr string, from time.Time, topic string) (string, error) {
	raw, err := httpGet(ctx, "http://"+metricsAddr+"/api/v1/events")
	if err != nil {
		return "", err
	}
	var events []adminapi.Event
	if err := json.Unmarshal([]byte(raw), &events); err != nil {
		return "", err
	}
	causes := map[string]int{}
	moves, ofTopic, leaders, isr := 0, 0, 0, 0
	for _, e := range events {
		if e.Time.Before(from) {
			continue
		}
		switch e.Type {
		case adminapi.EventReassignmentStarted:
			moves++
			if e.Topic == topic {
				ofTopic++
			}
			if i := strings.LastIndex(e.Detail, "cause "); i >= 0 {
				causes[e.Detail[i+len("cause "):]]++
			}
		case adminapi.EventLeaderElected:
			leaders++
		case adminapi.EventISRShrink, adminapi.EventISRExpand:
			isr++
		}
	}
	var byCause []string
	for c, n := range causes {
		byCause = append(byCause, fmt.Sprintf("%s %d", c, n))
	}
	slices.Sort(byCause)
	return fmt.Sprintf("%d moves started (%s; %d of %s, %d of other topics), %d leader elections, %d ISR changes",
		moves, strings.Join(byCause, ", "), ofTopic, topic, moves-ofTopic, leaders, isr), nil
}

// httpGet returns the body at url.
func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
