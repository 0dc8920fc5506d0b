// Package alertmanager decodes the notifications of Alertmanager's webhook
// receiver (payload version 4, notify/webhook/webhook.go) into store signals.
// Sluice's own alerting sends the same payload.
package alertmanager

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/sluicemq/sluice/tickets/store"
)

// Message is the webhook payload, version 4.
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// MaxAlerts bounds the alerts of one notification; Alertmanager's max_alerts cuts
// larger groups and reports the rest in truncatedAlerts.
const MaxAlerts = 5000

// Decode reads and validates one notification. Unknown fields are accepted: a 4xx
// is not retried by Alertmanager, so rejecting a field a newer Alertmanager adds
// would lose alarms. Everything the service relies on is checked.
func Decode(r io.Reader) (*Message, error) {
	var m Message
	dec := json.NewDecoder(r)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("malformed JSON: data after the payload")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the fields the intake relies on.
func (m *Message) Validate() error {
	if m.Version != "4" {
		return fmt.Errorf("version %q: only webhook payload version 4 is understood", m.Version)
	}
	if m.GroupKey == "" {
		return errors.New("groupKey: empty")
	}
	if len(m.GroupKey) > 4096 {
		return errors.New("groupKey: longer than 4096 bytes")
	}
	if m.TruncatedAlerts < 0 {
		return errors.New("truncatedAlerts: negative")
	}
	if len(m.Alerts) == 0 {
		return errors.New("alerts: none")
	}
	if len(m.Alerts) > MaxAlerts {
		return fmt.Errorf("alerts: %d, more than %d", len(m.Alerts), MaxAlerts)
	}
	for i, a := range m.Alerts {
		if a.Status != store.AlarmFiring && a.Status != store.AlarmResolved {
			return fmt.Errorf("alerts[%d].status: %q is neither firing nor resolved", i, a.Status)
		}
		if a.StartsAt.IsZero() {
			return fmt.Errorf("alerts[%d].startsAt: missing", i)
		}
		if len(a.Labels) == 0 {
			return fmt.Errorf("alerts[%d].labels: none", i)
		}
		if len(a.Fingerprint) > 256 {
			return fmt.Errorf("alerts[%d].fingerprint: longer than 256 bytes", i)
		}
	}
	return nil
}

// Signal converts the message for the store. Alerts without a fingerprint get
// one from their labels, as Alertmanager computes its own from the label set.
func (m *Message) Signal() store.GroupSignal {
	g := store.GroupSignal{
		GroupKey: m.GroupKey, Receiver: m.Receiver, ExternalURL: m.ExternalURL, TruncatedAlerts: m.TruncatedAlerts,
		GroupLabels: m.GroupLabels, CommonLabels: m.CommonLabels, CommonAnnotations: m.CommonAnnotations,
	}
	for _, a := range m.Alerts {
		fp := a.Fingerprint
		if fp == "" {
			fp = LabelsFingerprint(a.Labels)
		}
		g.Alarms = append(g.Alarms, store.AlarmSignal{
			Fingerprint: fp, Status: a.Status, StartsAt: a.StartsAt, EndsAt: a.EndsAt,
			Labels: orEmpty(a.Labels), Annotations: orEmpty(a.Annotations), GeneratorURL: a.GeneratorURL,
		})
	}
	return g
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// LabelsFingerprint is a stable hash of a label set.
func LabelsFingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
