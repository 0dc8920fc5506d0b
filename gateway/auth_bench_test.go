package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/broker/clientsec"
	"github.com/sluicemq/sluice/internal/testutil"
)

// BenchmarkGatewayClientAuth compares produce and consume throughput through
// a gateway that authenticates its clients (SASL_PLAINTEXT: SCRAM-SHA-512 login
// relayed to a broker, every request in an Envelope as the client) with the
// same gateway not authenticating them (PLAINTEXT: requests as the gateway's
// own principal), in front of the same two in-process brokers, in the same
// session. Each op produces 20,000 records of 1 KiB with acks=all (franz-go,
// one client) and reads them back through each gateway in turn, and reports
// records/s of each mode and the ratio sasl/plain (of throughputs):
//
//	go test ./gateway/ -run '^$' -bench BenchmarkGatewayClientAuth -count 5
func BenchmarkGatewayClientAuth(b *testing.B) {
	sc := startSecureCluster(b)
	admin := kadm.NewClient(sc.AdminClient(b))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// As itself (PLAINTEXT mode) the gateway writes and reads the bench topics.
	res, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:gateway").Topics("alice-").Groups("alice-").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpAll))
	require.NoError(b, err)
	for _, r := range res {
		require.NoError(b, r.Err)
	}
	plain := startBenchGateway(b, sc, "PLAINTEXT")
	authed := startBenchGateway(b, sc, "SASL_PLAINTEXT")
	const records, size = 20000, 1024
	value := []byte(strings.Repeat("v", size))
	// run produces and consumes records through addr and returns how long it took.
	run := func(addr string, mech sasl.Mechanism, i int) time.Duration {
		topic := fmt.Sprintf("alice-bench-%d-%d", time.Now().UnixNano(), i)
		r, err := admin.CreateTopic(ctx, 4, 2, nil, topic)
		require.NoError(b, err)
		require.NoError(b, r.Err)
		opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MaxBufferedRecords(16384)}
		if mech != nil {
			opts = append(opts, kgo.SASL(mech))
		}
		cl, err := kgo.NewClient(opts...)
		require.NoError(b, err)
		defer cl.Close()
		require.NoError(b, cl.Ping(ctx))
		start := time.Now()
		for range records {
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		require.NoError(b, cl.Flush(ctx))
		got := 0
		for got < records && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			require.NoError(b, fs.Err0())
			got += fs.NumRecords()
		}
		return time.Since(start)
	}
	var plainTime, authTime time.Duration
	b.SetBytes(2 * records * size)
	b.ResetTimer()
	for i := range b.N {
		// Interleaved, so both modes see the same load from the rest of the
		// machine.
		plainTime += run(plain, nil, 2*i)
		authTime += run(authed, scramMech("alice", 512), 2*i+1)
	}
	b.ReportMetric(float64(b.N*records)/plainTime.Seconds(), "plain-records/s")
	b.ReportMetric(float64(b.N*records)/authTime.Seconds(), "sasl-records/s")
	b.ReportMetric(plainTime.Seconds()/authTime.Seconds(), "sasl/plain")
}

// startBenchGateway starts a gateway with the given client security protocol,
// logging in to the brokers as User:gateway, and returns its address.
func startBenchGateway(b *testing.B, sc *brokertest.Cluster, protocol string) string {
	b.Helper()
	logs := &testutil.Buffer{}
	g, err := New(Config{Listen: "127.0.0.1:0", Bootstrap: sc.Bootstrap(), NodeID: 100, ClientSecurityProtocol: protocol,
		Backend: clientsec.Config{SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "SCRAM-SHA-512",
			SASLUsername: "gateway", SASLPasswordFile: sc.PasswordFile("gateway")}},
		slog.New(slog.NewTextHandler(logs, nil)), nil)
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	testutil.WaitFor(b, 60*time.Second, "gateway ready", func() bool { return strings.Contains(logs.String(), "gateway ready") })
	return g.Addr()
}
