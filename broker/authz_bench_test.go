package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/record"
)

// benchProducer is a broker in this process and a client producing to it.
type benchProducer struct {
	br *Broker
	cl *kgo.Client
}

const benchTopics = 8

func startBenchProducer(b *testing.B, withACLs bool, mutate ...func(*Config)) *benchProducer {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.OffsetsTopicNumPartitions = 1
	if withACLs {
		cfg.AuthorizerClassName = StandardAuthorizer
	}
	for _, m := range mutate {
		m(&cfg)
	}
	br, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-br.Ready():
	case <-time.After(30 * time.Second):
		b.Fatal("broker not ready")
	}
	for i := range benchTopics {
		if _, err := br.quorum.CreateTopic(ctx, "bench."+strconv.Itoa(i), 1, 1, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	if withACLs {
		var bindings []acl.Binding
		for i := range 1000 {
			bindings = append(bindings, acl.Binding{ResourceType: kmsg.ACLResourceTypeTopic, PatternType: kmsg.ACLResourcePatternTypeLiteral,
				ResourceName: fmt.Sprintf("other.%d", i), Principal: fmt.Sprintf("User:u%d", i), Host: "*",
				Operation: kmsg.ACLOperationWrite, Permission: kmsg.ACLPermissionTypeAllow})
		}
		bindings = append(bindings, acl.Binding{ResourceType: kmsg.ACLResourceTypeTopic, PatternType: kmsg.ACLResourcePatternTypePrefixed,
			ResourceName: "bench.", Principal: acl.AnonymousPrincipal, Host: "*",
			Operation: kmsg.ACLOperationWrite, Permission: kmsg.ACLPermissionTypeAllow})
		if _, err := br.quorum.CreateACLs(ctx, bindings); err != nil {
			b.Fatal(err)
		}
	}
	br.waitForImage(ctx, func() bool { return br.topicByName("bench."+strconv.Itoa(benchTopics-1)) != nil })
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(100000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return &benchProducer{br: br, cl: cl}
}

// produce sends n records round robin over the topics and waits for every ack.
func (p *benchProducer) produce(b *testing.B, n int) time.Duration {
	value := make([]byte, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	start := time.Now()
	for i := range n {
		wg.Add(1)
		p.cl.Produce(context.Background(), &kgo.Record{Topic: "bench." + strconv.Itoa(i%benchTopics), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	return time.Since(start)
}

// BenchmarkProduceAuthorization measures produce throughput against two brokers in
// one process, one without an authorizer and one with the StandardAuthorizer holding
// 1,000 ACLs of other users plus the PREFIXED grant the producer writes under. The
// two are driven in alternating rounds of 20,000 records (which one goes first
// alternates too), so both see the same machine load; it reports each one's
// records/s and their ratio. Records go round robin to 8 topics, so every request
// is authorized once per topic.
//
//	go test ./broker/ -run '^$' -bench BenchmarkProduceAuthorization -benchtime 400000x -count 5
func BenchmarkProduceAuthorization(b *testing.B) {
	none, acls := startBenchProducer(b, false), startBenchProducer(b, true)
	none.produce(b, 1000) // connect and warm both
	acls.produce(b, 1000)
	const round = 20000
	var tNone, tACLs time.Duration
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		n := min(round, b.N-done)
		if i%2 == 0 {
			tNone += none.produce(b, n)
			tACLs += acls.produce(b, n)
		} else {
			tACLs += acls.produce(b, n)
			tNone += none.produce(b, n)
		}
		done += n
	}
	b.StopTimer()
	rNone, rACLs := float64(b.N)/tNone.Seconds(), float64(b.N)/tACLs.Seconds()
	b.ReportMetric(rNone, "none-records/s")
	b.ReportMetric(rACLs, "acls-records/s")
	b.ReportMetric(rACLs/rNone, "acls/none")
}

// BenchmarkProduceHandlerAuthorization measures the broker's Produce handler on the
// same request, 8 topics with a 10-record batch each, against the two brokers of
// BenchmarkProduceAuthorization, alternating request by request so both see the same
// load: the cost of authorization without the network and the client. Small batches
// make it the worst case, authorization being per topic and not per record.
//
//	go test ./broker/ -run '^$' -bench BenchmarkProduceHandlerAuthorization -count 5
func BenchmarkProduceHandlerAuthorization(b *testing.B) {
	none, acls := startBenchProducer(b, false), startBenchProducer(b, true)
	recs := make([]kmsg.Record, 10)
	for i := range recs {
		recs[i].Value = make([]byte, 100)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, 1, 5000
	for i := range benchTopics {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "bench." + strconv.Itoa(i)
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = record.Build(0, time.Now().UnixMilli(), recs)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	handle := func(p *benchProducer) time.Duration {
		cc := &conn{b: p.br, ctx: context.Background(), remote: "127.0.0.1:1"}
		start := time.Now()
		resp, err := p.br.handleProduce(cc, req)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range resp.(*kmsg.ProduceResponse).Topics {
			if t.Partitions[0].ErrorCode != 0 {
				b.Fatalf("produce to %s: error %d", t.Topic, t.Partitions[0].ErrorCode)
			}
		}
		return d
	}
	// Medians of single requests: on a loaded machine a request that loses the CPU
	// midway takes a whole time slice, which would swamp a mean.
	tNone, tACLs := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			tNone = append(tNone, handle(none))
			tACLs = append(tACLs, handle(acls))
		} else {
			tACLs = append(tACLs, handle(acls))
			tNone = append(tNone, handle(none))
		}
	}
	b.StopTimer()
	slices.Sort(tNone)
	slices.Sort(tACLs)
	mNone, mACLs := tNone[len(tNone)/2], tACLs[len(tACLs)/2]
	b.ReportMetric(float64(mNone.Nanoseconds()), "none-median-ns/req")
	b.ReportMetric(float64(mACLs.Nanoseconds()), "acls-median-ns/req")
	b.ReportMetric(mACLs.Seconds()/mNone.Seconds(), "acls/none")
}
