package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
)

// BenchmarkProduceAuthorization measures produce throughput against one broker
// without an authorizer and with the StandardAuthorizer holding 1,000 ACLs of other
// users plus the PREFIXED grant the producer writes under. Records go round robin to
// 8 topics, so every request is authorized per topic. Run the two alternately:
//
//	go test ./broker/ -run '^$' -bench BenchmarkProduceAuthorization -count 5 -benchtime 200000x
func BenchmarkProduceAuthorization(b *testing.B) {
	for _, withACLs := range []bool{false, true} {
		name := "none"
		if withACLs {
			name = "acls"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Listen = "127.0.0.1:0"
			cfg.DataDir = b.TempDir()
			cfg.OffsetsTopicNumPartitions = 1
			if withACLs {
				cfg.AuthorizerClassName = StandardAuthorizer
			}
			br, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- br.Run(ctx) }()
			defer func() { cancel(); <-done }()
			select {
			case <-br.Ready():
			case <-time.After(20 * time.Second):
				b.Fatal("broker not ready")
			}
			const topics = 8
			for i := range topics {
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
			br.waitForImage(ctx, func() bool { return br.topicByName("bench."+strconv.Itoa(topics-1)) != nil })
			cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.ProducerLinger(time.Millisecond),
				kgo.MaxBufferedRecords(100000))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			value := make([]byte, 100)
			var wg sync.WaitGroup
			var failed error
			var mu sync.Mutex
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Topic: "bench." + strconv.Itoa(i%topics), Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
					wg.Done()
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			if failed != nil {
				b.Fatal(failed)
			}
		})
	}
}
