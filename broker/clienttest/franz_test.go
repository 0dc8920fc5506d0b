package clienttest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

// keyedRecords returns n records over nkeys keys; the value is "key/seq" where
// seq counts up per key, so per-key order can be checked after consuming.
func keyedRecords(topic string, n, nkeys int) []*kgo.Record {
	seq := make([]int, nkeys)
	rs := make([]*kgo.Record, n)
	for i := range rs {
		k := i % nkeys
		key := fmt.Sprintf("key-%d", k)
		rs[i] = &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprintf("%s/%d", key, seq[k]))}
		seq[k]++
	}
	return rs
}

// checkKeyed asserts that got holds exactly the values of want, that every key
// lives in one partition, and that each key's records are in produce order.
func checkKeyed(t *testing.T, want, got []*kgo.Record) {
	t.Helper()
	require.Len(t, got, len(want))
	wantValues := make(map[string]bool, len(want))
	for _, r := range want {
		wantValues[string(r.Value)] = true
	}
	keyPartition := map[string]int32{}
	lastSeq := map[string]int{}
	for _, r := range got {
		v := string(r.Value)
		require.True(t, wantValues[v], "unexpected or duplicate record %q", v)
		delete(wantValues, v)
		key := string(r.Key)
		if p, ok := keyPartition[key]; ok {
			require.Equal(t, p, r.Partition, "key %s in two partitions", key)
		}
		keyPartition[key] = r.Partition
		seq, err := strconv.Atoi(v[strings.LastIndexByte(v, '/')+1:])
		require.NoError(t, err)
		if last, ok := lastSeq[key]; ok {
			require.Greater(t, seq, last, "key %s out of order", key)
		}
		lastSeq[key] = seq
	}
	require.Empty(t, wantValues)
}

// consumeN polls cl until n records arrived or the deadline passes.
func consumeN(t testing.TB, cl *kgo.Client, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch error on %s/%d: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	return got
}

// assertNoMore polls briefly and fails if any record arrives.
func assertNoMore(t testing.TB, cl *kgo.Client, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	fs := cl.PollFetches(ctx)
	require.Zero(t, fs.NumRecords(), "records arrived that should not have")
}

func TestFranzKeyedProduceConsume(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := uniqueName("franz-keyed-" + tc.name)
			createTopic(t, b.Addr, topic, 3, nil)
			prod := newKgo(t, b.Addr, kgo.ProducerBatchCompression(tc.codec), kgo.DefaultProduceTopic(topic))
			want := keyedRecords(topic, 300, 7)
			require.NoError(t, prod.ProduceSync(testCtx(t), want...).FirstErr())

			cons := newKgo(t, b.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := consumeN(t, cons, len(want), 20*time.Second)
			checkKeyed(t, want, got)
			assertNoMore(t, cons, 300*time.Millisecond)
		})
	}
}

// TestFranzIdempotentProduce produces with kgo's default idempotent producer
// (InitProducerID, sequence numbers, acks=all) from several goroutines and
// checks every record is stored once with offsets 0..n-1 per partition.
func TestFranzIdempotentProduce(t *testing.T) {
	b := startBroker(t)
	topic := uniqueName("franz-idem")
	createTopic(t, b.Addr, topic, 2, nil)
	prod := newKgo(t, b.Addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond))

	const producers, perProducer = 4, 250
	var wg sync.WaitGroup
	errs := make(chan error, producers*perProducer)
	for g := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				r := &kgo.Record{Key: []byte(strconv.Itoa(g)), Value: []byte(fmt.Sprintf("%d/%d", g, i))}
				prod.Produce(context.Background(), r, func(r *kgo.Record, err error) { errs <- err })
			}
		}()
	}
	wg.Wait()
	require.NoError(t, prod.Flush(testCtx(t)))
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	cons := newKgo(t, b.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, cons, producers*perProducer, 20*time.Second)
	seen := map[string]bool{}
	next := map[int32]int64{}
	for _, r := range got {
		require.False(t, seen[string(r.Value)], "duplicate %s", r.Value)
		seen[string(r.Value)] = true
		require.Equal(t, next[r.Partition], r.Offset, "offset gap or repeat in partition %d", r.Partition)
		next[r.Partition]++
	}
	assertNoMore(t, cons, 300*time.Millisecond)
}

// groupMember is one kgo group consumer that records what it consumed and
// which partitions it currently owns.
type groupMember struct {
	cl *kgo.Client

	mu    sync.Mutex
	owned map[int32]bool
}

func (m *groupMember) ownedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.owned)
}

// seenRecords is the set of topic/partition/offset consumed by a group.
type seenRecords struct {
	mu   sync.Mutex
	recs map[string]string // "p/offset" -> value
	dups int
}

func (s *seenRecords) add(r *kgo.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	if _, ok := s.recs[k]; ok {
		s.dups++
	}
	s.recs[k] = string(r.Value)
}

func (s *seenRecords) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func startGroupMember(t *testing.T, addr, group, topic string, seen *seenRecords) *groupMember {
	t.Helper()
	m := &groupMember{owned: map[int32]bool{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(300*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.AutoCommitInterval(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.owned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.owned, p)
			}
			m.mu.Unlock()
			_ = cl.CommitMarkedOffsets(ctx)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range l[topic] {
				delete(m.owned, p)
			}
		}),
	)
	require.NoError(t, err)
	m.cl = cl
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(seen.add)
		}
	}()
	t.Cleanup(func() {
		cl.Close()
		<-done
	})
	return m
}

// TestFranzGroupRebalance runs three members of one group over six
// partitions, closes one, and checks the other two take over its partitions
// and consume everything produced before and after.
func TestFranzGroupRebalance(t *testing.T) {
	b := startBroker(t)
	topic, group := uniqueName("franz-rebalance"), uniqueName("group")
	createTopic(t, b.Addr, topic, 6, nil)
	prod := newKgo(t, b.Addr, kgo.DefaultProduceTopic(topic))
	require.NoError(t, prod.ProduceSync(testCtx(t), keyedRecords(topic, 300, 30)...).FirstErr())

	seen := &seenRecords{recs: map[string]string{}}
	members := []*groupMember{
		startGroupMember(t, b.Addr, group, topic, seen),
		startGroupMember(t, b.Addr, group, topic, seen),
		startGroupMember(t, b.Addr, group, topic, seen),
	}
	testutil.WaitFor(t, 30*time.Second, "three members owning two partitions each", func() bool {
		for _, m := range members {
			if m.ownedCount() != 2 {
				return false
			}
		}
		return true
	})
	testutil.WaitFor(t, 20*time.Second, "first 300 records consumed", func() bool { return seen.len() == 300 })

	members[2].cl.Close() // LeaveGroup; the others must take over.
	testutil.WaitFor(t, 30*time.Second, "two members owning three partitions each", func() bool {
		return members[0].ownedCount() == 3 && members[1].ownedCount() == 3
	})
	more := keyedRecords(topic, 300, 30)
	for _, r := range more {
		r.Value = append([]byte("second/"), r.Value...)
	}
	require.NoError(t, prod.ProduceSync(testCtx(t), more...).FirstErr())
	testutil.WaitFor(t, 20*time.Second, "all 600 records consumed", func() bool { return seen.len() == 600 })
	t.Logf("records redelivered across the rebalance: %d", seen.dups)
}

// TestFranzCommitResume consumes part of a topic in a group, commits, closes,
// and checks a new client in the same group starts at the committed offsets.
func TestFranzCommitResume(t *testing.T) {
	b := startBroker(t)
	topic, group := uniqueName("franz-resume"), uniqueName("group")
	createTopic(t, b.Addr, topic, 2, nil)
	prod := newKgo(t, b.Addr, kgo.DefaultProduceTopic(topic))
	require.NoError(t, prod.ProduceSync(testCtx(t), keyedRecords(topic, 200, 10)...).FirstErr())

	groupOpts := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.SessionTimeout(6 * time.Second),
	}
	first, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, groupOpts...)...)
	require.NoError(t, err)
	got := consumeN(t, first, 200, 20*time.Second)
	// Commit the first half of each partition: offset = count/2.
	perPartition := map[int32]int64{}
	for _, r := range got {
		perPartition[r.Partition]++
	}
	commit := map[string]map[int32]kgo.EpochOffset{topic: {}}
	committed := 0
	for p, n := range perPartition {
		commit[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: n / 2}
		committed += int(n / 2)
	}
	var commitErr error
	first.CommitOffsetsSync(testCtx(t), commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, tp := range resp.Topics {
			for _, p := range tp.Partitions {
				if p.ErrorCode != 0 {
					commitErr = fmt.Errorf("commit %s/%d: error code %d", tp.Topic, p.Partition, p.ErrorCode)
				}
			}
		}
	})
	require.NoError(t, commitErr)
	first.Close()

	second := newKgo(t, b.Addr, groupOpts...)
	rest := consumeN(t, second, 200-committed, 20*time.Second)
	for _, r := range rest {
		require.GreaterOrEqual(t, r.Offset, perPartition[r.Partition]/2,
			"record %d/%d was committed but delivered again", r.Partition, r.Offset)
	}
	assertNoMore(t, second, 300*time.Millisecond)
}
