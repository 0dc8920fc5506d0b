package tickets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/alerting"
	"github.com/sluicemq/sluice/tickets/silences"
)

// TestSilencesClientCarriesAlertingToken: against an alerting API that takes bearer tokens,
// the Silences page's client sends the token of alerting_http_config (credentials_file) and
// application/json on every write, DELETE included; without the token alerting refuses it.
func TestSilencesClientCarriesAlertingToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "alerting-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tickets-to-alerting-token-0123456789\n"), 0o600))
	am := startAlerting(t, func(c *alerting.Config) { c.API.TokenFile = tokenFile })
	ts := startService(t, func(c *Config) {
		c.AlertingURL = am
		c.AlertingHTTPConfig = commoncfg.HTTPClientConfig{Authorization: &commoncfg.Authorization{Type: "Bearer", CredentialsFile: tokenFile}}
	})
	ctx := context.Background()
	now := time.Now()
	id, err := ts.silences.Create(ctx, silences.Silence{Matchers: []silences.Matcher{{Name: "alertname", Value: "BrokerDown"}},
		StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: "otto", Comment: "maintenance"})
	require.NoError(t, err)
	require.NoError(t, ts.silences.Expire(ctx, id))
	list, err := ts.silences.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)

	anonymous, err := silences.New(am, nil)
	require.NoError(t, err)
	_, err = anonymous.List(ctx)
	var apiErr *silences.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, 401, apiErr.Code)
}
