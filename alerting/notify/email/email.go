// Package email notifies over SMTP with github.com/wneessen/go-mail: one multipart message per
// notification with a plain-text and an HTML part, TLS policy and authentication configurable.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
	"github.com/wneessen/go-mail"
)

// TLS policies.
const (
	// TLSMandatory requires STARTTLS (Alertmanager's require_tls: true, its default).
	TLSMandatory = "mandatory"
	// TLSOpportunistic uses STARTTLS when the server offers it.
	TLSOpportunistic = "opportunistic"
	// TLSNone never uses TLS.
	TLSNone = "none"
	// TLSImplicit connects with TLS from the start (SMTPS, port 465).
	TLSImplicit = "implicit"
)

// Config configures one email integration.
type Config struct {
	// Smarthost is host:port of the SMTP server.
	Smarthost string
	From      string
	To        []string
	Hello     string
	// TLSPolicy is mandatory, opportunistic, none or implicit; default mandatory.
	TLSPolicy string
	// InsecureSkipVerify skips the server certificate check (tests, self-signed relays).
	InsecureSkipVerify bool
	// Username and Password enable SMTP AUTH with the strongest mechanism the server offers
	// (go-mail's auto-discovery); PLAIN and LOGIN are used only over TLS.
	Username string
	Password string
	// DashboardURL is the Grafana base URL for the "dashboard" annotation.
	DashboardURL string
	SendResolved bool
	Timeout      time.Duration
}

// Notifier is one email integration.
type Notifier struct {
	cfg  Config
	host string
	port int
}

// New validates cfg and returns a Notifier; nothing connects until Notify.
func New(cfg Config) (*Notifier, error) {
	host, portS, err := net.SplitHostPort(cfg.Smarthost)
	if err != nil {
		return nil, fmt.Errorf("email: smarthost %q: %w", cfg.Smarthost, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("email: smarthost port %q: %w", portS, err)
	}
	if cfg.From == "" || len(cfg.To) == 0 {
		return nil, errors.New("email: from and to are required")
	}
	switch cfg.TLSPolicy {
	case "":
		cfg.TLSPolicy = TLSMandatory
	case TLSMandatory, TLSOpportunistic, TLSNone, TLSImplicit:
	default:
		return nil, fmt.Errorf("email: tls policy %q: want mandatory, opportunistic, none or implicit", cfg.TLSPolicy)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Notifier{cfg: cfg, host: host, port: port}, nil
}

// SendResolved implements notify.ResolvedSender.
func (n *Notifier) SendResolved() bool { return n.cfg.SendResolved }

// Notify implements notify.Notifier. Connection failures and 4xx replies are retried; a 5xx
// reply (bad recipient, refused sender, bad credentials) is not, nor is a server that offers no
// authentication mechanism usable for the configured credentials (PLAIN and LOGIN are only
// used over TLS).
func (n *Notifier) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	msg, err := n.Message(ctx, alerts)
	if err != nil {
		return notify.Unrecoverable(err, notify.DefaultReason)
	}
	opts := []mail.Option{mail.WithPort(n.port), mail.WithTimeout(n.cfg.Timeout),
		mail.WithTLSConfig(&tls.Config{ServerName: n.host, InsecureSkipVerify: n.cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12})} //nolint:gosec // opt-in
	switch n.cfg.TLSPolicy {
	case TLSMandatory:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	}
	if n.cfg.Hello != "" {
		opts = append(opts, mail.WithHELO(n.cfg.Hello))
	}
	if n.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(n.cfg.Username), mail.WithPassword(n.cfg.Password))
	}
	c, err := mail.NewClient(n.host, opts...)
	if err != nil {
		return notify.Unrecoverable(err, notify.DefaultReason)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return verdict(err)
	}
	return notify.Success()
}

// verdict says whether a failed delivery is worth retrying.
func verdict(err error) notify.NotifyVerdict {
	var se *mail.SendError
	if errors.As(err, &se) {
		if se.IsTemp() {
			return notify.Retry(0, err, notify.ServerErrorReason)
		}
		return notify.Unrecoverable(err, notify.ClientErrorReason)
	}
	var te *textproto.Error // a reply outside a send, e.g. to AUTH
	if errors.As(err, &te) {
		if te.Code >= 500 {
			return notify.Unrecoverable(err, notify.ClientErrorReason)
		}
		return notify.Retry(0, err, notify.ServerErrorReason)
	}
	if errors.Is(err, mail.ErrNoSupportedAuthDiscovered) {
		return notify.Unrecoverable(err, notify.ClientErrorReason)
	}
	return notify.Retry(0, err, notify.DefaultReason)
}

// Message renders the email of one notification.
func (n *Notifier) Message(ctx context.Context, alerts []*alert.Alert) (*mail.Msg, error) {
	data := n.data(ctx, alerts)
	var text, html strings.Builder
	if err := textTmpl.Execute(&text, data); err != nil {
		return nil, err
	}
	if err := htmlTmpl.Execute(&html, data); err != nil {
		return nil, err
	}
	m := mail.NewMsg()
	if err := m.From(n.cfg.From); err != nil {
		return nil, err
	}
	if err := m.To(n.cfg.To...); err != nil {
		return nil, err
	}
	m.Subject(data.Subject)
	m.SetMessageID()
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, text.String())
	m.AddAlternativeString(mail.TypeTextHTML, html.String())
	return m, nil
}

type alertData struct {
	Status      string
	Name        string
	Summary     string
	Description string
	Labels      []kv
	Value       string
	StartsAt    string
	EndsAt      string
	Runbook     string
	Dashboard   string
	Source      string
}

type kv struct{ K, V string }

type mailData struct {
	Subject  string
	Receiver string
	Firing   []alertData
	Resolved []alertData
}

func (n *Notifier) data(ctx context.Context, alerts []*alert.Alert) mailData {
	rcv, _ := notify.ReceiverName(ctx)
	d := mailData{Receiver: rcv}
	name := ""
	for _, a := range alerts {
		if name == "" {
			name = a.Name()
		}
		ad := alertData{
			Name: a.Name(), Summary: string(a.Annotations["summary"]), Description: string(a.Annotations["description"]),
			Value: string(a.Annotations["value"]), StartsAt: a.StartsAt.UTC().Format(time.RFC3339),
			Runbook: string(a.Annotations["runbook_url"]), Source: a.GeneratorURL,
		}
		if uid := a.Annotations["dashboard"]; uid != "" && n.cfg.DashboardURL != "" {
			ad.Dashboard = strings.TrimSuffix(n.cfg.DashboardURL, "/") + "/d/" + string(uid)
		}
		for _, ln := range sortedNames(a.Labels) {
			ad.Labels = append(ad.Labels, kv{string(ln), string(a.Labels[ln])})
		}
		if a.Resolved() {
			ad.Status, ad.EndsAt = "resolved", a.EndsAt.UTC().Format(time.RFC3339)
			d.Resolved = append(d.Resolved, ad)
		} else {
			ad.Status = "firing"
			d.Firing = append(d.Firing, ad)
		}
	}
	if len(d.Firing) > 0 {
		d.Subject = fmt.Sprintf("[FIRING:%d] %s", len(d.Firing), name)
		if s := d.Firing[0].Summary; s != "" {
			d.Subject += " - " + s
		}
	} else {
		d.Subject = fmt.Sprintf("[RESOLVED] %s", name)
	}
	return d
}

func sortedNames(ls model.LabelSet) []model.LabelName {
	out := make([]model.LabelName, 0, len(ls))
	for k := range ls {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

var textTmpl = texttemplate.Must(texttemplate.New("text").Parse(`{{ .Subject }}
{{ range .Firing }}
FIRING: {{ .Name }}
{{ if .Summary }}{{ .Summary }}
{{ end }}{{ if .Description }}{{ .Description }}
{{ end }}{{ if .Value }}Value: {{ .Value }}
{{ end }}Since: {{ .StartsAt }}
Labels:{{ range .Labels }} {{ .K }}={{ .V }}{{ end }}
{{ if .Runbook }}Runbook: {{ .Runbook }}
{{ end }}{{ if .Dashboard }}Dashboard: {{ .Dashboard }}
{{ end }}{{ end }}{{ range .Resolved }}
RESOLVED: {{ .Name }}
{{ if .Summary }}{{ .Summary }}
{{ end }}From {{ .StartsAt }} to {{ .EndsAt }}
Labels:{{ range .Labels }} {{ .K }}={{ .V }}{{ end }}
{{ end }}
-- 
Sent by sluice alerting to receiver {{ .Receiver }}.
`))

var htmlTmpl = template.Must(template.New("html").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ .Subject }}</title></head>
<body style="font-family: sans-serif">
<h2>{{ .Subject }}</h2>
{{ range .Firing }}<div style="border-left: 4px solid #d32f2f; padding-left: 8px; margin-bottom: 16px">
<h3 style="color: #d32f2f">FIRING: {{ .Name }}</h3>
{{ if .Summary }}<p><b>{{ .Summary }}</b></p>{{ end }}
{{ if .Description }}<p>{{ .Description }}</p>{{ end }}
<table>{{ if .Value }}<tr><td>Value</td><td>{{ .Value }}</td></tr>{{ end }}<tr><td>Since</td><td>{{ .StartsAt }}</td></tr>
{{ range .Labels }}<tr><td>{{ .K }}</td><td>{{ .V }}</td></tr>{{ end }}</table>
<p>{{ if .Runbook }}<a href="{{ .Runbook }}">Runbook</a> {{ end }}{{ if .Dashboard }}<a href="{{ .Dashboard }}">Dashboard</a> {{ end }}{{ if .Source }}<a href="{{ .Source }}">Source</a>{{ end }}</p>
</div>{{ end }}
{{ range .Resolved }}<div style="border-left: 4px solid #388e3c; padding-left: 8px; margin-bottom: 16px">
<h3 style="color: #388e3c">RESOLVED: {{ .Name }}</h3>
{{ if .Summary }}<p>{{ .Summary }}</p>{{ end }}
<p>From {{ .StartsAt }} to {{ .EndsAt }}</p>
<table>{{ range .Labels }}<tr><td>{{ .K }}</td><td>{{ .V }}</td></tr>{{ end }}</table>
</div>{{ end }}
<p style="color: #888">Sent by sluice alerting to receiver {{ .Receiver }}.</p>
</body></html>
`))
