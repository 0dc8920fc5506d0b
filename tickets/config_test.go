package tickets

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		file, err string
	}{
		{"valid.yaml", ""},
		{"unknown_field.yaml", "field reopen_windw not found"},
		{"bad_sla.yaml", `sla target "critical"`},
		{"no_storage.yaml", "data_dir: required"},
		{"bad_alerting_url.yaml", `alerting_url "127.0.0.1:9093": want http(s)://host:port`},
		{"bad_notify_event.yaml", `notifications: events: "ticket_deleted" is not one of`},
		{"notify_slack_no_channel.yaml", "notifications: slack: channel is required with a bot token"},
		{"notify_webhook_thread.yaml", "alerting_messages_file needs a bot token"},
		{"notify_email_incomplete.yaml", "notifications: email: smarthost, from and to are required"},
		{"bad_trusted_proxy.yaml", `trusted_proxies: "proxy.example.com" is neither an IP address nor a CIDR`},
		{"bad_token_ttl.yaml", "token_ttl: from 0"},
		{"signing_secret_webhook.yaml", "signing_secret_file/env needs a bot token"},
		{"metering_short_retention.yaml", "metering.retention: at least 9600h (400 days)"},
		{"billing_float_price.yaml", `"1e-2": want a decimal such as 12.50`},
		{"billing_bad_currency.yaml", `billing.currency: "euro"`},
		{"billing_unknown_price.yaml", "field storage_gb not found"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := LoadConfig(filepath.Join("testdata", "config", tc.file))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 30*time.Minute, cfg.ReopenWindow)
			require.Equal(t, "prod-eu1", cfg.DefaultCluster)
			require.Equal(t, time.Hour, cfg.SLATargets.For("critical").Resolve)
			require.Equal(t, 30*time.Minute, cfg.SLATargets.For("unknown").Ack, "default target added")
			require.Equal(t, 8*time.Second, cfg.Snapshot.Timeout)
			require.Equal(t, 2*time.Hour, cfg.Snapshot.EventWindow)
			require.Equal(t, "http://127.0.0.1:9093", cfg.AlertingURL)
			require.Equal(t, "#ops", cfg.Notifications.Slack.Channel)
			require.Equal(t, []string{"oncall@example.com"}, cfg.Notifications.Email.To)
			require.True(t, cfg.SecureCookies, "external_url is https")
			require.Equal(t, []string{"127.0.0.1", "10.0.0.0/8"}, cfg.TrustedProxies)
			require.Equal(t, 720*time.Hour, cfg.TokenTTL)
			require.Equal(t, 30*time.Second, cfg.ClusterCacheAge)
			require.Equal(t, "http://127.0.0.1:9090", cfg.Metering.PrometheusURL, "the snapshot's Prometheus by default")
			require.Equal(t, 400*24*time.Hour, cfg.Metering.Retention)
			require.Equal(t, Money(12_500_000), cfg.Billing.Prices.ProduceMBs)
			require.Equal(t, Money(4_100_000), cfg.Billing.Prices.FetchMBs)
			require.Equal(t, Money(23_000), cfg.Billing.Prices.DiskGB)
			require.Equal(t, 25, cfg.Billing.HeadroomPercent)
		})
	}
}

// TestDefaultConfigValidates: a configuration built in code from
// DefaultConfig (the local stack, the command line) passes Validate before
// New fills anything.
func TestDefaultConfigValidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	require.NoError(t, cfg.Validate())
}
