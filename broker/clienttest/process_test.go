package clienttest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testutil"
)

type partitionOffset struct {
	partition int32
	offset    int64
}

// readAllRecords consumes topic from the start up to the end offsets listed
// now, and returns every record's value by partition and offset.
func readAllRecords(t *testing.T, addr, topic string) map[partitionOffset]string {
	t.Helper()
	adm := newAdmin(t, addr)
	ends, err := adm.ListEndOffsets(testCtx(t), topic)
	require.NoError(t, err)
	require.NoError(t, ends.Error())
	want := 0
	starts := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		starts[o.Partition] = kgo.NewOffset().AtStart()
		remaining[o.Partition] = o.Offset
		want += int(o.Offset)
	})
	cl := newKgo(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}), kgo.FetchMaxWait(200*time.Millisecond))
	got := map[partitionOffset]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", len(got), want)
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < remaining[r.Partition] {
				got[partitionOffset{r.Partition, r.Offset}] = string(r.Value)
			}
		})
	}
	return got
}

// TestProcessKill9KeepsAcknowledgedRecords produces with acks=all from several
// goroutines, kills the broker with SIGKILL in the middle, restarts it on the
// same data dir and port, and checks that every acknowledged record is still
// at its offset with its value.
func TestProcessKill9KeepsAcknowledgedRecords(t *testing.T) {
	p := startProcess(t)
	topic := uniqueName("kill9")
	createTopic(t, p.Addr, topic, 3, nil)

	prod := newKgo(t, p.Addr,
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	)

	// Producers run until told to stop, so the kill lands in the middle of
	// heavy produce however fast the broker is; maxPerProducer bounds the run.
	const producers, maxPerProducer, ackedBeforeKill, ackedAfterRestart = 4, 25000, 3000, 3000
	var (
		stop   atomic.Bool
		mu     sync.Mutex
		acked  = map[partitionOffset]string{}
		nAcked atomic.Int64
		nFail  atomic.Int64
		errMu  sync.Mutex
		errs   = map[string]int{}
		wg     sync.WaitGroup
		inner  sync.WaitGroup
	)
	payload := strings.Repeat("x", 100)
	for g := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxPerProducer && !stop.Load(); i++ {
				value := fmt.Sprintf("%d/%d/%s", g, i, payload)
				inner.Add(1)
				prod.Produce(context.Background(), &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(value)}, func(r *kgo.Record, err error) {
					defer inner.Done()
					if err != nil {
						nFail.Add(1)
						errMu.Lock()
						errs[err.Error()]++
						errMu.Unlock()
						return
					}
					mu.Lock()
					defer mu.Unlock()
					po := partitionOffset{r.Partition, r.Offset}
					if prev, ok := acked[po]; ok {
						t.Errorf("offset %d/%d acknowledged twice: %.10q and %.10q", r.Partition, r.Offset, prev, value)
					}
					acked[po] = value
					nAcked.Add(1)
				})
			}
		}()
	}

	testutil.WaitFor(t, 60*time.Second, "records acknowledged before the kill", func() bool {
		return nAcked.Load() >= ackedBeforeKill
	})
	p.kill9()
	ackedAtKill := nAcked.Load()
	p.restart()
	testutil.WaitFor(t, 90*time.Second, "records acknowledged after the restart", func() bool {
		return nAcked.Load() >= ackedAtKill+ackedAfterRestart
	})
	stop.Store(true)

	done := make(chan struct{})
	go func() { wg.Wait(); inner.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("producers did not finish within 90s of being stopped: %d acked, %d failed", nAcked.Load(), nFail.Load())
	}
	t.Logf("acknowledged %d (%d before the kill), failed %d: %v", nAcked.Load(), ackedAtKill, nFail.Load(), errs)

	stored := readAllRecords(t, p.Addr, topic)
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for po, v := range acked {
		got, ok := stored[po]
		if !ok || got != v {
			if lost < 10 {
				t.Errorf("acknowledged record %d/%d: stored %.12q (present %v), want %.12q", po.partition, po.offset, got, ok, v)
			}
			lost++
		}
	}
	require.Zero(t, lost, "acknowledged records lost or changed out of %d", len(acked))
}

// TestProcessSigtermShutsDownCleanly stops the broker with SIGTERM, expects
// exit code 0, and checks the restarted broker logs ready and serves the data.
func TestProcessSigtermShutsDownCleanly(t *testing.T) {
	p := startProcess(t)
	topic := uniqueName("sigterm")
	createTopic(t, p.Addr, topic, 2, nil)
	prod := newKgo(t, p.Addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	want := keyedRecords(topic, 200, 5)
	require.NoError(t, prod.ProduceSync(testCtx(t), want...).FirstErr())
	prod.Close()

	require.Equal(t, 0, p.sigterm(20*time.Second), "exit code after SIGTERM")
	p.restart() // waits for "ready"

	stored := readAllRecords(t, p.Addr, topic)
	require.Len(t, stored, len(want))
	for _, r := range want {
		require.Equal(t, string(r.Value), stored[partitionOffset{r.Partition, r.Offset}])
	}
	require.Equal(t, 0, p.sigterm(20*time.Second), "exit code after second SIGTERM")
}
