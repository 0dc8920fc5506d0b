package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Demo is what `sluice demo` (make demo) runs on the local stack: traffic that
// moves the dashboards and the lag, and optionally a fault that becomes an
// incident.
type Demo struct {
	// Rate is records produced per second, default 200.
	Rate int
	// Fault is "" (none), "broker" (stop a broker, restart it after FaultFor)
	// or "consumer" (stop the analytics consumer, restart it after FaultFor).
	Fault string
	// FaultAfter is when the fault starts, default 30s.
	FaultAfter time.Duration
	// FaultFor is how long it lasts, default 2m.
	FaultFor time.Duration
	// Scenario is "" (traffic and the fault) or "scale": the scaling scenario
	// (chaos/scaling) instead of the demo's traffic, on a new DataDir.
	Scenario string
	// Bin is the sluice binary the scaling scenario starts nodes and runs
	// `sluice cluster` with.
	Bin string
}

func (d *Demo) setDefaults() error {
	if d.Rate <= 0 {
		d.Rate = 200
	}
	if d.FaultAfter <= 0 {
		d.FaultAfter = 30 * time.Second
	}
	if d.FaultFor <= 0 {
		d.FaultFor = 2 * time.Minute
	}
	switch d.Scenario {
	case "":
	case "scale":
		if d.Fault != "" {
			return fmt.Errorf("fault: %q: the scale scenario has its own faults, leave fault empty", d.Fault)
		}
		if d.Bin == "" {
			return errNoBin
		}
	default:
		return fmt.Errorf("scenario: %q is not scale (or empty)", d.Scenario)
	}
	switch d.Fault {
	case "", "broker", "consumer":
		return nil
	}
	return fmt.Errorf("fault: %q is not one of broker, consumer", d.Fault)
}

const demoTopic = "demo-orders"

// runDemo produces to demo-orders through produceVia and consumes it from
// bootstrap with two groups until ctx ends, injecting the configured fault.
// stopBroker stops a broker of the stack and returns a function that starts it
// again.
func runDemo(ctx context.Context, d Demo, bootstrap, produceVia []string, stopBroker func(i int) (restart func() error, err error), out io.Writer) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(produceVia...), kgo.DefaultProduceTopic(demoTopic), kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 6, -1, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, demoTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating %s: %w", demoTopic, err)
	}
	var produced atomic.Int64
	go func() {
		t := time.NewTicker(time.Second / time.Duration(d.Rate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte("customer-" + strconv.Itoa(i%97)), Value: []byte(fmt.Sprintf(`{"order":%d}`, i))},
				func(_ *kgo.Record, err error) {
					if err == nil {
						produced.Add(1)
					}
				})
		}
	}()
	consume := func(ctx context.Context, group string, delay time.Duration) {
		c, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(demoTopic))
		if err != nil {
			return
		}
		defer c.Close()
		for ctx.Err() == nil {
			fs := c.PollFetches(ctx)
			if delay > 0 && fs.NumRecords() > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(delay):
				}
			}
		}
	}
	go consume(ctx, "demo-billing", 0)
	analyticsCtx, stopAnalytics := context.WithCancel(ctx)
	go consume(analyticsCtx, "demo-analytics", 200*time.Millisecond)

	fmt.Fprintf(out, "demo: producing %d records/s to %s; groups demo-billing (keeps up) and demo-analytics (slower)\n", d.Rate, demoTopic)
	if d.Fault == "" {
		<-ctx.Done()
		stopAnalytics()
		return nil
	}
	select {
	case <-ctx.Done():
		stopAnalytics()
		return nil
	case <-time.After(d.FaultAfter):
	}
	switch d.Fault {
	case "broker":
		restart, err := stopBroker(1)
		if err != nil {
			stopAnalytics()
			return err
		}
		fmt.Fprintf(out, "demo: fault: broker 2 stopped; it comes back in %s (watch the incident at the ticket UI)\n", d.FaultFor)
		select {
		case <-ctx.Done():
		case <-time.After(d.FaultFor):
		}
		if err := restart(); err != nil {
			stopAnalytics()
			return err
		}
		fmt.Fprintf(out, "demo: broker 2 restarted\n")
	case "consumer":
		stopAnalytics()
		fmt.Fprintf(out, "demo: fault: group demo-analytics stopped consuming for %s\n", d.FaultFor)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.FaultFor):
		}
		analyticsCtx, stopAnalytics = context.WithCancel(ctx)
		go consume(analyticsCtx, "demo-analytics", 200*time.Millisecond)
		fmt.Fprintf(out, "demo: group demo-analytics consuming again\n")
	}
	<-ctx.Done()
	stopAnalytics()
	fmt.Fprintf(out, "demo: %d records produced\n", produced.Load())
	return nil
}
