package alerting

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	amcommon "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"

	"github.com/sluicemq/sluice/alerting/notify/email"
	"github.com/sluicemq/sluice/alerting/notify/logging"
	"github.com/sluicemq/sluice/alerting/notify/slack"
	"github.com/sluicemq/sluice/internal/config"
)

// buildReceiver turns one alertmanager.yml receiver into integrations: slack_configs and
// email_configs get Sluice's notifiers (Block Kit with buttons and message updates; go-mail with
// HTML and text), every other kind (webhook_configs with the v4 payload, pagerduty_configs, ...)
// Alertmanager's own. A receiver with nothing configured logs. The root route's receiver
// (named root) also sends to the ticket service when cfg.Tickets is set.
func (m *Manager) buildReceiver(rcv amconfig.Receiver, tmpl *template.Template, cfg *Config, root string) ([]notify.Integration, error) {
	var out []notify.Integration
	for i, sc := range rcv.SlackConfigs {
		c := slack.Config{
			Channel: sc.Channel, DashboardURL: cfg.DashboardURL, SendResolved: sc.SendResolved(),
			Token: string(sc.AppToken),
		}
		if sc.AppTokenFile != "" {
			tok, err := config.Secret{FileKey: fmt.Sprintf("receiver %s: slack_configs[%d].app_token_file", rcv.Name, i), File: sc.AppTokenFile}.Read("")
			if err != nil {
				return nil, err
			}
			c.Token = tok
		}
		if sc.AppURL != nil && c.Token != "" {
			// Alertmanager's app_url is the chat.postMessage URL; slack-go wants the API base.
			c.APIURL = strings.TrimSuffix(sc.AppURL.String(), "chat.postMessage")
		}
		if c.Token == "" {
			switch {
			case sc.APIURL != nil:
				c.WebhookURL = sc.APIURL.String()
			case sc.APIURLFile != "":
				u, err := config.Secret{FileKey: fmt.Sprintf("receiver %s: slack_configs[%d].api_url_file", rcv.Name, i), File: sc.APIURLFile}.Read("")
				if err != nil {
					return nil, err
				}
				c.WebhookURL = u
			}
		}
		n, err := slack.New(c, m.slackStore, m.logger.With("integration", "slack"))
		if err != nil {
			return nil, err
		}
		out = append(out, notify.NewIntegration(n, n, "slack", i, rcv.Name))
	}
	for i, ec := range rcv.EmailConfigs {
		c := email.Config{
			Smarthost: ec.Smarthost.String(), From: ec.From, To: splitAddrs(ec.To), Hello: ec.Hello,
			Username: ec.AuthUsername, Password: string(ec.AuthPassword), DashboardURL: cfg.DashboardURL,
			SendResolved: ec.SendResolved(), TLSPolicy: email.TLSMandatory,
		}
		if ec.AuthPasswordFile != "" {
			p, err := config.Secret{FileKey: fmt.Sprintf("receiver %s: email_configs[%d].auth_password_file", rcv.Name, i), File: ec.AuthPasswordFile}.Read("")
			if err != nil {
				return nil, err
			}
			c.Password = p
		}
		if ec.RequireTLS != nil && !*ec.RequireTLS {
			c.TLSPolicy = email.TLSNone
		}
		if ec.ForceImplicitTLS != nil && *ec.ForceImplicitTLS {
			c.TLSPolicy = email.TLSImplicit
		}
		if ec.TLSConfig != nil {
			c.InsecureSkipVerify = ec.TLSConfig.InsecureSkipVerify
		}
		// Alertmanager's email_configs has no opportunistic mode; Sluice reads it from a header-free
		// convention: headers {X-Sluice-TLS-Policy: opportunistic} is not sent but selects it.
		if p, ok := ec.Headers["X-Sluice-TLS-Policy"]; ok {
			c.TLSPolicy = strings.ToLower(p)
		}
		n, err := email.New(c)
		if err != nil {
			return nil, err
		}
		out = append(out, notify.NewIntegration(n, n, "email", i, rcv.Name))
	}
	rest := rcv
	rest.SlackConfigs, rest.EmailConfigs = nil, nil
	others, err := receiver.BuildReceiverIntegrations(rest, tmpl, m.logger)
	if err != nil {
		return nil, err
	}
	out = append(out, others...)
	if len(out) == 0 {
		n := logging.Notifier{Logger: m.logger.With("receiver", rcv.Name)}
		out = append(out, notify.NewIntegration(n, n, "log", 0, rcv.Name))
	}
	if rcv.Name == root && cfg.Tickets.URL != "" {
		in, err := m.ticketsIntegration(cfg, tmpl, rcv.Name, len(out))
		if err != nil {
			return nil, fmt.Errorf("tickets: %w", err)
		}
		out = append(out, in)
	}
	return out, nil
}

// ticketsIntegration is Alertmanager's webhook notifier pointed at the ticket service, with its
// API token as a bearer credential.
func (m *Manager) ticketsIntegration(cfg *Config, tmpl *template.Template, receiver string, idx int) (notify.Integration, error) {
	auth := &commoncfg.Authorization{Type: "Bearer"}
	if cfg.Tickets.TokenFile != "" {
		// Read at every send, so a rotated token takes effect without a reload; checked here.
		auth.CredentialsFile = config.Path(cfg.dir, cfg.Tickets.TokenFile)
		if _, err := cfg.Tickets.token().Read(cfg.dir); err != nil {
			return notify.Integration{}, err
		}
	} else {
		tok, err := cfg.Tickets.token().Read(cfg.dir)
		if err != nil {
			return notify.Integration{}, err
		}
		auth.Credentials = commoncfg.Secret(tok)
	}
	wc := &webhook.WebhookConfig{
		NotifierConfig: amcommon.NotifierConfig{VSendResolved: true},
		HTTPConfig:     &commoncfg.HTTPClientConfig{Authorization: auth, FollowRedirects: true, EnableHTTP2: true},
		URL:            amcommon.SecretTemplateURL(cfg.Tickets.endpoint()),
		Timeout:        30 * time.Second,
	}
	n, err := webhook.New(wc, tmpl, m.logger.With("integration", "tickets"))
	if err != nil {
		return notify.Integration{}, err
	}
	return notify.NewIntegration(n, wc, "tickets", idx, receiver), nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

var _ = slog.Default
