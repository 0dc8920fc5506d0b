// Package bench measures produce and consume throughput of any Kafka
// compatible broker, Sluice or otherwise, with franz-go clients tuned for
// throughput. It is what `sluice bench` runs, and it can be embedded in
// tests and Go benchmarks.
//
// A run creates the topic if it is missing, produces Records records of
// RecordSize random (incompressible) bytes asynchronously, and then reads
// back exactly the records it produced with a direct consumer. The bench
// itself allocates no value bytes per record and recycles its kgo.Records,
// so that the figures measure the broker more than the client.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FlushPolicyKey is the broker config key under which Sluice reports how
// it flushes the log to disk. Brokers that do not have it (Apache Kafka,
// kfake) are reported as "unknown".
const FlushPolicyKey = "sluice.flush.policy"

// Phase is the outcome of producing or consuming once.
type Phase struct {
	Records       int64         // Records is how many records were acknowledged or read.
	Bytes         int64         // Bytes is the sum of the record values' sizes.
	Elapsed       time.Duration // Elapsed is the wall time of the phase.
	RecordsPerSec float64       // RecordsPerSec is Records over Elapsed.
	MiBPerSec     float64       // MiBPerSec is Bytes over Elapsed, in MiB (2^20 bytes) per second.
	Latency       Latency       // Latency is the produce latency of sampled records; zero for consuming.
}

func newPhase(records, recordSize int64, elapsed time.Duration) Phase {
	ph := Phase{Records: records, Bytes: records * recordSize, Elapsed: elapsed}
	if s := elapsed.Seconds(); s > 0 {
		ph.RecordsPerSec = float64(records) / s
		ph.MiBPerSec = float64(ph.Bytes) / (1 << 20) / s
	}
	return ph
}

// Round is one repetition of the benchmark.
type Round struct {
	Produce Phase // Produce is zero in ModeConsume.
	Consume Phase // Consume is zero in ModeProduce.
	// TxnProduce is the transactional produce phase, run right after
	// Produce (then idempotent) when Config.TransactionalRecords is set.
	TxnProduce Phase
}

// Result is what Run measured.
type Result struct {
	Config      Config  // Config is the effective configuration, defaults applied.
	FlushPolicy string  // FlushPolicy is the broker's sluice.flush.policy, or "unknown".
	Partitions  int32   // Partitions is the topic's actual partition count.
	Rounds      []Round // Rounds holds every repetition, in order.
	Produce     Phase   // Produce is the round with the median produce rate, with that round's latency.
	Consume     Phase   // Consume is the round with the median consume rate.
	// TxnProduce is the round with the median transactional produce rate
	// (Config.TransactionalRecords), and TxnRatio its records/s over the
	// median idempotent produce rate of the same run.
	TxnProduce Phase
	TxnRatio   float64
}

// Run benchmarks the broker at cfg.Bootstrap, printing its configuration
// and each round's figures to out, and returns the figures. Invalid
// configuration is reported as a *FieldError before anything is sent.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	cfg, err := cfg.Complete()
	if err != nil {
		return Result{}, err
	}
	res := Result{Config: cfg}

	admCl, err := kgo.NewClient(kgo.SeedBrokers(cfg.seeds()...))
	if err != nil {
		return res, fmt.Errorf("admin client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	res.FlushPolicy = flushPolicy(ctx, adm)
	parts, rf, created, err := ensureTopic(ctx, adm, cfg)
	if err != nil {
		return res, err
	}
	if created && !cfg.KeepTopic && cfg.Mode != ModeProduce {
		defer func() {
			// Deleted also when the run was interrupted.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, err := adm.DeleteTopic(dctx, cfg.Topic); err != nil {
				fmt.Fprintf(out, "deleting topic %s: %v (delete it by hand)\n", cfg.Topic, err)
				return
			}
			fmt.Fprintf(out, "topic %s deleted (--keep-topic keeps it)\n", cfg.Topic)
		}()
	}
	res.Partitions = parts
	printConfig(out, res, rf, created)

	var slab *valueSlab
	if cfg.Mode != ModeConsume {
		slab = newValueSlab(cfg.RecordSize)
	}
	pool := new(recordPool)
	for i := range cfg.Runs {
		var round Round
		before, err := offsets(ctx, adm, cfg.Topic, cfg.Mode == ModeConsume)
		if err != nil {
			return res, err
		}
		if cfg.Mode != ModeConsume && cfg.TransactionalRecords > 0 {
			// The reference and the transactional phase alternate in
			// every run, so both see the same machine.
			ref := cfg
			ref.Idempotent = true
			if round.Produce, err = produce(ctx, ref, slab, 0); err != nil {
				return res, err
			}
			fmt.Fprintf(out, "run %d produce (idempotent): %s\n", i+1, round.Produce)
			if round.TxnProduce, err = produce(ctx, ref, slab, cfg.TransactionalRecords); err != nil {
				return res, fmt.Errorf("transactional produce: %w", err)
			}
			fmt.Fprintf(out, "run %d produce (transactional, %d records per transaction): %s\n", i+1, cfg.TransactionalRecords, round.TxnProduce)
		} else if cfg.Mode != ModeConsume {
			if round.Produce, err = produce(ctx, cfg, slab, 0); err != nil {
				return res, err
			}
			fmt.Fprintf(out, "run %d produce: %s\n", i+1, round.Produce)
		}
		if cfg.Mode != ModeProduce {
			after, err := offsets(ctx, adm, cfg.Topic, false)
			if err != nil {
				return res, err
			}
			ranges := make(map[int32]offsetRange, len(after))
			var stored int64
			for p, end := range after {
				ranges[p] = offsetRange{From: before[p], To: end}
				stored += end - before[p]
			}
			if cfg.Mode == ModeBoth && cfg.Acks != "0" && stored != round.Produce.Records {
				return res, fmt.Errorf("broker end offsets grew by %d, but %d records were acknowledged", stored, round.Produce.Records)
			}
			if round.Consume, err = consume(ctx, cfg, ranges, pool); err != nil {
				return res, err
			}
			fmt.Fprintf(out, "run %d consume: %s\n", i+1, round.Consume)
		}
		res.Rounds = append(res.Rounds, round)
	}
	res.Produce = median(res.Rounds, func(r Round) Phase { return r.Produce })
	res.Consume = median(res.Rounds, func(r Round) Phase { return r.Consume })
	if cfg.TransactionalRecords > 0 {
		res.TxnProduce = median(res.Rounds, func(r Round) Phase { return r.TxnProduce })
		if res.Produce.RecordsPerSec > 0 {
			res.TxnRatio = res.TxnProduce.RecordsPerSec / res.Produce.RecordsPerSec
		}
		fmt.Fprintf(out, "median produce (idempotent): %s\nmedian produce (transactional): %s\nratio transactional/idempotent (medians): %.2f\n",
			res.Produce, res.TxnProduce, res.TxnRatio)
	}
	if cfg.Runs > 1 {
		if cfg.Mode != ModeConsume && cfg.TransactionalRecords == 0 {
			fmt.Fprintf(out, "median produce: %s\n", res.Produce)
		}
		if cfg.Mode != ModeProduce {
			fmt.Fprintf(out, "median consume: %s\n", res.Consume)
		}
	}
	return res, nil
}

// String formats a phase as one line of figures.
func (p Phase) String() string {
	s := fmt.Sprintf("%d records in %v = %s records/s, %.1f MiB/s",
		p.Records, p.Elapsed.Round(time.Millisecond), thousands(int64(p.RecordsPerSec+0.5)), p.MiBPerSec)
	if l := p.Latency.String(); l != "" {
		s += "; " + l
	}
	return s
}

// median returns the phase with the median records/s among rounds (the
// lower middle for an even count).
func median(rounds []Round, pick func(Round) Phase) Phase {
	if len(rounds) == 0 {
		return Phase{}
	}
	ps := make([]Phase, len(rounds))
	for i, r := range rounds {
		ps[i] = pick(r)
	}
	slices.SortFunc(ps, func(a, b Phase) int {
		switch {
		case a.RecordsPerSec < b.RecordsPerSec:
			return -1
		case a.RecordsPerSec > b.RecordsPerSec:
			return 1
		}
		return 0
	})
	return ps[(len(ps)-1)/2]
}

// flushPolicy reads FlushPolicyKey from the first broker's config. Any
// failure means the broker does not tell, which is "unknown", not an
// error: the bench must work against any Kafka.
func flushPolicy(ctx context.Context, adm *kadm.Client) string {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil || len(md.Brokers) == 0 {
		return "unknown"
	}
	rcs, err := adm.DescribeBrokerConfigs(ctx, md.Brokers[0].NodeID)
	if err != nil {
		return "unknown"
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Key == FlushPolicyKey && c.Value != nil {
				return *c.Value
			}
		}
	}
	return "unknown"
}

// ensureTopic creates the topic if it is missing and returns its actual
// partition count and replication factor and whether it was created.
func ensureTopic(ctx context.Context, adm *kadm.Client, cfg Config) (int32, int, bool, error) {
	created := false
	var configs map[string]*string
	for k, v := range cfg.TopicConfigs {
		if configs == nil {
			configs = make(map[string]*string, len(cfg.TopicConfigs))
		}
		configs[k] = &v
	}
	rf := cfg.ReplicationFactor
	if rf == 0 {
		rf = -1 // the cluster's default.replication.factor
	}
	_, err := adm.CreateTopic(ctx, cfg.Partitions, rf, configs, cfg.Topic)
	switch {
	case err == nil:
		created = true
	case errors.Is(err, kerr.TopicAlreadyExists):
	default:
		return 0, 0, false, fmt.Errorf("creating topic %s: %w", cfg.Topic, err)
	}
	// Wait until the topic's partitions all have a leader: a broker may
	// answer CreateTopics before its metadata shows the new topic.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tds, err := adm.ListTopics(ctx, cfg.Topic)
		if err == nil {
			td := tds[cfg.Topic]
			if td.Err == nil && len(td.Partitions) > 0 && td.Partitions.NumReplicas() > 0 {
				ready := true
				for _, p := range td.Partitions {
					ready = ready && p.Err == nil && p.Leader >= 0
				}
				if ready {
					return int32(len(td.Partitions)), td.Partitions.NumReplicas(), created, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, false, fmt.Errorf("topic %s has no leader for every partition after 10s (last error: %v)", cfg.Topic, err)
		}
		select {
		case <-ctx.Done():
			return 0, 0, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// offsets lists the topic's start (if start) or end offsets by partition.
// Retriable errors are retried for up to 10 seconds: in a cluster, the
// leader of a topic created a moment ago may not host it yet (Kafka's
// UNKNOWN_TOPIC_OR_PARTITION), as metadata reaches brokers asynchronously.
func offsets(ctx context.Context, adm *kadm.Client, topic string, start bool) (map[int32]int64, error) {
	list := adm.ListEndOffsets
	if start {
		list = adm.ListStartOffsets
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lo, err := list(ctx, topic)
		if err == nil {
			err = lo.Error()
		}
		if err == nil {
			out := make(map[int32]int64)
			lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
			return out, nil
		}
		if !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printConfig(out io.Writer, res Result, rf int, created bool) {
	c := res.Config
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	topic := fmt.Sprintf("%s (%d partitions, existing)", c.Topic, res.Partitions)
	if created {
		keep := ", deleted at the end"
		if c.KeepTopic || c.Mode == ModeProduce {
			keep = ", kept"
		}
		topic = fmt.Sprintf("%s (%d partitions, replication factor %d%s, created%s)", c.Topic, res.Partitions, rf, topicConfigs(c.TopicConfigs), keep)
	}
	load := thousands(c.Records) + " records per run"
	if c.Duration > 0 {
		load = c.Duration.String() + " per run"
	}
	linger := c.Linger.String()
	if c.Linger < 0 {
		linger = "none"
	}
	rows := [][2]string{
		{"bootstrap", c.Bootstrap},
		{"broker flush policy", res.FlushPolicy},
		{"topic", topic},
		{"mode", c.Mode},
		{"load", load + ", " + strconv.Itoa(c.Runs) + " run(s)"},
		{"record", strconv.Itoa(c.RecordSize) + " B random value, no key, no headers"},
		{"acks", c.Acks + idem(c.Idempotent || c.TransactionalRecords > 0)},
		{"compression", c.Compression},
		{"producers", strconv.Itoa(c.Producers)},
		{"batch", fmt.Sprintf("max %d B, linger %s, %d in flight, %d buffered records", c.BatchMaxBytes, linger, c.MaxInflight, c.MaxBufferedRecords)},
		{"fetch", fmt.Sprintf("max %d B, direct consumer from the first offset produced", c.FetchMaxBytes)},
		{"latency", fmt.Sprintf("every %dth record produced, from its Produce call to its acknowledgement", LatencySampleEvery)},
	}
	if c.TransactionalRecords > 0 {
		rows = append(rows, [2]string{"transactions", fmt.Sprintf("each run produces idempotently, then transactionally with %d records per transaction (one transactional id per producer; flush, commit, begin)", c.TransactionalRecords)})
	}
	fmt.Fprintln(tw, "sluice bench")
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
	}
	_ = tw.Flush()
}

// topicConfigs formats configs as ", k=v, k=v" in key order.
func topicConfigs(configs map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		fmt.Fprintf(&b, ", %s=%s", k, configs[k])
	}
	return b.String()
}

func idem(on bool) string {
	if on {
		return ", idempotent"
	}
	return ""
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}
