package metadata

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter sends hashicorp/raft's hclog output to the injected *slog.Logger, dropping everything
// below its level (warn by default: raft is chatty at info about every election and snapshot).
// Complaints about one peer (a stopped broker: "failed to heartbeat to", "failed to
// appendEntries to", ...) are logged once as a warning, then at most once per peerLogInterval
// with the number of repeats left out: a peer that is down is not an error of this broker, and
// raft retries it several times a second.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	args    []any
	level   hclog.Level
	repeats *peerRepeats
}

// peerLogInterval is how often one complaint about one peer is logged.
const peerLogInterval = time.Minute

func newHCLog(l *slog.Logger, level hclog.Level) hclog.Logger {
	return &hclogAdapter{l: l, name: "raft", level: level, repeats: &peerRepeats{seen: map[string]*peerRepeat{}, now: time.Now}}
}

// peerRepeats counts complaints per message and peer.
type peerRepeats struct {
	mu   sync.Mutex
	now  func() time.Time
	seen map[string]*peerRepeat
}

type peerRepeat struct {
	last       time.Time
	suppressed int
}

// admit reports whether a complaint keyed by key is logged now, and how many
// were left out since the last one that was.
func (r *peerRepeats) admit(key string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	e := r.seen[key]
	if e == nil {
		if len(r.seen) > 1000 { // bounded: peers are few, but keys come from messages
			clear(r.seen)
		}
		r.seen[key] = &peerRepeat{last: now}
		return true, 0
	}
	if now.Sub(e.last) < peerLogInterval {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// peerHungUp reports whether a message's error is a connection closed by
// either side. Complaints about a named peer are rate-limited instead: they
// are how a stopped peer shows.
func peerHungUp(args []any) bool {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "error" {
			msg := fmt.Sprint(args[i+1])
			return msg == "EOF" || strings.HasSuffix(msg, "use of closed network connection") || strings.HasSuffix(msg, "connection reset by peer")
		}
	}
	return false
}

// peerOf returns the peer a raft message is about, from its "peer", "target"
// or "server-id" argument.
func peerOf(args []any) (string, bool) {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && (k == "peer" || k == "target" || k == "server-id") {
			return fmt.Sprint(args[i+1]), true
		}
	}
	return "", false
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || (level != hclog.NoLevel && level < h.level) {
		return
	}
	all := make([]any, 0, len(h.args)+len(args)+4)
	all = append(all, "component", h.name)
	all = append(all, h.args...)
	all = append(all, args...)
	if _, aboutPeer := peerOf(args); level >= hclog.Warn && !aboutPeer && peerHungUp(args) {
		// The transport reading from a connection a peer (or this broker,
		// shutting down) closed: routine at every stop, not an error.
		level = hclog.Debug
		if level < h.level {
			return
		}
	}
	if level >= hclog.Warn && h.repeats != nil {
		if peer, ok := peerOf(all); ok {
			logNow, left := h.repeats.admit(msg + "\x00" + peer)
			if !logNow {
				return
			}
			level = hclog.Warn
			if left > 0 {
				all = append(all, "repeated", left, "over", peerLogInterval.String())
			}
		}
	}
	h.l.Log(context.Background(), slogLevel(level), msg, all...)
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }
func (h *hclogAdapter) IsTrace() bool                 { return h.level <= hclog.Trace }
func (h *hclogAdapter) IsDebug() bool                 { return h.level <= hclog.Debug }
func (h *hclogAdapter) IsInfo() bool                  { return h.level <= hclog.Info }
func (h *hclogAdapter) IsWarn() bool                  { return h.level <= hclog.Warn }
func (h *hclogAdapter) IsError() bool                 { return h.level <= hclog.Error }
func (h *hclogAdapter) ImpliedArgs() []any            { return h.args }
func (h *hclogAdapter) Name() string                  { return h.name }
func (h *hclogAdapter) SetLevel(l hclog.Level)        { h.level = l }
func (h *hclogAdapter) GetLevel() hclog.Level         { return h.level }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	return &c
}

func (h *hclogAdapter) Named(name string) hclog.Logger {
	c := *h
	c.name = h.name + "." + name
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.Log(hclog.Warn, string(bytes.TrimSpace(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
