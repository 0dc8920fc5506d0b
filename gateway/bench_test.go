package gateway

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkGatewayProduce is the gateway's hot path: a kgo producer (acks=1,
// 100-byte random records, no compression, 1 MiB batches, 2 ms linger, as
// bench/gateway.sh runs `sluice bench`) writes to a 6-partition RF 3 topic of three `sluice broker`
// processes, alternately to the brokers directly and through an in-process
// gateway, and reports both rates and their ratio. The gateway shares the
// process with the producer, so `-cpuprofile` shows what it costs per record.
//
//	go test -run '^$' -bench BenchmarkGatewayProduce -benchtime 5x -cpuprofile cpu.out ./gateway/
func BenchmarkGatewayProduce(b *testing.B) {
	cl := startCluster(b, 3)
	g := startGateway(b, cl.Bootstrap())
	const topic, records = "bench", 500_000
	createTopic(b, g.Addr(), topic, 6, 3)
	value := make([]byte, 100)
	_, _ = rand.Read(value)
	run := func(seeds ...string) time.Duration {
		p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.LeaderAck()),
			kgo.DisableIdempotentWrite(), kgo.MaxBufferedRecords(16384), kgo.ProducerLinger(2*time.Millisecond),
			kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
		require.NoError(b, err)
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		require.NoError(b, p.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr()) // metadata and connections
		start := time.Now()
		for i := 0; i < records; i++ {
			p.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Errorf("produce: %v", err)
				}
			})
		}
		require.NoError(b, p.Flush(ctx))
		return time.Since(start)
	}
	var direct, through time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		direct += run(cl.Bootstrap()...)
		through += run(g.Addr())
	}
	n := float64(b.N * records)
	b.ReportMetric(n/direct.Seconds(), "direct-records/s")
	b.ReportMetric(n/through.Seconds(), "gateway-records/s")
	b.ReportMetric(direct.Seconds()/through.Seconds(), "gateway/direct")
}
