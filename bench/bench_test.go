package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startFake(tb testing.TB, opts ...kfake.Opt) *Fake {
	tb.Helper()
	f, err := StartFake(opts...)
	require.NoError(tb, err)
	tb.Cleanup(f.Close)
	return f
}

func TestRunAgainstKfake(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"acks1", Config{Records: 20_000}},
		{"acksAllIdempotentTwoProducers", Config{Records: 20_001, Acks: "all", Idempotent: true, Producers: 2, Partitions: 3, Runs: 2}},
		{"zstdLargeRecords", Config{Records: 2_000, RecordSize: 10_000, Compression: "zstd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := tc.cfg
			cfg.Bootstrap = f.Bootstrap()
			var out bytes.Buffer
			res, err := Run(ctx, cfg, &out)
			require.NoError(t, err, out.String())
			want, _ := cfg.Complete()
			require.Len(t, res.Rounds, want.Runs)
			require.Equal(t, want.Partitions, res.Partitions)
			require.Equal(t, "unknown", res.FlushPolicy)
			for _, r := range res.Rounds {
				require.Equal(t, cfg.Records, r.Produce.Records)
				require.Equal(t, cfg.Records, r.Consume.Records, "consumed == produced")
				require.Equal(t, cfg.Records*int64(want.RecordSize), r.Consume.Bytes)
				require.Positive(t, r.Produce.RecordsPerSec)
				require.Positive(t, r.Consume.RecordsPerSec)
				require.Positive(t, r.Consume.MiBPerSec)
				// Each producer times its first record and every
				// LatencySampleEvery-th after it.
				require.GreaterOrEqual(t, r.Produce.Latency.Samples, cfg.Records/LatencySampleEvery)
				require.LessOrEqual(t, r.Produce.Latency.Samples, cfg.Records/LatencySampleEvery+int64(want.Producers))
				require.Positive(t, r.Produce.Latency.P50)
				require.LessOrEqual(t, r.Produce.Latency.P50, r.Produce.Latency.P99)
				require.LessOrEqual(t, r.Produce.Latency.P99, r.Produce.Latency.P999)
				require.LessOrEqual(t, r.Produce.Latency.P999, r.Produce.Latency.Max)
				require.Zero(t, r.Consume.Latency)
			}
			require.Equal(t, res.Produce.Latency, median(res.Rounds, func(r Round) Phase { return r.Produce }).Latency)
			require.Regexp(t, `run 1 produce: .* records/s, .* MiB/s; latency p50 \S+, p99 \S+, p999 \S+, max \S+ \([0-9,]+ samples\)`, out.String())
			require.Contains(t, out.String(), "broker flush policy  unknown")
			require.Contains(t, out.String(), "run 1 consume: ")
		})
	}
}

// TestRunModes produces and consumes in separate runs on one topic: the
// consume-only run reads the whole topic, both runs' records.
func TestRunModes(t *testing.T) {
	f := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Bootstrap: f.Bootstrap(), Records: 5_000, Mode: ModeProduce, Runs: 2}
	res, err := Run(ctx, cfg, new(bytes.Buffer))
	require.NoError(t, err)
	require.Equal(t, int64(5_000), res.Produce.Records)
	require.Zero(t, res.Consume.Records)

	cfg.Mode, cfg.Runs = ModeConsume, 1
	res, err = Run(ctx, cfg, new(bytes.Buffer))
	require.NoError(t, err)
	require.Equal(t, int64(10_000), res.Consume.Records)
	require.Zero(t, res.Produce.Records)
}

func TestRunDuration(t *testing.T) {
	f := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Bootstrap: f.Bootstrap(), Duration: 200 * time.Millisecond}, new(bytes.Buffer))
	require.NoError(t, err)
	require.Positive(t, res.Produce.Records)
	require.Equal(t, res.Produce.Records, res.Consume.Records)
}

// TestRunRetriesUnknownPartition answers the first two ListOffsets with
// UNKNOWN_TOPIC_OR_PARTITION, as a cluster's leader does for a topic
// whose creation it has not applied yet: Run waits instead of failing.
func TestRunRetriesUnknownPartition(t *testing.T) {
	f := startFake(t)
	var refused atomic.Int32
	f.cluster.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) == 2 {
			f.cluster.DropControl()
		} else {
			f.cluster.KeepControl()
		}
		req := kr.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Config{Bootstrap: f.Bootstrap(), Records: 1_000}, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, int64(1_000), res.Consume.Records)
	require.GreaterOrEqual(t, refused.Load(), int32(2))
}

func TestFlushPolicyIsPrinted(t *testing.T) {
	f := startFake(t, kfake.BrokerConfigs(map[string]string{FlushPolicyKey: "interval=1s"}))
	var out bytes.Buffer
	res, err := Run(context.Background(), Config{Bootstrap: f.Bootstrap(), Records: 10}, &out)
	require.NoError(t, err)
	if res.FlushPolicy == "unknown" {
		t.Skip("kfake does not echo unknown broker config keys")
	}
	require.Equal(t, "interval=1s", res.FlushPolicy)
	require.Contains(t, out.String(), "interval=1s")
}

func TestConfigComplete(t *testing.T) {
	c, err := Config{Bootstrap: "127.0.0.1:9092"}.Complete()
	require.NoError(t, err)
	require.Equal(t, Config{
		Bootstrap: "127.0.0.1:9092", Topic: DefaultTopic, Records: DefaultRecords, RecordSize: 100,
		Acks: "1", Partitions: 6, ReplicationFactor: 0, Compression: "none", Producers: 1,
		BatchMaxBytes: 1 << 20, Linger: DefaultLinger, MaxInflight: 5, MaxBufferedRecords: 1 << 18,
		FetchMaxBytes: 4 << 20, Mode: ModeBoth, Runs: 1,
	}, c)

	c, err = Config{Bootstrap: "b:1", Acks: "-1", Compression: "ZSTD", Duration: time.Second}.Complete()
	require.NoError(t, err)
	require.Equal(t, "all", c.Acks)
	require.Equal(t, "zstd", c.Compression)
	require.Zero(t, c.Records)

	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"Bootstrap", Config{}},
		{"Topic", Config{Topic: "a b"}},
		{"Records", Config{Records: -1}},
		{"Duration", Config{Duration: -time.Second}},
		{"Duration", Config{Records: 10, Duration: time.Second}},
		{"RecordSize", Config{RecordSize: -1}},
		{"RecordSize", Config{RecordSize: 2 << 20}},
		{"Acks", Config{Acks: "2"}},
		{"Idempotent", Config{Idempotent: true}},
		{"Partitions", Config{Partitions: -1}},
		{"ReplicationFactor", Config{ReplicationFactor: -1}},
		{"TopicConfigs", Config{TopicConfigs: map[string]string{"": "1"}}},
		{"TopicConfigs", Config{TopicConfigs: map[string]string{"min.insync.replicas": ""}}},
		{"Compression", Config{Compression: "brotli"}},
		{"Producers", Config{Producers: -1}},
		{"BatchMaxBytes", Config{BatchMaxBytes: 10}},
		{"MaxInflight", Config{MaxInflight: -1}},
		{"MaxBufferedRecords", Config{MaxBufferedRecords: -1}},
		{"FetchMaxBytes", Config{FetchMaxBytes: 10}},
		{"Mode", Config{Mode: "read"}},
		{"Runs", Config{Runs: -1}},
		{"TransactionalRecords", Config{TransactionalRecords: -1}},
		{"TransactionalRecords", Config{TransactionalRecords: 1000, Mode: ModeProduce}},
		{"TransactionalRecords", Config{TransactionalRecords: 1000, Acks: "all"}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			if tc.field != "Bootstrap" {
				tc.cfg.Bootstrap = "127.0.0.1:9092"
			}
			_, err := tc.cfg.Complete()
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "got %v", err)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, err.Error(), tc.field)

			_, err = Run(context.Background(), tc.cfg, new(bytes.Buffer))
			require.ErrorAs(t, err, &fe, "Run validates before connecting")
		})
	}
}

// TestTopicConfigs creates the topic with configs and finds them set on it.
func TestTopicConfigs(t *testing.T) {
	f := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cfg := Config{Bootstrap: f.Bootstrap(), Records: 100, KeepTopic: true, TopicConfigs: map[string]string{"min.insync.replicas": "1", "retention.ms": "3600000"}}
	_, err := Run(ctx, cfg, &out)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "replication factor 1, min.insync.replicas=1, retention.ms=3600000, created, kept)")

	cl, err := kgo.NewClient(kgo.SeedBrokers(f.Bootstrap()))
	require.NoError(t, err)
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, DefaultTopic)
	require.NoError(t, err)
	rc, err := rcs.On(DefaultTopic, nil)
	require.NoError(t, err)
	got := map[string]string{}
	for _, c := range rc.Configs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			got[c.Key] = c.MaybeValue()
		}
	}
	require.Equal(t, cfg.TopicConfigs, got)
}

func TestTopicConfigsFlag(t *testing.T) {
	cfg := Config{TopicConfigs: map[string]string{}}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(TopicConfigsFlag(cfg.TopicConfigs), "topic-config", "")
	require.NoError(t, fs.Parse([]string{"--topic-config", "min.insync.replicas=2", "--topic-config", "retention.ms=-1"}))
	require.Equal(t, map[string]string{"min.insync.replicas": "2", "retention.ms": "-1"}, cfg.TopicConfigs)
	require.Equal(t, "min.insync.replicas=2, retention.ms=-1", TopicConfigsFlag(cfg.TopicConfigs).String())
	for _, bad := range []string{"min.insync.replicas", "=2", "retention.ms="} {
		require.Error(t, fs.Parse([]string{"--topic-config", bad}), bad)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		require.Equal(t, want, thousands(in))
	}
}

// BenchmarkProduceKfake measures producing b.N records of 100 bytes with
// acks=1 to an in-process kfake broker; ns/op is per record.
func BenchmarkProduceKfake(b *testing.B) {
	f := startFake(b)
	b.ResetTimer()
	res, err := Run(context.Background(), Config{Bootstrap: f.Bootstrap(), Records: int64(b.N), Mode: ModeProduce}, new(bytes.Buffer))
	require.NoError(b, err)
	b.ReportMetric(res.Produce.RecordsPerSec, "records/s")
	b.ReportMetric(res.Produce.MiBPerSec, "MiB/s")
}

// BenchmarkConsumeKfake measures consuming b.N records of 100 bytes from
// an in-process kfake broker; ns/op is per record.
func BenchmarkConsumeKfake(b *testing.B) {
	f := startFake(b)
	cfg := Config{Bootstrap: f.Bootstrap(), Records: int64(b.N), Mode: ModeProduce}
	_, err := Run(context.Background(), cfg, new(bytes.Buffer))
	require.NoError(b, err)
	b.ResetTimer()
	cfg.Mode = ModeConsume
	res, err := Run(context.Background(), cfg, new(bytes.Buffer))
	require.NoError(b, err)
	b.ReportMetric(res.Consume.RecordsPerSec, "records/s")
	b.ReportMetric(res.Consume.MiBPerSec, "MiB/s")
}

// TestCreatedTopicTakesClusterDefaultAndIsDeleted: on a three-broker cluster
// the topic the benchmark creates has the cluster's default replication
// factor (3, not 1, so a stopped broker leaves no partition without a
// leader), and it is deleted afterwards unless KeepTopic.
func TestCreatedTopicTakesClusterDefaultAndIsDeleted(t *testing.T) {
	f := startFake(t, kfake.NumBrokers(3), kfake.Ports(0, 0, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(f.Bootstrap(), ",")...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, keep := range []bool{false, true} {
		var out bytes.Buffer
		_, err := Run(ctx, Config{Bootstrap: f.Bootstrap(), Records: 100, Topic: fmt.Sprintf("bench-keep-%v", keep), KeepTopic: keep}, &out)
		require.NoError(t, err, out.String())
		require.Contains(t, out.String(), "replication factor 3")
		topic := fmt.Sprintf("bench-keep-%v", keep)
		tds, err := adm.ListTopics(ctx, topic)
		require.NoError(t, err)
		if keep {
			require.NoError(t, tds[topic].Err, out.String())
		} else {
			require.Contains(t, out.String(), "topic bench-keep-false deleted")
			require.ErrorIs(t, tds[topic].Err, kerr.UnknownTopicOrPartition, out.String())
		}
	}
}

// TestRunTransactional compares transactional with idempotent produce in the same run against kfake,
// which serves transactions: every transactional record is committed (no transaction is left open:
// the last stable offsets equal the high watermarks) and the ratio is reported.
func TestRunTransactional(t *testing.T) {
	f := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Bootstrap: f.Bootstrap(), Records: 10_500, Acks: "all", Mode: ModeProduce, Producers: 2,
		Partitions: 3, Runs: 2, TransactionalRecords: 1_000, Topic: "txn-bench"}
	var out bytes.Buffer
	res, err := Run(ctx, cfg, &out)
	require.NoError(t, err, out.String())
	require.Len(t, res.Rounds, 2)
	for _, r := range res.Rounds {
		require.Equal(t, cfg.Records, r.Produce.Records)
		require.Equal(t, cfg.Records, r.TxnProduce.Records)
		require.Positive(t, r.TxnProduce.RecordsPerSec)
	}
	require.Positive(t, res.TxnRatio)
	require.InDelta(t, res.TxnProduce.RecordsPerSec/res.Produce.RecordsPerSec, res.TxnRatio, 1e-9)
	require.Contains(t, out.String(), "run 1 produce (idempotent): ")
	require.Contains(t, out.String(), "run 2 produce (transactional, 1000 records per transaction): ")
	require.Contains(t, out.String(), "ratio transactional/idempotent (medians): ")
	require.Contains(t, out.String(), "acks                 all, idempotent")

	cl, err := kgo.NewClient(kgo.SeedBrokers(f.Bootstrap()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, cfg.Topic)
	require.NoError(t, err)
	stable, err := adm.ListCommittedOffsets(ctx, cfg.Topic)
	require.NoError(t, err)
	var hw int64
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := stable.Lookup(o.Topic, o.Partition)
		require.Equal(t, o.Offset, s.Offset, "partition %d: a transaction is still open", o.Partition)
		hw += o.Offset
	})
	// Two runs of idempotent and transactional records, plus a commit marker per transaction and
	// partition it wrote to.
	require.Greater(t, hw, 4*cfg.Records)
}
