package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/notify"
	"github.com/slack-go/slack"

	"github.com/sluicemq/sluice/internal/durable"
)

// Action IDs of the message buttons.
const (
	ActionAck     = "sluice_ack"
	ActionResolve = "sluice_resolve"
	ActionSilence = "sluice_silence_1h"
	// ActionOpen is a link button: Slack opens its URL and still reports the press, which
	// changes nothing.
	ActionOpen = "sluice_open"
)

// Record is one posted bot message: which alert group it shows and what people did with it.
type Record struct {
	ID          string            `json:"id"`
	Client      string            `json:"client"`
	Channel     string            `json:"channel"`
	TS          string            `json:"ts"`
	GroupKey    string            `json:"groupKey"`
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	Status      string            `json:"status"`
	Created     time.Time         `json:"created"`
	AckedBy     string            `json:"ackedBy,omitempty"`
	ResolvedBy  string            `json:"resolvedBy,omitempty"`
	SilencedBy  string            `json:"silencedBy,omitempty"`
	SilenceID   string            `json:"silenceId,omitempty"`
	Alerts      []AlertSnapshot   `json:"alerts,omitempty"`
}

// MessageID names the message of one alert group in one channel.
func MessageID(receiver, channel, groupKey string) string {
	h := sha256.Sum256([]byte(receiver + "\x00" + channel + "\x00" + groupKey))
	return hex.EncodeToString(h[:12])
}

// Store keeps the posted messages, in a JSON file so that a restart still edits the same
// messages and still answers their buttons.
type Store struct {
	path    string
	mu      sync.Mutex
	recs    map[string]Record
	clients map[string]*slack.Client
}

// OpenStore loads the store from path ("" keeps it in memory only).
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path, recs: map[string]Record{}, clients: map[string]*slack.Client{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.recs); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) register(key string, c *slack.Client) string {
	h := sha256.Sum256([]byte(key))
	id := hex.EncodeToString(h[:8])
	s.mu.Lock()
	s.clients[id] = c
	s.mu.Unlock()
	return id
}

func (s *Store) get(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	return r, ok
}

// Get returns the record of a message.
func (s *Store) Get(id string) (Record, bool) { return s.get(id) }

// put records r and writes the store durably (temporary file, fsync, rename, fsync of the
// directory). On a write error the record is kept in memory and the error returned: the caller
// reports it, since a restart would then lose the message.
func (s *Store) put(r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.ID] = r
	for k, v := range s.recs { // forget messages of groups quiet for a week
		if time.Since(v.Created) > 7*24*time.Hour && v.Status == "resolved" {
			delete(s.recs, k)
		}
	}
	if s.path == "" {
		return nil
	}
	b, err := json.Marshal(s.recs)
	if err != nil {
		return fmt.Errorf("slack message store: %w", err)
	}
	if err := durable.WriteFile(s.path, b, 0o600); err != nil {
		return fmt.Errorf("slack message store: %w", err)
	}
	return nil
}

// ActionFunc handles a button press on a message whose alert group another service owns (the
// ticket service's incidents): it makes the change and returns the line posted in the message's
// thread, or "" when nothing changed. user is the Slack user ID.
type ActionFunc func(ctx context.Context, action string, rec Record, user string) (note string, err error)

// SilenceFunc creates a silence for the labels of an alert group for d, returning its ID.
type SilenceFunc func(ctx context.Context, labels map[string]string, d time.Duration, createdBy, comment string) (string, error)

// Handler answers Slack's interaction requests (the message buttons). Requests are verified with
// the app's signing secret: a bad or missing signature, or a timestamp more than 5 minutes off,
// gets 401 and changes nothing. Each action is idempotent: pressing a button twice, or Slack
// retrying a request, changes the message and creates a silence once. Actions are handled one
// at a time, so that concurrent presses cannot both act.
type Handler struct {
	Store *Store
	// SigningSecret and DashboardURL are read under a lock; change them with SetConfig once
	// the Handler serves.
	SigningSecret string
	Silence       SilenceFunc
	DashboardURL  string
	Logger        *slog.Logger
	// OnAction, when set, handles every button press instead of the built-in acknowledge,
	// resolve and silence; the Handler still verifies the request and answers in the thread.
	OnAction ActionFunc

	cfgMu sync.RWMutex
	actMu sync.Mutex // serializes actions; taken before Store.mu
}

// SetConfig replaces the signing secret and the dashboard URL (on configuration reload).
func (h *Handler) SetConfig(signingSecret, dashboardURL string) {
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	h.SigningSecret, h.DashboardURL = signingSecret, dashboardURL
}

func (h *Handler) config() (secret, dashboardURL string) {
	h.cfgMu.RLock()
	defer h.cfgMu.RUnlock()
	return h.SigningSecret, h.DashboardURL
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secret, dashboardURL := h.config()
	if secret == "" {
		http.Error(w, "slack interactions are not configured (no signing secret)", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, secret)
	if err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if _, err := sv.Write(body); err != nil || sv.Ensure() != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(r.PostFormValue("payload")), &cb); err != nil {
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	failed := false
	for _, a := range cb.ActionCallback.BlockActions {
		if err := h.act(r.Context(), a.ActionID, a.Value, cb.User.ID, dashboardURL); err != nil {
			failed = true
			if h.Logger != nil {
				h.Logger.Error("slack action failed", "action", a.ActionID, "err", notify.RedactURL(err))
			}
		}
	}
	if failed {
		// Slack shows the person who pressed the button that it did not work.
		http.Error(w, "action failed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) act(ctx context.Context, action, id, user, dashboardURL string) error {
	h.actMu.Lock()
	defer h.actMu.Unlock()
	h.Store.mu.Lock()
	rec, ok := h.Store.recs[id]
	h.Store.mu.Unlock()
	if !ok {
		return nil
	}
	if h.OnAction != nil {
		note, err := h.OnAction(ctx, action, rec, user)
		if err != nil || note == "" {
			return err
		}
		h.Store.mu.Lock()
		c := h.Store.clients[rec.Client]
		h.Store.mu.Unlock()
		if c == nil || rec.TS == "" {
			return nil
		}
		_, _, err = c.PostMessageContext(ctx, rec.Channel, slack.MsgOptionText(note, false), slack.MsgOptionTS(rec.TS))
		return err
	}
	changed := false
	var note string
	switch action {
	case ActionAck:
		if rec.AckedBy == "" {
			rec.AckedBy, changed, note = user, true, "Acknowledged by <@"+user+">"
		}
	case ActionResolve:
		if rec.ResolvedBy == "" {
			rec.ResolvedBy, changed, note = user, true, "Marked resolved by <@"+user+">; the message turns green when the alert stops firing"
		}
	case ActionSilence:
		if rec.SilenceID == "" && h.Silence != nil {
			sid, err := h.Silence(ctx, rec.GroupLabels, time.Hour, "slack:"+user, "Silenced for 1h from Slack")
			if err != nil {
				return err
			}
			rec.SilenceID, rec.SilencedBy, changed, note = sid, user, true, "Silenced for 1h by <@"+user+">"
		}
	}
	if !changed {
		return nil
	}
	if err := h.Store.put(rec); err != nil {
		return err
	}
	h.Store.mu.Lock()
	c := h.Store.clients[rec.Client]
	h.Store.mu.Unlock()
	if c == nil || rec.TS == "" {
		return nil
	}
	n := &Notifier{cfg: Config{DashboardURL: dashboardURL, MaxAlerts: 10}}
	alerts := restore(rec.Alerts)
	if len(alerts) > 0 {
		blocks, text := n.render(alerts, id, &rec)
		if _, _, _, err := c.UpdateMessageContext(ctx, rec.Channel, rec.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
			return err
		}
	}
	_, _, err := c.PostMessageContext(ctx, rec.Channel, slack.MsgOptionText(note, false), slack.MsgOptionTS(rec.TS))
	return err
}
