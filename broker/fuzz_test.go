package broker

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzRequest feeds arbitrary request frames to a broker's request handling: it
// may answer or reject a frame, but must never panic, and answers must be
// well-formed frames with the request's correlation id.
func FuzzRequest(f *testing.F) {
	for _, req := range []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(), kmsg.NewPtrCreateTopicsRequest(), kmsg.NewPtrJoinGroupRequest(),
		kmsg.NewPtrOffsetCommitRequest(), kmsg.NewPtrListOffsetsRequest(), kmsg.NewPtrDescribeConfigsRequest(),
	} {
		for _, v := range []int16{req.MaxVersion(), 4} {
			req.SetVersion(v)
			body := req.AppendTo(nil)
			if req.IsFlexible() {
				body = append([]byte{0}, body...)
			}
			f.Add(frame(req.Key(), v, 1, body)[4:])
		}
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = f.TempDir()
	cfg.OffsetsTopicNumPartitions = 1
	cfg.GroupInitialRebalanceDelayMs = ptr[int64](0)
	cfg.GroupMinSessionTimeoutMs = 1
	b, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done })

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		// Bound group waits so a fuzzed JoinGroup cannot block the run.
		rctx, rcancel := context.WithTimeout(ctx, 100_000_000)
		defer rcancel()
		cc := &conn{b: b, ctx: rctx, out: make(chan outFrame, 4), listener: b.listeners[0], principal: anonymous}
		if err := cc.handle(data, time.Now()); err != nil {
			return
		}
		close(cc.out)
		for f := range cc.out {
			resp := f.buf
			if len(resp) < 8 || int(binary.BigEndian.Uint32(resp)) != len(resp)-4 {
				t.Fatalf("malformed response frame of %d bytes", len(resp))
			}
			if got, want := binary.BigEndian.Uint32(resp[4:]), binary.BigEndian.Uint32(data[4:]); got != want {
				t.Fatalf("correlation id %d, want %d", got, want)
			}
		}
	})
}
