package tickets

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/alerting"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/store"
)

// startAlerting runs Sluice's alerting in-process on port 0, without rules,
// and returns its API's URL.
func startAlerting(t *testing.T, mutate ...func(*alerting.Config)) string {
	t.Helper()
	cfg := alerting.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	off := false
	cfg.DefaultRules = &off
	for _, f := range mutate {
		f(&cfg)
	}
	m, err := alerting.New(cfg, testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	testutil.Start(t, "alerting", m.Run)
	base := "http://" + m.Addr()
	testutil.WaitFor(t, 5*time.Second, "Alertmanager to be ready", func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

func TestUISilencesAgainstAlerting(t *testing.T) {
	am := startAlerting(t)
	ts := startService(t, func(c *Config) { c.AlertingURL = am })
	ctx := context.Background()
	require.NoError(t, ts.Store().CreateUser(ctx, "vera", "viewer password", store.RoleViewer))
	require.NoError(t, ts.Store().CreateUser(ctx, "otto", "operator password", store.RoleOperator))
	client, err := silences.New(am, nil)
	require.NoError(t, err)
	id := ts.notify(amPayload("BrokerDown", "firing", 0,
		amAlert{"BrokerDown", "fp1", "firing", t0, map[string]string{"broker": "2"}},
		amAlert{"BrokerDown", "fp2", "firing", t0, map[string]string{"broker": "3"}})).Opened[0]

	op := newBrowser(t, ts)
	op.login("otto", "operator password")
	code, body, _ := op.get("/silences")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "No silences.")
	require.Contains(t, body, `id="create-silence"`)

	// From an incident, the form holds the labels its alarms share.
	code, body, _ = op.get(fmt.Sprintf("/silences?incident=%d", id))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `alertname=&#34;BrokerDown&#34;`)
	require.Contains(t, body, `cluster=&#34;local&#34;`)
	require.NotContains(t, body, `broker=&#34;2&#34;`, "labels that differ between alarms are left out")

	// Bad input: 400 with messages, nothing created.
	for _, tc := range []struct {
		name, matchers, duration, want string
	}{
		{"no matchers", "", "2h", "matchers: at least one matcher is required"},
		{"bad operator", "alertname", "2h", "matchers: matcher"},
		{"bad label name", `1x="a"`, "2h", "is not a label name"},
		{"bad duration", `alertname="BrokerDown"`, "forever", "duration: a duration"},
		{"too long", `alertname="BrokerDown"`, "1000h", "duration: a duration"},
		{"bad regex refused by alerting", `topic=~"("`, "1h", "alerting refused the silence"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := op.post("/silences", url.Values{"csrf": {op.csrf}, "matchers": {tc.matchers}, "duration": {tc.duration}, "comment": {"maintenance"}})
			require.Equal(t, http.StatusBadRequest, code, body)
			require.Contains(t, body, tc.want)
		})
	}
	code, _, _ = op.post("/silences", url.Values{"matchers": {`alertname="BrokerDown"`}, "duration": {"2h"}, "comment": {"x"}})
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	list, err := client.List(ctx)
	require.NoError(t, err)
	require.Empty(t, list)

	// An operator creates one; alerting has it, with the user as its author.
	code, _, h := op.post("/silences", url.Values{"csrf": {op.csrf}, "matchers": {"alertname=\"BrokerDown\"\ncluster=\"local\", topic=~\"orders.*\""},
		"duration": {"2h"}, "comment": {"<b>disk swap</b> on broker 2"}})
	require.Equal(t, http.StatusSeeOther, code)
	list, err = client.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	sil := list[0]
	require.Equal(t, "/silences#silence-"+sil.ID, h.Get("Location"))
	require.Equal(t, "active", sil.State)
	require.Equal(t, "otto", sil.CreatedBy)
	require.Equal(t, `alertname="BrokerDown", cluster="local", topic=~"orders.*"`, silences.FormatMatchers(sil.Matchers))
	require.WithinDuration(t, time.Now().Add(2*time.Hour), sil.EndsAt, time.Minute)

	// A viewer sees it, escaped, and can change nothing.
	viewer := newBrowser(t, ts)
	viewer.login("vera", "viewer password")
	code, body, _ = viewer.get("/silences")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="silence-`+sil.ID+`"`)
	require.Contains(t, body, "&lt;b&gt;disk swap&lt;/b&gt;")
	require.NotContains(t, body, `id="create-silence"`)
	require.NotContains(t, body, "/expire")
	code, _, _ = viewer.post("/silences/"+sil.ID+"/expire", url.Values{"csrf": {viewer.csrf}})
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = viewer.post("/silences", url.Values{"csrf": {viewer.csrf}, "matchers": {`a="b"`}, "duration": {"1h"}, "comment": {"x"}})
	require.Equal(t, http.StatusForbidden, code)

	// The operator expires it.
	code, _, _ = op.post("/silences/"+sil.ID+"/expire", url.Values{})
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	code, _, _ = op.post("/silences/"+sil.ID+"/expire", url.Values{"csrf": {op.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	list, err = client.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "expired", list[0].State)
	code, _, _ = op.post("/silences/no-such-silence/expire", url.Values{"csrf": {op.csrf}})
	require.Equal(t, http.StatusNotFound, code)
	_, body, _ = op.get("/silences")
	require.True(t, strings.Contains(body, ">expired<"))
}

func TestUISilencesUnconfiguredAndUnreachable(t *testing.T) {
	ts := startService(t)
	b := newBrowser(t, ts)
	b.login("admin", testAdminPassword)
	code, body, _ := b.get("/silences")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "alerting_url")
	code, _, _ = b.post("/silences", url.Values{"csrf": {b.csrf}, "matchers": {`a="b"`}, "duration": {"1h"}, "comment": {"x"}})
	require.Equal(t, http.StatusServiceUnavailable, code)

	// A closed port: the page says so with 502.
	down := startService(t, func(c *Config) { c.AlertingURL = "http://127.0.0.1:1" })
	b = newBrowser(t, down)
	b.login("admin", testAdminPassword)
	code, body, _ = b.get("/silences")
	require.Equal(t, http.StatusBadGateway, code)
	require.Contains(t, body, "Alerting did not answer")
}
