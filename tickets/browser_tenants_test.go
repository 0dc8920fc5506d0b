package tickets

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestBrowserTenantPages drives Debian's chromium through the tenant pages:
// an admin creates a plan and a tenant, opens alpha's page and its May
// statement with charts; then ann, a member of alpha, logs in, lands on
// alpha's page and is refused beta's.
func TestBrowserTenantPages(t *testing.T) {
	br := startChromium(t)
	f := startTenantFixture(t)
	want, _, err := f.tenantStatement(context.Background(), principal{Name: "test", Role: "admin"}, "alpha", "2026-05")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(br.ctx, 90*time.Second)
	defer cancel()
	shot := br.shot
	waitText := func(s string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](`document.body.textContent.includes(`+jsString(s)+`)`, chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
			return chromedp.Void{}, err
		}
	}
	login := func(user, pw string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(f.base + "/login"),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.Submit(chromedp.ID("password")),
		}
	}
	var total, peakIn, gammaPrefixes, memberHeading, refused string
	steps := login("admin", testAdminPassword)
	steps = append(steps,
		chromedp.WaitVisible(chromedp.CSS("#incident-rows")),
		chromedp.Navigate(f.base+"/tenants"),
		chromedp.WaitVisible(chromedp.ID("plan-name")),
		chromedp.SendKeys(chromedp.ID("plan-name"), "medium"),
		chromedp.SendKeys(chromedp.ID("plan-produce"), "10"),
		chromedp.SendKeys(chromedp.ID("plan-fetch"), "20"),
		chromedp.SendKeys(chromedp.ID("plan-disk"), "100"),
		chromedp.SendKeys(chromedp.ID("plan-partitions"), "50"),
		chromedp.SendKeys(chromedp.ID("plan-connections"), "200"),
		chromedp.Click(chromedp.ID("save-plan")),
		chromedp.WaitVisible(chromedp.ID("plan-medium")),
		chromedp.SendKeys(chromedp.ID("tenant-name"), "gamma"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("tenant-plan").value = "medium"`),
		chromedp.SendKeys(chromedp.ID("tenant-prefixes"), "gamma."),
		chromedp.SendKeys(chromedp.ID("tenant-principals"), "User:gamma-app"),
		chromedp.SendKeys(chromedp.ID("tenant-slack"), "#gamma-alerts"),
		shot("tickets-tenants.png"),
		chromedp.Click(chromedp.ID("save-tenant")),
		waitText("Tenant gamma"),
		textOf("#main", &gammaPrefixes),
		chromedp.Navigate(f.base+"/tenants/alpha"),
		chromedp.WaitVisible(chromedp.ID("this-month")),
		shot("tickets-tenant.png"),
		chromedp.Click(chromedp.ID("this-month")),
		chromedp.WaitVisible(chromedp.CSS("svg.chart polyline")),
		textOf("#total", &total),
		textOf("td.peak-in", &peakIn),
		shot("tickets-statement.png"),
		chromedp.Click(chromedp.CSS(`header form button`)), // log out
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	steps = append(steps, login("ann", "ann-password-1")...)
	steps = append(steps,
		chromedp.WaitVisible(chromedp.ID("this-month")),
		textOf("h1", &memberHeading),
		chromedp.Navigate(f.base+"/tenants/beta"),
		waitText("no tenant"),
		textOf("#main", &refused),
	)
	require.NoError(t, chromedp.Do(ctx, steps...))
	require.Contains(t, gammaPrefixes, "gamma.")
	require.Contains(t, gammaPrefixes, "#gamma-alerts")
	require.Equal(t, want.Total.String(), strings.TrimSpace(total))
	require.Equal(t, decimal(want.PeakInBps, 1_000_000, 3)+" MB/s", strings.TrimSpace(peakIn))
	require.Equal(t, "Tenant alpha", strings.TrimSpace(memberHeading))
	require.NotContains(t, refused, "beta.")
	t.Logf("screenshots in %s", br.shots)
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
