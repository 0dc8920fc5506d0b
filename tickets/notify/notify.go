// Package notify tells Slack and email about changes of incidents and tickets,
// through the alerting receivers (packages alerting/notify/slack and
// alerting/notify/email): each change becomes an alert-shaped notification
// named after its incident or ticket, grouped by it, so Slack shows one message
// per incident or ticket, kept up to date, with each change in its thread. A
// change of an incident that came from an alert already posted to Slack by
// `sluice alerting` goes to that alert's thread instead.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amnotify "github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	goslack "github.com/slack-go/slack"

	"github.com/sluicemq/sluice/alerting/notify/email"
	"github.com/sluicemq/sluice/alerting/notify/slack"
	"github.com/sluicemq/sluice/internal/config"
	"github.com/sluicemq/sluice/tickets/store"
)

// Receiver is the receiver name notifications carry (shown in email footers
// and part of the Slack message identity).
const Receiver = "sluice-tickets"

// Event is one change of an incident or a ticket (exactly one of them is set),
// taken after its transaction committed.
type Event struct {
	Kind     string
	Actor    string
	Detail   string // the comment, the new assignee or status
	Incident *store.Incident
	Ticket   *store.Ticket
	// URL is the incident's or ticket's page.
	URL string
	At  time.Time
	// Tenant, for an incident of a tenant's alerts, is where the tenant
	// wants them: the event goes there as well as to operations.
	Tenant *TenantRoute
}

// TenantRoute is a tenant's own notification channel, set on the tenant:
// a Slack channel (posted with the bot token; an incoming webhook is bound
// to its one channel) and an email address (through the configured SMTP
// server).
type TenantRoute struct {
	Tenant       string
	SlackChannel string
	Email        string
}

// Options are what New needs besides the configuration.
type Options struct {
	// StorePath keeps the Slack messages of incidents and tickets across
	// restarts (a JSON file); empty keeps them in memory.
	StorePath  string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Notifier delivers events, one attempt per call of Deliver; the ticket
// service's outbox keeps them durable and retries them.
type Notifier struct {
	cfg      Config
	events   map[string]bool
	log      *slog.Logger
	slack    *slack.Notifier
	slackAPI *goslack.Client // thread replies (bot mode)
	store    *slack.Store    // our own messages
	channel  string
	signing  string // the Slack app's signing secret; "" without buttons
	email    *email.Notifier
	emailPW  string // for the tenants' own addresses

	tenantMu    sync.Mutex
	tenantEmail map[string]*email.Notifier // by address

	sent *prometheus.CounterVec
}

// New reads the secrets the configuration points to and builds the
// integrations. A Config without Slack and email gives a Notifier that drops
// everything.
func New(cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	n := &Notifier{cfg: cfg, events: map[string]bool{}, log: opts.Logger}
	kinds := cfg.Events
	if len(kinds) == 0 {
		kinds = EventKinds
	}
	for _, k := range kinds {
		n.events[k] = true
	}
	n.sent = promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{Name: "sluice_tickets_notifications_total",
		Help: "Delivery attempts of notifications of incident and ticket changes, by integration (slack, email) and result (ok, failed)."},
		[]string{"integration", "result"})
	if s := cfg.Slack; s != nil {
		token, err := config.Secret{FileKey: "slack: token_file", EnvKey: "slack: token_env", File: s.TokenFile, Env: s.TokenEnv}.Read("")
		if err != nil {
			return nil, err
		}
		hook, err := config.Secret{FileKey: "slack: webhook_url_file", EnvKey: "slack: webhook_url_env", File: s.WebhookURLFile, Env: s.WebhookURLEnv}.Read("")
		if err != nil {
			return nil, err
		}
		if n.store, err = slack.OpenStore(opts.StorePath); err != nil {
			return nil, fmt.Errorf("slack message store %s: %w", opts.StorePath, err)
		}
		signing := config.Secret{FileKey: "slack: signing_secret_file", EnvKey: "slack: signing_secret_env", File: s.SigningSecretFile, Env: s.SigningSecretEnv}
		if n.signing, err = signing.Read(""); err != nil {
			return nil, err
		}
		sc := slack.Config{Token: token, Channel: s.Channel, APIURL: s.APIURL, SendResolved: true, MaxAlerts: 1, OpenButton: true}
		if token == "" {
			sc.WebhookURL = hook
		}
		if n.slack, err = slack.New(sc, n.store, opts.Logger.With("integration", "slack")); err != nil {
			return nil, err
		}
		n.channel = s.Channel
		if token != "" {
			var o []goslack.Option
			if s.APIURL != "" {
				o = append(o, goslack.OptionAPIURL(strings.TrimSuffix(s.APIURL, "/")+"/"))
			}
			n.slackAPI = goslack.New(token, o...)
		}
	}
	if e := cfg.Email; e != nil {
		pw, err := config.Secret{FileKey: "email: password_file", EnvKey: "email: password_env", File: e.PasswordFile, Env: e.PasswordEnv}.Read("")
		if err != nil {
			return nil, err
		}
		if store.IsExamplePassword(pw) {
			return nil, errors.New("email password: the example password of deploy/secrets/smtp_password.example (change-me-...); set your own")
		}
		if n.email, err = email.New(e.emailConfig(pw)); err != nil {
			return nil, err
		}
		n.emailPW = pw
	}
	return n, nil
}

// Enabled reports whether anything is configured to receive notifications.
func (n *Notifier) Enabled() bool { return n != nil && (n.slack != nil || n.email != nil) }

// SlackInteractions returns the store of this service's Slack messages and
// the app's signing secret, for the interaction handler; ok is false when
// the buttons are not configured.
func (n *Notifier) SlackInteractions() (st *slack.Store, signingSecret string, ok bool) {
	if n == nil || n.slackAPI == nil || n.signing == "" {
		return nil, "", false
	}
	return n.store, n.signing, true
}

// Wants reports whether events of kind are configured to be sent.
func (n *Notifier) Wants(kind string) bool { return n.Enabled() && n.events[kind] }

// Integrations of a Notifier, as Deliver names them.
const (
	IntegrationSlack = "slack"
	IntegrationEmail = "email"
)

// Deliver makes one attempt to send ev to each configured integration not in
// done, and returns the integrations that have it now. When err is not nil,
// retry says whether it is worth trying again and delay is the longest wait a
// receiver asked for (Slack's Retry-After), zero if none.
func (n *Notifier) Deliver(ctx context.Context, ev Event, done []string) (nowDone []string, retry bool, delay time.Duration, err error) {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	nowDone = slices.Clone(done)
	var errs []error
	retry = true
	attempt := func(name string, send func(context.Context) amnotify.NotifyVerdict) {
		if slices.Contains(done, name) {
			return
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v := send(actx)
		cancel()
		n.count(name, v.Err())
		if v.Err() == nil {
			nowDone = append(nowDone, name)
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", name, v.Err()))
		if !v.ShouldRetry() {
			retry = false
		}
		delay = max(delay, v.Delay())
	}
	if n.slack != nil {
		attempt(IntegrationSlack, func(ctx context.Context) amnotify.NotifyVerdict { return n.sendSlack(ctx, ev) })
	}
	if n.email != nil {
		a, key := toAlert(ev)
		attempt(IntegrationEmail, func(ctx context.Context) amnotify.NotifyVerdict {
			return n.email.Notify(withGroup(ctx, key, a), a)
		})
	}
	if r := ev.Tenant; r != nil {
		// The tenant's integrations are named after their destination, so
		// a changed channel gets the next retry too.
		if r.SlackChannel != "" && n.slackAPI != nil {
			attempt(IntegrationSlack+":"+r.SlackChannel, func(ctx context.Context) amnotify.NotifyVerdict {
				text := fmt.Sprintf("[tenant %s] %s", r.Tenant, ev.headline())
				if ev.URL != "" {
					text += fmt.Sprintf("\n<%s|Open in Sluice OPS>", ev.URL)
				}
				_, _, err := n.slackAPI.PostMessageContext(ctx, r.SlackChannel, goslack.MsgOptionText(text, false))
				return slack.Verdict(err)
			})
		}
		if r.Email != "" && n.email != nil {
			a, key := toAlert(ev)
			attempt(IntegrationEmail+":"+r.Email, func(ctx context.Context) amnotify.NotifyVerdict {
				en, err := n.tenantEmailNotifier(r.Email)
				if err != nil {
					return amnotify.Unrecoverable(err, amnotify.ClientErrorReason)
				}
				return en.Notify(withGroup(ctx, key, a), a)
			})
		}
	}
	return nowDone, retry, delay, errors.Join(errs...)
}

// tenantEmailNotifier is the email notifier of the configured SMTP server
// to one tenant address.
func (n *Notifier) tenantEmailNotifier(addr string) (*email.Notifier, error) {
	n.tenantMu.Lock()
	defer n.tenantMu.Unlock()
	if en := n.tenantEmail[addr]; en != nil {
		return en, nil
	}
	cfg := *n.cfg.Email
	cfg.To = []string{addr}
	en, err := email.New(cfg.emailConfig(n.emailPW))
	if err != nil {
		return nil, err
	}
	if n.tenantEmail == nil {
		n.tenantEmail = map[string]*email.Notifier{}
	}
	n.tenantEmail[addr] = en
	return en, nil
}

func (n *Notifier) count(integration string, err error) {
	res := "ok"
	if err != nil {
		res = "failed"
	}
	n.sent.WithLabelValues(integration, res).Inc()
}

// sendSlack posts ev: in the thread of the alert's message when the incident
// came from an alert `sluice alerting` posted, else through the Slack notifier
// as this incident's or ticket's own message, with the change in its thread.
func (n *Notifier) sendSlack(ctx context.Context, ev Event) amnotify.NotifyVerdict {
	text := ev.headline()
	if ev.Detail != "" && (ev.Kind == IncidentCommented || ev.Kind == TicketCommented) {
		text += "\n>" + strings.ReplaceAll(trunc(ev.Detail, 2000), "\n", "\n>")
	}
	if ev.URL != "" {
		text += fmt.Sprintf("\n<%s|Open in Sluice OPS>", ev.URL)
	}
	if ch, ts, ok := n.alertThread(ev); ok {
		_, _, err := n.slackAPI.PostMessageContext(ctx, ch, goslack.MsgOptionText(text, false), goslack.MsgOptionTS(ts))
		return slack.Verdict(err)
	}
	a, key := toAlert(ev)
	var before slack.Record
	var known bool
	if n.slackAPI != nil {
		before, known = n.store.Get(slack.MessageID(Receiver, n.channel, key))
	}
	v := n.slack.Notify(withGroup(ctx, key, a), a)
	if v.Err() != nil || !known || before.TS == "" {
		return v
	}
	// The notifier updated the message in place and answered in its thread
	// only if the status flipped; every other change gets its line there.
	after, _ := n.store.Get(before.ID)
	if after.Status != before.Status {
		return v
	}
	_, _, err := n.slackAPI.PostMessageContext(ctx, before.Channel, goslack.MsgOptionText(text, false), goslack.MsgOptionTS(before.TS))
	return slack.Verdict(err)
}

// alertThread finds the Slack message `sluice alerting` posted for the
// incident's alert group, if it is recorded.
func (n *Notifier) alertThread(ev Event) (channel, ts string, ok bool) {
	sc := n.cfg.Slack
	if ev.Incident == nil || ev.Incident.GroupKey == "" || n.slackAPI == nil || sc.AlertingMessagesFile == "" {
		return "", "", false
	}
	st, err := slack.OpenStore(sc.AlertingMessagesFile)
	if err != nil {
		n.log.Warn("cannot read alerting's Slack messages", "file", sc.AlertingMessagesFile, "err", err)
		return "", "", false
	}
	ch := sc.AlertChannel
	if ch == "" {
		ch = sc.Channel
	}
	rec, found := st.Get(slack.MessageID(ev.Incident.Receiver, ch, ev.Incident.GroupKey))
	if !found || rec.TS == "" {
		return "", "", false
	}
	return rec.Channel, rec.TS, true
}

func withGroup(ctx context.Context, key string, a *alert.Alert) context.Context {
	ctx = amnotify.WithGroupKey(ctx, key)
	ctx = amnotify.WithReceiverName(ctx, Receiver)
	return amnotify.WithGroupLabels(ctx, model.LabelSet{"alertname": a.Labels["alertname"]})
}

// headline is the one-line description of a change.
func (ev Event) headline() string {
	who := ev.Actor
	if who == "" {
		who = "Sluice"
	}
	var subject string
	switch {
	case ev.Incident != nil:
		subject = fmt.Sprintf("Incident #%d %q", ev.Incident.ID, ev.Incident.Title)
	case ev.Ticket != nil:
		subject = fmt.Sprintf("Ticket #%d %q (%s)", ev.Ticket.ID, ev.Ticket.Title, ev.Ticket.Priority)
	}
	switch ev.Kind {
	case IncidentOpened:
		return subject + " opened"
	case IncidentReopened:
		return subject + " reopened: an alarm of its group fired again"
	case IncidentAcknowledged:
		return subject + " acknowledged by " + who
	case IncidentResolved:
		if ev.Actor == "" {
			return subject + " resolved: all its alarms resolved"
		}
		return subject + " resolved by " + who
	case IncidentClosed:
		return subject + " closed by " + who
	case IncidentAssigned, TicketAssigned:
		if ev.Detail == "" {
			return subject + " unassigned by " + who
		}
		return subject + " assigned to " + ev.Detail + " by " + who
	case IncidentCommented, TicketCommented:
		return subject + ": comment by " + who
	case IncidentTicketLinked:
		return subject + ": " + ev.Detail + " linked by " + who
	case TicketFiled:
		return subject + " filed by " + who
	case TicketStatus:
		return subject + " is now " + ev.Detail + " (" + who + ")"
	}
	return subject + ": " + ev.Kind
}

// toAlert turns an event into the alert the receivers render, and the group
// key of its incident or ticket. The alert is resolved once the incident or
// ticket is, so Slack shows it green and its buttons go away.
func toAlert(ev Event) (*alert.Alert, string) {
	m := model.Alert{Labels: model.LabelSet{}, Annotations: model.LabelSet{}, GeneratorURL: ev.URL}
	set := func(k, v string) {
		if v != "" {
			m.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	var key string
	resolved := false
	switch {
	case ev.Incident != nil:
		inc := ev.Incident
		key = fmt.Sprintf("sluice-tickets/incident/%d", inc.ID)
		set("alertname", fmt.Sprintf("Incident #%d", inc.ID))
		set("severity", inc.Severity)
		set("cluster", inc.Cluster)
		set("broker", strings.Join(inc.Brokers, ","))
		set("topic", strings.Join(inc.Topics, ","))
		set("consumergroup", strings.Join(inc.Groups, ","))
		set("status", inc.Status)
		set("assignee", inc.Assignee)
		m.StartsAt = inc.DetectedAt
		resolved = !inc.Open()
	case ev.Ticket != nil:
		t := ev.Ticket
		key = fmt.Sprintf("sluice-tickets/ticket/%d", t.ID)
		set("alertname", fmt.Sprintf("Ticket #%d", t.ID))
		sev := "warning"
		if t.Priority == "P1" {
			sev = "critical"
		}
		set("severity", sev)
		set("priority", t.Priority)
		set("cluster", t.Cluster)
		set("topic", t.Topic)
		set("consumergroup", t.GroupName)
		set("status", t.Status)
		set("assignee", t.Assignee)
		m.StartsAt = t.CreatedAt
		resolved = t.Status == "resolved" || t.Status == "closed"
	}
	m.Annotations["summary"] = model.LabelValue(ev.headline())
	if ev.Detail != "" && (ev.Kind == IncidentCommented || ev.Kind == TicketCommented) {
		m.Annotations["description"] = model.LabelValue(trunc(ev.Detail, 4000))
	} else if ev.Ticket != nil && ev.Ticket.Description != "" {
		m.Annotations["description"] = model.LabelValue(trunc(ev.Ticket.Description, 4000))
	}
	if m.StartsAt.IsZero() {
		m.StartsAt = ev.At
	}
	if resolved {
		m.EndsAt = ev.At
		if m.EndsAt.After(time.Now()) {
			m.EndsAt = time.Now()
		}
	}
	return alert.New(m, ev.At, false), key
}

func trunc(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
