package notify

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

func TestConfigValidate(t *testing.T) {
	email := &EmailConfig{Smarthost: "smtp:25", From: "a@example.com", To: []string{"b@example.com"}}
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"nothing", Config{}, ""},
		{"bot", Config{Slack: &SlackConfig{TokenEnv: "T", Channel: "#ops", AlertingMessagesFile: "/x.json"}}, ""},
		{"webhook", Config{Slack: &SlackConfig{WebhookURLFile: "/hook"}}, ""},
		{"email", Config{Email: email, Events: []string{TicketFiled}}, ""},
		{"unknown event", Config{Events: []string{"ticket_burned"}}, `"ticket_burned" is not one of`},
		{"no slack secret", Config{Slack: &SlackConfig{Channel: "#ops"}}, "is required"},
		{"two token sources", Config{Slack: &SlackConfig{TokenFile: "/t", TokenEnv: "T", Channel: "#ops"}}, "not both"},
		{"bot without channel", Config{Slack: &SlackConfig{TokenEnv: "T"}}, "channel is required"},
		{"thread without bot", Config{Slack: &SlackConfig{WebhookURLEnv: "H", AlertingMessagesFile: "/x.json"}}, "needs a bot token"},
		{"bad smarthost", Config{Email: &EmailConfig{Smarthost: "smtp", From: "a@example.com", To: []string{"b@example.com"}}}, "smarthost"},
		{"bad tls policy", Config{Email: &EmailConfig{Smarthost: "smtp:25", From: "a@example.com", To: []string{"b@example.com"}, TLSPolicy: "maybe"}}, "tls policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestEnvSecretMustBeSet(t *testing.T) {
	t.Setenv("SLUICE_TEST_EMPTY", "")
	_, err := New(Config{Slack: &SlackConfig{TokenEnv: "SLUICE_TEST_EMPTY", Channel: "#ops"}}, Options{})
	require.ErrorContains(t, err, "SLUICE_TEST_EMPTY is unset or empty")
}

func TestEventsBecomeAlerts(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	inc := &store.Incident{ID: 7, Title: "BrokerDown", Severity: "critical", Status: store.StatusAcknowledged, Cluster: "prod",
		Brokers: []string{"2"}, DetectedAt: at}
	a, key := toAlert(Event{Kind: IncidentAcknowledged, Actor: "otto", Incident: inc, URL: "https://t/incidents/7", At: at})
	require.Equal(t, "sluice-tickets/incident/7", key)
	require.Equal(t, "Incident #7", a.Name())
	require.False(t, a.Resolved())
	require.Equal(t, `Incident #7 "BrokerDown" acknowledged by otto`, string(a.Annotations["summary"]))
	require.Equal(t, "2", string(a.Labels["broker"]))
	require.Equal(t, "https://t/incidents/7", a.GeneratorURL)

	inc.Status = store.StatusResolved
	a, _ = toAlert(Event{Kind: IncidentResolved, Incident: inc, At: at})
	require.True(t, a.Resolved(), "a resolved incident is a resolved alert")
	require.Contains(t, string(a.Annotations["summary"]), "all its alarms resolved")

	tk := &store.Ticket{ID: 3, Title: "Disk", Priority: "P1", Status: "closed", CreatedAt: at}
	a, key = toAlert(Event{Kind: TicketStatus, Actor: "nina", Detail: "closed", Ticket: tk, At: at})
	require.Equal(t, "sluice-tickets/ticket/3", key)
	require.Equal(t, "critical", string(a.Labels["severity"]))
	require.True(t, a.Resolved())
	require.Equal(t, `Ticket #3 "Disk" (P1) is now closed (nina)`, string(a.Annotations["summary"]))
}
