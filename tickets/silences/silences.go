// Package silences is the ticket service's client of Sluice's alerting HTTP API
// (package alerting, `sluice alerting`) for silences: list, create and expire.
// It speaks the API's JSON exactly by using the alerting dispatcher's own types.
package silences

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/alerting/dispatch"
)

// Silence is a silence as the alerting API shows and takes it.
type Silence = dispatch.Silence

// Matcher selects alerts by one label.
type Matcher = dispatch.Matcher

// ErrNotFound is returned when the alerting API does not know a silence.
var ErrNotFound = errors.New("no such silence")

// Error is a refusal by the alerting API (a 4xx), with its message; the
// request is not worth repeating unchanged.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("alerting answered %d: %s", e.Code, e.Message) }

// Client talks to one alerting API.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client of the alerting API at baseURL, such as
// http://127.0.0.1:9093 (`sluice alerting`'s default listen address).
func New(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alerting_url %q: want http(s)://host:port", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), hc: hc}, nil
}

// URL is the API's base URL.
func (c *Client) URL() string { return c.base }

// List returns every silence the alerting API keeps: active and pending ones
// first, each group ending soonest first, then expired ones, latest first.
func (c *Client) List(ctx context.Context) ([]Silence, error) {
	var out []Silence
	if err := c.do(ctx, http.MethodGet, "/api/v1/silences", nil, &out); err != nil {
		return nil, err
	}
	rank := map[string]int{"active": 0, "pending": 1, "expired": 2}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank[a.State] != rank[b.State] {
			return rank[a.State] < rank[b.State]
		}
		if a.State == "expired" {
			return a.EndsAt.After(b.EndsAt)
		}
		return a.EndsAt.Before(b.EndsAt)
	})
	return out, nil
}

// Create creates a silence and returns its ID.
func (c *Client) Create(ctx context.Context, s Silence) (string, error) {
	s.ID = ""
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/silences", s, &out); err != nil {
		return "", err
	}
	return out.SilenceID, nil
}

// Expire ends a silence now.
func (c *Client) Expire(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(id), nil, nil)
}

// do sends a request and decodes the API's envelope
// {"status":"success","data":...} or {"status":"error","error":"..."}.
func (c *Client) do(ctx context.Context, method, path string, body, data any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		// The alerting API takes only application/json on every write, DELETE included.
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("alerting API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("alerting API: %w", err)
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("alerting API %s %s: %d, not its JSON: %.200q", method, path, resp.StatusCode, raw)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && method == http.MethodDelete:
		return ErrNotFound
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return &Error{Code: resp.StatusCode, Message: env.Error}
	case resp.StatusCode != http.StatusOK || env.Status != "success":
		return fmt.Errorf("alerting API %s %s: %d %s", method, path, resp.StatusCode, env.Error)
	}
	if data == nil {
		return nil
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return fmt.Errorf("alerting API %s %s: %w", method, path, err)
	}
	return nil
}

// ParseMatchers reads matchers one per line or comma separated, in
// Alertmanager's notation: name="value", name!="value", name=~"regex",
// name!~"regex" (quotes optional).
func ParseMatchers(s string) ([]Matcher, error) {
	var out []Matcher
	for _, part := range splitMatchers(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.IndexAny(part, "=!")
		if i <= 0 {
			return nil, fmt.Errorf("matcher %q: want name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\"", part)
		}
		name, rest := strings.TrimSpace(part[:i]), part[i:]
		var op string
		for _, o := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(rest, o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, fmt.Errorf("matcher %q: unknown operator", part)
		}
		value := strings.TrimSpace(rest[len(op):])
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			v, err := strconv.Unquote(value)
			if err != nil {
				return nil, fmt.Errorf("matcher %q: bad quoted value", part)
			}
			value = v
		}
		if !validLabelName(name) {
			return nil, fmt.Errorf("matcher %q: %q is not a label name", part, name)
		}
		m := Matcher{Name: name, Value: value, IsRegex: op == "=~" || op == "!~"}
		if op[0] == '!' {
			f := false
			m.IsEqual = &f
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, errors.New("at least one matcher is required")
	}
	return out, nil
}

// splitMatchers splits on newlines and on commas outside double quotes.
func splitMatchers(s string) []string {
	var parts []string
	var b strings.Builder
	quoted, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && quoted:
			escaped = true
		case r == '"':
			quoted = !quoted
		case (r == ',' && !quoted) || r == '\n':
			parts = append(parts, b.String())
			b.Reset()
			continue
		}
		b.WriteRune(r)
	}
	return append(parts, b.String())
}

func validLabelName(n string) bool {
	for i, r := range n {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return n != ""
}

// FormatMatchers writes matchers back in the notation ParseMatchers reads.
func FormatMatchers(ms []Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		op := "="
		neq := m.IsEqual != nil && !*m.IsEqual
		switch {
		case m.IsRegex && neq:
			op = "!~"
		case m.IsRegex:
			op = "=~"
		case neq:
			op = "!="
		}
		parts[i] = m.Name + op + strconv.Quote(m.Value)
	}
	return strings.Join(parts, ", ")
}
