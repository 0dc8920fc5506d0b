// Package slack notifies Slack through github.com/slack-go/slack. With a bot token it posts one
// Block Kit message per alert group (severity, summary, affected cluster/broker/topic/group,
// value, runbook and dashboard links, buttons Acknowledge / Resolve / Silence 1 h), edits that
// same message with chat.update on every later change and posts the change to its thread. With
// an incoming-webhook URL it posts each notification as a new message.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
	"github.com/slack-go/slack"
)

// Config configures one Slack integration.
type Config struct {
	// Token is a bot token (xoxb-...); with Channel it selects bot mode.
	Token string
	// APIURL is the Web API base, default https://slack.com/api/ (Alertmanager's app_url).
	APIURL string
	// Channel is the channel ID or name bot messages go to.
	Channel string
	// WebhookURL selects incoming-webhook mode when Token is empty.
	WebhookURL string
	// DashboardURL is the Grafana base URL; an alert's "dashboard" annotation (a dashboard uid)
	// is linked as DashboardURL/d/<uid>.
	DashboardURL string
	// SendResolved says whether resolutions are notified (Alertmanager's send_resolved).
	SendResolved bool
	// MaxAlerts is how many alerts one message lists, default 10; the rest are counted, so a
	// storm never makes a message Slack refuses (Alertmanager #2769).
	MaxAlerts int
	// OpenButton adds an "Open" link button to the first alert's generator URL (the ticket
	// service links its incident page so).
	OpenButton bool
}

// Notifier is one Slack integration.
type Notifier struct {
	cfg    Config
	client *slack.Client
	store  *Store
	logger *slog.Logger
	id     string
}

// New returns a Notifier; store keeps the posted messages (bot mode) and may be shared with the
// interaction Handler.
func New(cfg Config, store *Store, logger *slog.Logger) (*Notifier, error) {
	if cfg.Token == "" && cfg.WebhookURL == "" {
		return nil, errors.New("slack: a bot token (app_token) or an incoming-webhook URL (api_url) is required")
	}
	if cfg.Token != "" && cfg.Channel == "" {
		return nil, errors.New("slack: channel is required with a bot token")
	}
	if cfg.MaxAlerts <= 0 {
		cfg.MaxAlerts = 10
	}
	n := &Notifier{cfg: cfg, store: store, logger: logger}
	if cfg.Token != "" {
		var opts []slack.Option
		if cfg.APIURL != "" {
			u := cfg.APIURL
			if !strings.HasSuffix(u, "/") {
				u += "/"
			}
			opts = append(opts, slack.OptionAPIURL(u))
		}
		n.client = slack.New(cfg.Token, opts...)
		n.id = store.register(cfg.Token+"|"+cfg.APIURL, n.client)
	}
	return n, nil
}

// SendResolved implements notify.ResolvedSender.
func (n *Notifier) SendResolved() bool { return n.cfg.SendResolved }

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	key, err := notify.ExtractGroupKey(ctx)
	if err != nil {
		return notify.Unrecoverable(err, notify.DefaultReason)
	}
	rcv, _ := notify.ReceiverName(ctx)
	groupLabels, _ := notify.GroupLabels(ctx)
	if n.client == nil {
		blocks, text := n.render(alerts, "", nil)
		err := slack.PostWebhookContext(ctx, n.cfg.WebhookURL, &slack.WebhookMessage{Text: text, Blocks: &slack.Blocks{BlockSet: blocks}})
		return verdict(err)
	}
	id := MessageID(rcv, n.cfg.Channel, string(key))
	rec, ok := n.store.get(id)
	if !ok {
		rec = Record{ID: id, Client: n.id, Channel: n.cfg.Channel, GroupKey: string(key), Receiver: rcv, GroupLabels: map[string]string{}}
		for k, v := range groupLabels {
			rec.GroupLabels[string(k)] = string(v)
		}
	}
	rec.Alerts = snapshot(alerts)
	blocks, text := n.render(alerts, id, &rec)
	if !ok || rec.TS == "" {
		ch, ts, err := n.client.PostMessageContext(ctx, n.cfg.Channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		if err != nil {
			return verdict(err)
		}
		rec.Channel, rec.TS, rec.Created = ch, ts, time.Now()
		rec.Status = status(alerts)
		n.storeRecord(rec)
		return notify.Success()
	}
	if _, _, _, err := n.client.UpdateMessageContext(ctx, rec.Channel, rec.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
		return verdict(err)
	}
	st := status(alerts)
	if st != rec.Status {
		reply := threadText(alerts)
		if _, _, err := n.client.PostMessageContext(ctx, rec.Channel, slack.MsgOptionText(reply, false), slack.MsgOptionTS(rec.TS)); err != nil {
			n.logger.Warn("slack thread reply failed", "err", notify.RedactURL(err))
		}
		rec.Status = st
	}
	n.storeRecord(rec)
	return notify.Success()
}

// storeRecord keeps the message's record. The message is posted either way, so a failed write
// does not fail the notification (a retry would post it twice), but it is reported: after a
// restart that message would no longer be edited nor answer its buttons.
func (n *Notifier) storeRecord(rec Record) {
	if err := n.store.put(rec); err != nil {
		n.logger.Error("slack message not recorded; after a restart it will not be edited nor answer its buttons", "channel", rec.Channel, "err", err)
	}
}

// Verdict classifies the error of a Slack Web API or webhook call made
// outside a Notifier (thread replies) as a Notifier does.
func Verdict(err error) notify.NotifyVerdict { return verdict(err) }

// verdict says whether a failed call is worth retrying: rate limits, 5xx and network errors are;
// Slack's own refusals (invalid_auth, channel_not_found, ...) are not. The URL of a failed
// request is redacted: an incoming-webhook URL is the webhook's credential, and the error goes
// to logs and to API callers.
func verdict(err error) notify.NotifyVerdict {
	if err == nil {
		return notify.Success()
	}
	err = notify.RedactURL(err)
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return notify.Retry(rl.RetryAfter, err, notify.DefaultReason)
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code >= 500 || sc.Code == 429 {
			return notify.Retry(0, err, notify.ServerErrorReason)
		}
		return notify.Unrecoverable(err, notify.ClientErrorReason)
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return notify.Unrecoverable(err, notify.ClientErrorReason)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return notify.Retry(0, err, notify.DefaultReason)
	}
	return notify.Retry(0, err, notify.DefaultReason)
}

func status(alerts []*alert.Alert) string {
	n := 0
	for _, a := range alerts {
		if !a.Resolved() {
			n++
		}
	}
	if n == 0 {
		return "resolved"
	}
	return fmt.Sprintf("firing:%d", n)
}

func threadText(alerts []*alert.Alert) string {
	var firing, resolved []string
	for _, a := range alerts {
		s := string(a.Annotations["summary"])
		if s == "" {
			s = a.Name()
		}
		if a.Resolved() {
			resolved = append(resolved, s)
		} else {
			firing = append(firing, s)
		}
	}
	var b strings.Builder
	if len(firing) == 0 {
		b.WriteString(":white_check_mark: *Resolved*")
	} else {
		fmt.Fprintf(&b, ":rotating_light: *Firing: %d*", len(firing))
	}
	for _, s := range resolved {
		b.WriteString("\n• resolved: " + s)
	}
	for _, s := range firing {
		b.WriteString("\n• firing: " + s)
	}
	return b.String()
}

// AlertSnapshot is what a record remembers of an alert, to re-render after an interaction.
type AlertSnapshot struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

func snapshot(alerts []*alert.Alert) []AlertSnapshot {
	out := make([]AlertSnapshot, 0, len(alerts))
	for _, a := range alerts {
		s := AlertSnapshot{Labels: map[string]string{}, Annotations: map[string]string{}, StartsAt: a.StartsAt, EndsAt: a.EndsAt}
		for k, v := range a.Labels {
			s.Labels[string(k)] = string(v)
		}
		for k, v := range a.Annotations {
			s.Annotations[string(k)] = string(v)
		}
		out = append(out, s)
	}
	return out
}

func restore(snaps []AlertSnapshot) []*alert.Alert {
	out := make([]*alert.Alert, 0, len(snaps))
	for _, s := range snaps {
		m := model.Alert{Labels: model.LabelSet{}, Annotations: model.LabelSet{}, StartsAt: s.StartsAt, EndsAt: s.EndsAt}
		for k, v := range s.Labels {
			m.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
		for k, v := range s.Annotations {
			m.Annotations[model.LabelName(k)] = model.LabelValue(v)
		}
		out = append(out, alert.New(m, time.Now(), false))
	}
	return out
}

// affected are the labels shown as "where" fields, in this order.
var affected = []struct{ label, title string }{
	{"cluster", "Cluster"}, {"broker", "Broker"}, {"instance", "Instance"}, {"topic", "Topic"},
	{"consumergroup", "Consumer group"}, {"dir", "Log dir"},
}

// render builds the Block Kit message and its plain-text fallback. id is empty in webhook mode
// (no buttons: nothing could answer them).
func (n *Notifier) render(alerts []*alert.Alert, id string, rec *Record) ([]slack.Block, string) {
	firing := 0
	for _, a := range alerts {
		if !a.Resolved() {
			firing++
		}
	}
	name := "alerts"
	if len(alerts) > 0 {
		name = alerts[0].Name()
	}
	sev := ""
	for _, a := range alerts {
		if s := string(a.Labels["severity"]); s != "" && (sev == "" || s == "critical") {
			sev = s
		}
	}
	var title string
	switch {
	case firing == 0:
		title = fmt.Sprintf("✅ [RESOLVED] %s", name)
	case sev == "critical":
		title = fmt.Sprintf("🔥 [FIRING:%d] %s", firing, name)
	default:
		title = fmt.Sprintf("⚠️ [FIRING:%d] %s", firing, name)
	}
	if firstAnnotation(alerts, "flapping") != "" {
		title = "🔁 [FLAPPING] " + name
	}
	blocks := []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, trunc(title, 150), true, false))}

	var fields []*slack.TextBlockObject
	field := func(k, v string) {
		if v != "" && len(fields) < 10 {
			fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("*%s*\n%s", k, trunc(v, 200)), false, false))
		}
	}
	field("Severity", sev)
	for _, f := range affected {
		field(f.title, joinValues(alerts, f.label))
	}
	field("Value", joinAnnotation(alerts, "value"))
	if len(fields) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	}
	var lines []string
	for i, a := range alerts {
		if i == n.cfg.MaxAlerts {
			lines = append(lines, fmt.Sprintf("_…and %d more_", len(alerts)-i))
			break
		}
		mark := "🔴"
		if a.Resolved() {
			mark = "🟢"
		}
		s := string(a.Annotations["summary"])
		if s == "" {
			s = a.Name() + " " + a.Labels.String()
		}
		if f := a.Annotations["flapping"]; f != "" {
			s += " — " + string(f)
		}
		lines = append(lines, mark+" "+s)
	}
	blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, trunc(strings.Join(lines, "\n"), 2900), false, false), nil, nil))

	var links []string
	if rb := firstAnnotation(alerts, "runbook_url"); rb != "" {
		links = append(links, fmt.Sprintf("<%s|Runbook>", rb))
	}
	if d := firstAnnotation(alerts, "dashboard"); d != "" && n.cfg.DashboardURL != "" {
		links = append(links, fmt.Sprintf("<%s/d/%s|Dashboard>", strings.TrimSuffix(n.cfg.DashboardURL, "/"), d))
	}
	if len(alerts) > 0 && alerts[0].GeneratorURL != "" {
		g := alerts[0].GeneratorURL
		links = append(links, fmt.Sprintf("<%s|Source>", g))
	}
	if rec != nil {
		if rec.AckedBy != "" {
			links = append(links, fmt.Sprintf("Acknowledged by <@%s>", rec.AckedBy))
		}
		if rec.ResolvedBy != "" {
			links = append(links, fmt.Sprintf("Marked resolved by <@%s>", rec.ResolvedBy))
		}
		if rec.SilencedBy != "" {
			links = append(links, fmt.Sprintf("Silenced 1h by <@%s> (silence %s)", rec.SilencedBy, rec.SilenceID))
		}
	}
	if len(links) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, strings.Join(links, " · "), false, false)))
	}
	if id != "" && firing > 0 {
		buttons := []slack.BlockElement{
			slack.NewButtonBlockElement(ActionAck, id, slack.NewTextBlockObject(slack.PlainTextType, "Acknowledge", false, false)),
			slack.NewButtonBlockElement(ActionResolve, id, slack.NewTextBlockObject(slack.PlainTextType, "Resolve", false, false)),
			slack.NewButtonBlockElement(ActionSilence, id, slack.NewTextBlockObject(slack.PlainTextType, "Silence 1h", false, false)),
		}
		if n.cfg.OpenButton && len(alerts) > 0 && alerts[0].GeneratorURL != "" {
			buttons = append(buttons, slack.NewButtonBlockElement(ActionOpen, id,
				slack.NewTextBlockObject(slack.PlainTextType, "Open", false, false)).WithURL(alerts[0].GeneratorURL))
		}
		blocks = append(blocks, slack.NewActionBlock("sluice_actions", buttons...))
	}
	text := title
	if s := firstAnnotation(alerts, "summary"); s != "" {
		text += ": " + s
	}
	return blocks, text
}

func joinValues(alerts []*alert.Alert, label string) string {
	seen := map[string]bool{}
	var vs []string
	for _, a := range alerts {
		if v := string(a.Labels[model.LabelName(label)]); v != "" && !seen[v] {
			seen[v] = true
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	return strings.Join(vs, ", ")
}

func joinAnnotation(alerts []*alert.Alert, name string) string {
	var vs []string
	for _, a := range alerts {
		if a.Resolved() {
			continue
		}
		if v := string(a.Annotations[model.LabelName(name)]); v != "" {
			vs = append(vs, v)
		}
	}
	return strings.Join(vs, ", ")
}

func firstAnnotation(alerts []*alert.Alert, name string) string {
	for _, a := range alerts {
		if v := a.Annotations[model.LabelName(name)]; v != "" {
			return string(v)
		}
	}
	return ""
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
