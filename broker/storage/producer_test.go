package storage

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

func idem(pid int64, epoch int16, seq int32, n int) []byte {
	s := plain(n)
	s.pid, s.epoch, s.seq = pid, epoch, seq
	return s.build()
}

func TestIdempotentProducer(t *testing.T) {
	type step struct {
		b       []byte
		err     *kerr.Error
		dup     bool
		base    int64 // expected base offset when no error
		restart bool  // close and reopen before the step
		crash   bool  // reopen a crash copy before the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{
			{b: idem(1, 0, 0, 3), base: 0},
			{b: idem(1, 0, 3, 2), base: 3},
			{b: idem(2, 0, 0, 1), base: 5},
		}},
		{"duplicate of last and older batch", []step{
			{b: idem(1, 0, 0, 3), base: 0},
			{b: idem(1, 0, 3, 2), base: 3},
			{b: idem(1, 0, 5, 1), base: 5},
			{b: idem(1, 0, 3, 2), dup: true, base: 3},
			{b: idem(1, 0, 0, 3), dup: true, base: 0},
			{b: idem(1, 0, 6, 1), base: 6},
		}},
		{"only five batches remembered", []step{
			{b: idem(1, 0, 0, 1), base: 0},
			{b: idem(1, 0, 1, 1), base: 1},
			{b: idem(1, 0, 2, 1), base: 2},
			{b: idem(1, 0, 3, 1), base: 3},
			{b: idem(1, 0, 4, 1), base: 4},
			{b: idem(1, 0, 5, 1), base: 5},
			{b: idem(1, 0, 1, 1), dup: true, base: 1},
			{b: idem(1, 0, 0, 1), err: kerr.OutOfOrderSequenceNumber},
		}},
		{"gap", []step{
			{b: idem(1, 0, 0, 3), base: 0},
			{b: idem(1, 0, 4, 1), err: kerr.OutOfOrderSequenceNumber},
			{b: idem(1, 0, 3, 1), base: 3},
		}},
		{"unknown producer must start at zero", []step{
			{b: idem(9, 0, 5, 1), err: kerr.OutOfOrderSequenceNumber},
		}},
		{"fenced epoch", []step{
			{b: idem(1, 1, 0, 1), base: 0},
			{b: idem(1, 0, 1, 1), err: kerr.InvalidProducerEpoch},
			{b: idem(1, 2, 3, 1), err: kerr.OutOfOrderSequenceNumber},
			{b: idem(1, 2, 0, 1), base: 1},
			{b: idem(1, 1, 1, 1), err: kerr.InvalidProducerEpoch},
		}},
		{"state survives clean restart", []step{
			{b: idem(1, 0, 0, 3), base: 0},
			{b: idem(1, 0, 0, 3), dup: true, base: 0, restart: true},
			{b: idem(1, 0, 4, 1), err: kerr.OutOfOrderSequenceNumber},
			{b: idem(1, 0, 3, 1), base: 3},
		}},
		{"state survives crash", []step{
			{b: idem(1, 0, 0, 3), base: 0},
			{b: idem(1, 0, 3, 3), base: 3},
			{b: idem(1, 0, 3, 3), dup: true, base: 3, crash: true},
			{b: idem(1, 0, 7, 1), err: kerr.OutOfOrderSequenceNumber},
			{b: idem(1, 0, 6, 1), base: 6, crash: true},
		}},
		{"non idempotent untouched", []step{
			{b: plain(2).build(), base: 0},
			{b: plain(2).build(), base: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			l := openLog(t, dir, cfg)
			defer func() { _ = l.Close() }()
			for i, st := range tt.steps {
				if st.restart {
					require.NoError(t, l.Close())
					l = openLog(t, dir, cfg)
				}
				if st.crash {
					dir = crashCopy(t, dir)
					_ = l.Close()
					l = openLog(t, dir, cfg)
				}
				leo := l.LogEndOffset()
				res, err := l.Append(st.b, 0)
				if st.err != nil {
					require.ErrorIs(t, err, st.err, "step %d", i)
					require.Equal(t, leo, l.LogEndOffset(), "step %d changed the log", i)
					continue
				}
				require.NoError(t, err, "step %d", i)
				require.Equal(t, st.dup, res.Duplicate, "step %d", i)
				require.Equal(t, st.base, res.BaseOffset, "step %d", i)
				if st.dup {
					require.Equal(t, leo, l.LogEndOffset())
				}
			}
		})
	}
}

func TestSequenceWrap(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	mustAppend(t, l, idem(1, 0, 0, 1))
	// Move the producer near the top of the sequence space.
	l.mu.Lock()
	l.producers.producers[1].batches[0].lastSeq = math.MaxInt32 - 2
	l.mu.Unlock()
	res := mustAppend(t, l, idem(1, 0, math.MaxInt32-1, 3)) // seqs max-1, max, 0
	require.Equal(t, int64(1), res.BaseOffset)
	_, err := l.Append(idem(1, 0, 2, 1), 0)
	require.ErrorIs(t, err, kerr.OutOfOrderSequenceNumber)
	res = mustAppend(t, l, idem(1, 0, 1, 1))
	require.Equal(t, int64(4), res.BaseOffset)
}

func TestMultiBatchAppendSameProducer(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	b := append(idem(1, 0, 0, 2), idem(1, 0, 2, 2)...)
	res := mustAppend(t, l, b)
	require.Equal(t, int64(0), res.BaseOffset)
	require.Equal(t, int64(3), res.LastOffset)
	// The second batch after a gap refuses the whole append.
	b = append(idem(1, 0, 4, 1), idem(1, 0, 9, 1)...)
	_, err := l.Append(b, 0)
	require.ErrorIs(t, err, kerr.OutOfOrderSequenceNumber)
	require.Equal(t, int64(4), l.LogEndOffset())
	mustAppend(t, l, idem(1, 0, 4, 1))
}
