package alerting

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/sluicemq/sluice/alerting/dispatch"
)

// slackInteractionsPath is signed by Slack with the app's signing secret instead of carrying
// API credentials.
const slackInteractionsPath = "/api/v1/slack/interactions"

// bearerToken returns the token of an `Authorization: Bearer` header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

// skipsBasicAuth tells the listener which requests bring their own credential, so that the web
// config's basic auth does not stand in their way: bearer tokens (checked by protect) and
// Slack's signed interaction requests (checked by the Slack handler).
func (m *Manager) skipsBasicAuth(r *http.Request) bool {
	if r.URL.Path == slackInteractionsPath {
		return true
	}
	_, ok := bearerToken(r)
	return ok && m.hasTokens()
}

func (m *Manager) hasTokens() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens) > 0
}

// validToken compares in constant time against every configured token.
func (m *Manager) validToken(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	m.mu.Lock()
	defer m.mu.Unlock()
	ok := 0
	for _, t := range m.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return ok == 1
}

// authenticated says whether a request to /api/ may proceed: a valid bearer token, or basic
// auth which exporter-toolkit already checked (every request without a bearer token passes
// through it when the web config has basic_auth_users), or no credential configured at all, in
// which case the listener is loopback-only.
func (m *Manager) authenticated(r *http.Request) bool {
	if tok, ok := bearerToken(r); ok && m.hasTokens() {
		return m.validToken(tok)
	}
	if m.listener.BasicAuth() {
		return true
	}
	return !m.hasTokens()
}

// protect guards the API: every /api/ request must be authenticated (401 otherwise), and every
// write must be `Content-Type: application/json` (415 otherwise), so that a web page cannot
// make an operator's browser change anything with a simple text/plain or form POST. Slack's
// interaction endpoint is exempt from both: Slack signs its form posts.
func (m *Manager) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == slackInteractionsPath {
			next.ServeHTTP(w, r)
			return
		}
		if !m.authenticated(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice alerting"`)
			writeError(w, http.StatusUnauthorized, fmt.Errorf("authentication required: a bearer token of api.token_file or token_env, or basic auth of the web config"))
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("%s %s: Content-Type must be application/json", r.Method, r.URL.Path))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkSilenceLength refuses a silence longer than api.max_silence_duration, counted from its
// start or from now if it starts earlier. A silence matching everything (alertname=~".+") is
// as good as switching alerting off, so the cap holds for every silence.
func (m *Manager) checkSilenceLength(s dispatch.Silence, now time.Time) error {
	cfg := m.Config()
	limit := cfg.maxSilence()
	start := s.StartsAt
	if start.IsZero() || start.Before(now) {
		start = now
	}
	if !s.EndsAt.IsZero() && s.EndsAt.Sub(start) > limit {
		return fmt.Errorf("%w: lasts %s, longer than api.max_silence_duration %s", dispatch.ErrBadSilence,
			s.EndsAt.Sub(start).Round(time.Second), limit)
	}
	return nil
}
