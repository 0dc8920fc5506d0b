package txn

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStore is an in-memory __transaction_state: one append-only log per
// partition, like the broker's.
type memStore struct {
	mu      sync.Mutex
	logs    map[int32][]Record
	failErr error // when set, Append fails with it
}

func newMemStore() *memStore { return &memStore{logs: map[int32][]Record{}} }

func (s *memStore) Append(_ context.Context, p int32, recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	for _, r := range recs {
		r.Key = append([]byte(nil), r.Key...)
		if r.Value != nil {
			r.Value = append([]byte(nil), r.Value...)
		}
		s.logs[p] = append(s.logs[p], r)
	}
	return nil
}

func (s *memStore) Load(p int32, fn func(Record) error) error {
	s.mu.Lock()
	recs := append([]Record(nil), s.logs[p]...)
	s.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	s.failErr = err
	s.mu.Unlock()
}

// lastState decodes the newest record of id in the store.
func (s *memStore) last(t *testing.T, p int32, id string) *txnMeta {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var last *txnMeta
	for _, r := range s.logs[p] {
		rid, m, err := decodeRecord(r)
		require.NoError(t, err)
		if rid == id {
			last = m
		}
	}
	return last
}

// markerLog records the markers written, and can fail partitions.
type markerLog struct {
	mu       sync.Mutex
	written  []Markers
	failLeft map[TopicPartition]int // partition -> remaining retriable failures
	block    chan struct{}          // when set, WriteMarkers waits for it to close
	calls    atomic.Int32
}

func (w *markerLog) WriteMarkers(ctx context.Context, m Markers) ([]TopicPartition, error) {
	w.calls.Add(1)
	w.mu.Lock()
	block := w.block
	w.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var retry, done []TopicPartition
	for _, tp := range m.Partitions {
		if w.failLeft[tp] > 0 {
			w.failLeft[tp]--
			retry = append(retry, tp)
			continue
		}
		done = append(done, tp)
	}
	m.Partitions = done
	w.written = append(w.written, m)
	return retry, nil
}

func (w *markerLog) all() []Markers {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Markers(nil), w.written...)
}

// env is a coordinator over a memStore and a markerLog, with a clock the
// test moves.
type env struct {
	c       *Coordinator
	store   *memStore
	markers *markerLog
	reg     *prometheus.Registry
	clock   atomic.Int64 // unix millis
	nextPID atomic.Int64
}

func newEnv(t *testing.T, store *memStore, cfg Config) *env {
	t.Helper()
	e := &env{store: store, markers: &markerLog{failLeft: map[TopicPartition]int{}}, reg: prometheus.NewRegistry()}
	e.clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	e.nextPID.Store(1000)
	e.c = New(cfg, store, e.markers, func(context.Context) (int64, error) { return e.nextPID.Add(1), nil }, nil, e.reg)
	e.c.now = func() time.Time { return time.UnixMilli(e.clock.Load()) }
	t.Cleanup(e.c.Close)
	return e
}

// load loads the partition of id with coordinator epoch 1.
func (e *env) load(t *testing.T, id string) int32 {
	t.Helper()
	p := e.c.PartitionFor(id)
	require.NoError(t, e.c.LoadPartition(p, 1))
	return p
}

func (e *env) advance(d time.Duration) { e.clock.Add(d.Milliseconds()) }

func (e *env) state(t *testing.T, id string) State {
	t.Helper()
	d, code := e.c.Describe(id)
	require.Zero(t, code)
	return d.State
}

// waitState polls until id reaches want (completions run in the background).
func (e *env) waitState(t *testing.T, id string, want State) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, id+" in state "+want.String(), func() bool {
		d, code := e.c.Describe(id)
		return code == 0 && d.State == want
	})
}

var errBoom = errors.New("boom")
