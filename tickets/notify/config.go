package notify

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicemq/sluice/alerting/notify/email"
	"github.com/sluicemq/sluice/internal/config"
	"github.com/sluicemq/sluice/tickets/store"
)

// Event kinds, the values of Config.Events.
// They are the kinds of the store's outbox messages.
const (
	IncidentOpened       = store.NoticeIncidentOpened
	IncidentReopened     = store.NoticeIncidentReopened
	IncidentAcknowledged = store.NoticeIncidentAcknowledged
	IncidentResolved     = store.NoticeIncidentResolved
	IncidentClosed       = store.NoticeIncidentClosed
	IncidentAssigned     = store.NoticeIncidentAssigned
	IncidentCommented    = store.NoticeIncidentCommented
	IncidentTicketLinked = store.NoticeIncidentTicketLinked
	TicketFiled          = store.NoticeTicketFiled
	TicketStatus         = store.NoticeTicketStatus
	TicketAssigned       = store.NoticeTicketAssigned
	TicketCommented      = store.NoticeTicketCommented
)

// EventKinds are all event kinds, the default of Config.Events.
var EventKinds = []string{IncidentOpened, IncidentReopened, IncidentAcknowledged, IncidentResolved, IncidentClosed,
	IncidentAssigned, IncidentCommented, IncidentTicketLinked, TicketFiled, TicketStatus, TicketAssigned, TicketCommented}

// Config is the `notifications` section of the ticket service's file. Without
// a Slack or an email part nothing is sent.
type Config struct {
	// Events are the kinds of change that notify; every kind by default.
	Events []string `yaml:"events"`
	// Slack posts to a channel with a bot token, or to an incoming webhook.
	Slack *SlackConfig `yaml:"slack"`
	// Email sends a message per change over SMTP.
	Email *EmailConfig `yaml:"email"`
}

// SlackConfig configures Slack through package alerting/notify/slack. The bot
// token or the webhook URL comes from a file or an environment variable,
// never from this file.
type SlackConfig struct {
	// TokenFile or TokenEnv holds a bot token (xoxb-...); with Channel it
	// posts one message per incident or ticket, updated on each change, and
	// answers in its thread.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// WebhookURLFile or WebhookURLEnv holds an incoming-webhook URL, used when
	// there is no token: each change is a new message.
	WebhookURLFile string `yaml:"webhook_url_file"`
	WebhookURLEnv  string `yaml:"webhook_url_env"`
	// Channel is the channel ID or name bot messages go to.
	Channel string `yaml:"channel"`
	// APIURL is the Web API base, https://slack.com/api/ by default.
	APIURL string `yaml:"api_url"`
	// AlertingMessagesFile is `sluice alerting`'s record of its Slack messages
	// (DATA_DIR/slack-messages.json). When an incident came from an alert
	// whose message is recorded there, its changes are posted in that
	// message's thread instead of as a message of their own. The alert's
	// message is found by the incident's Alertmanager receiver and group key,
	// so this works when the tickets webhook and the Slack config are in the
	// same receiver.
	AlertingMessagesFile string `yaml:"alerting_messages_file"`
	// AlertChannel is the channel of the alert messages as the alerting
	// receiver names it, Channel by default.
	AlertChannel string `yaml:"alert_channel"`
	// SigningSecretFile or SigningSecretEnv holds the Slack app's signing
	// secret. With it (and a bot token) the buttons of this service's own
	// messages work: Slack's interaction requests, signed with the secret,
	// go to POST /api/v1/integrations/slack/interactions (the app's
	// Interactivity Request URL). Without it that endpoint answers 404 and
	// the Acknowledge, Resolve and Silence buttons do nothing.
	SigningSecretFile string `yaml:"signing_secret_file"`
	SigningSecretEnv  string `yaml:"signing_secret_env"`
}

// EmailConfig configures email through package alerting/notify/email.
type EmailConfig struct {
	// Smarthost is host:port of the SMTP server.
	Smarthost string   `yaml:"smarthost"`
	From      string   `yaml:"from"`
	To        []string `yaml:"to"`
	Hello     string   `yaml:"hello"`
	// TLSPolicy is mandatory (default), opportunistic, none or implicit.
	TLSPolicy          string `yaml:"tls_policy"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// Username enables SMTP AUTH with the password from PasswordFile or
	// PasswordEnv.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
}

// Validate checks the section without reading secrets.
func (c *Config) Validate() error {
	for _, e := range c.Events {
		if !slices.Contains(EventKinds, e) {
			return fmt.Errorf("events: %q is not one of %s", e, strings.Join(EventKinds, ", "))
		}
	}
	if s := c.Slack; s != nil {
		if s.TokenFile != "" && s.TokenEnv != "" {
			return errors.New("slack: token_file or token_env, not both")
		}
		if s.WebhookURLFile != "" && s.WebhookURLEnv != "" {
			return errors.New("slack: webhook_url_file or webhook_url_env, not both")
		}
		bot := s.TokenFile != "" || s.TokenEnv != ""
		if !bot && s.WebhookURLFile == "" && s.WebhookURLEnv == "" {
			return errors.New("slack: token_file, token_env, webhook_url_file or webhook_url_env is required")
		}
		if bot && s.Channel == "" {
			return errors.New("slack: channel is required with a bot token")
		}
		if s.AlertingMessagesFile != "" && !bot {
			return errors.New("slack: alerting_messages_file needs a bot token (a webhook cannot answer in a thread)")
		}
		if s.SigningSecretFile != "" && s.SigningSecretEnv != "" {
			return errors.New("slack: signing_secret_file or signing_secret_env, not both")
		}
		if (s.SigningSecretFile != "" || s.SigningSecretEnv != "") && !bot {
			return errors.New("slack: signing_secret_file/env needs a bot token (webhook messages have no buttons)")
		}
	}
	if e := c.Email; e != nil {
		if e.Smarthost == "" || e.From == "" || len(e.To) == 0 {
			return errors.New("email: smarthost, from and to are required")
		}
		if e.PasswordFile != "" && e.PasswordEnv != "" {
			return errors.New("email: password_file or password_env, not both")
		}
		if _, err := email.New(e.emailConfig("")); err != nil {
			return err
		}
	}
	return nil
}

func (e *EmailConfig) emailConfig(password string) email.Config {
	return email.Config{Smarthost: e.Smarthost, From: e.From, To: e.To, Hello: e.Hello, TLSPolicy: e.TLSPolicy,
		InsecureSkipVerify: e.InsecureSkipVerify, Username: e.Username, Password: password, SendResolved: true}
}

// ResolvePaths makes the section's relative file paths relative to dir, the directory of the
// configuration file they were read from.
func (c *Config) ResolvePaths(dir string) {
	if s := c.Slack; s != nil {
		for _, p := range []*string{&s.TokenFile, &s.WebhookURLFile, &s.SigningSecretFile, &s.AlertingMessagesFile} {
			*p = config.Path(dir, *p)
		}
	}
	if e := c.Email; e != nil {
		e.PasswordFile = config.Path(dir, e.PasswordFile)
	}
}
