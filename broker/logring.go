package broker

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// logRing keeps the broker's recent WARN and ERROR log lines, served at
// /api/v1/logs so that the ticket service's fault snapshot can show them from
// brokers on other machines.
type logRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

const logRingSize = 500

func (r *logRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lines == nil {
		r.lines = make([]string, logRingSize)
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % logRingSize
	r.full = r.full || r.next == 0
}

// recent returns the kept lines, oldest first.
func (r *logRing) recent() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string{}, r.lines[:r.next]...)
	}
	return append(append([]string{}, r.lines[r.next:]...), r.lines[:r.next]...)
}

// ringHandler passes every record to the broker's own handler and keeps WARN and
// above, formatted as slog text lines, in the ring.
type ringHandler struct {
	next slog.Handler
	ring *logRing
	// scope replays the WithAttrs and WithGroup calls made on this handler, in
	// order, onto the text handler that formats a kept line: attributes added
	// after a group belong inside it.
	scope []func(slog.Handler) slog.Handler
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		var buf bytes.Buffer
		th := slog.Handler(slog.NewTextHandler(&buf, nil))
		for _, f := range h.scope {
			th = f(th)
		}
		if th.Handle(ctx, rec) == nil {
			h.ring.add(string(bytes.TrimRight(buf.Bytes(), "\n")))
		}
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *ringHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(h.next.WithAttrs(attrs), func(th slog.Handler) slog.Handler { return th.WithAttrs(attrs) })
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	return h.with(h.next.WithGroup(name), func(th slog.Handler) slog.Handler { return th.WithGroup(name) })
}

func (h *ringHandler) with(next slog.Handler, f func(slog.Handler) slog.Handler) *ringHandler {
	return &ringHandler{next: next, ring: h.ring, scope: append(append([]func(slog.Handler) slog.Handler{}, h.scope...), f)}
}
