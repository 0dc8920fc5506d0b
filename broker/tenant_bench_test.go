package broker

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/record"
)

// startMeteredBenchProducer is a bench broker whose producer (User:ANONYMOUS) is the tenant
// "bench" on an unlimited plan, with metering on or off (tenant.metering.enable).
func startMeteredBenchProducer(b *testing.B, metering bool) *benchProducer {
	p := startBenchProducer(b, false, func(c *Config) { c.Tenants.TenantMeteringEnable = &metering })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.br.quorum.PutPlan(ctx, adminapi.Plan{Name: "unlimited"}); err != nil {
		b.Fatal(err)
	}
	if _, err := p.br.quorum.PutTenant(ctx, adminapi.Tenant{Name: "bench", Plan: "unlimited", Principals: []string{anonymous}, Prefixes: []string{"bench."}}); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkProduceHandlerMetering measures what metering costs the Produce path: the handler and
// the after-request hook of conn.handle (tenant lookup, byte and request counters, plan quota) on
// the same request, 8 topics with a 10-record batch each, against two brokers whose producer is a
// tenant, one with tenant.metering.enable off, alternating request by request so both see the same
// load. Medians of single requests.
//
//	go test ./broker/ -run '^$' -bench BenchmarkProduceHandlerMetering -count 5
func BenchmarkProduceHandlerMetering(b *testing.B) {
	off, on := startMeteredBenchProducer(b, false), startMeteredBenchProducer(b, true)
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
	size := len(req.AppendTo(nil))
	conns := map[*benchProducer]*conn{}
	for _, p := range []*benchProducer{off, on} {
		conns[p] = &conn{b: p.br, ctx: context.Background(), remote: "127.0.0.1:1", principal: anonymous}
	}
	handle := func(p *benchProducer) time.Duration {
		cc := conns[p]
		start := time.Now()
		resp, err := p.br.handleProduce(cc, req)
		cc.afterTenantRequest(req, resp, size)
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
	tOff, tOn := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			tOff = append(tOff, handle(off))
			tOn = append(tOn, handle(on))
		} else {
			tOn = append(tOn, handle(on))
			tOff = append(tOff, handle(off))
		}
	}
	b.StopTimer()
	if counterValue(on.br.tenants.meterOf("bench").bytesIn) == 0 || counterValue(off.br.tenants.meterOf("bench").bytesIn) != 0 {
		b.Fatal("metering is not on in one broker and off in the other")
	}
	slices.Sort(tOff)
	slices.Sort(tOn)
	mOff, mOn := tOff[len(tOff)/2], tOn[len(tOn)/2]
	b.ReportMetric(float64(mOff.Nanoseconds()), "off-median-ns/req")
	b.ReportMetric(float64(mOn.Nanoseconds()), "on-median-ns/req")
	b.ReportMetric(mOn.Seconds()/mOff.Seconds(), "on/off")
}

// BenchmarkProduceMetering measures produce throughput end to end, a franz-go producer per broker
// (linger 1 ms, idempotent, acks=all) in alternating rounds of 20,000 records of 100 bytes over 8
// topics, against the two brokers of BenchmarkProduceHandlerMetering.
//
//	go test ./broker/ -run '^$' -bench BenchmarkProduceMetering -benchtime 400000x -count 5
func BenchmarkProduceMetering(b *testing.B) {
	off, on := startMeteredBenchProducer(b, false), startMeteredBenchProducer(b, true)
	off.produce(b, 1000)
	on.produce(b, 1000)
	const round = 20000
	var tOff, tOn time.Duration
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		n := min(round, b.N-done)
		if i%2 == 0 {
			tOff += off.produce(b, n)
			tOn += on.produce(b, n)
		} else {
			tOn += on.produce(b, n)
			tOff += off.produce(b, n)
		}
		done += n
	}
	b.StopTimer()
	rOff, rOn := float64(b.N)/tOff.Seconds(), float64(b.N)/tOn.Seconds()
	b.ReportMetric(rOff, "off-records/s")
	b.ReportMetric(rOn, "on-records/s")
	b.ReportMetric(rOn/rOff, "on/off")
}
