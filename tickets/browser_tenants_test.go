package tickets

import (
	"context"
	"os"
	"path/filepath"
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
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("no chromium: apt-get install -y chromium, or set SLUICE_CHROMIUM")
	}
	shots := screenshotDir(t)
	f := startTenantFixture(t)
	want, _, err := f.tenantStatement(context.Background(), principal{Name: "test", Role: "admin"}, "alpha", "2026-05")
	require.NoError(t, err)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	defer tcancel()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name), buf, 0o644)
		}
	}
	text := func(sel chromedp.CSS, dst *string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := chromedp.Text(sel)(ctx, tg)
			*dst = v
			return chromedp.Void{}, err
		}
	}
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
		text("#main", &gammaPrefixes),
		chromedp.Navigate(f.base+"/tenants/alpha"),
		chromedp.WaitVisible(chromedp.ID("this-month")),
		shot("tickets-tenant.png"),
		chromedp.Click(chromedp.ID("this-month")),
		chromedp.WaitVisible(chromedp.CSS("svg.chart polyline")),
		text("#total", &total),
		text("td.peak-in", &peakIn),
		shot("tickets-statement.png"),
		chromedp.Click(chromedp.CSS(`header form button`)), // log out
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	steps = append(steps, login("ann", "ann-password-1")...)
	steps = append(steps,
		chromedp.WaitVisible(chromedp.ID("this-month")),
		text("h1", &memberHeading),
		chromedp.Navigate(f.base+"/tenants/beta"),
		waitText("no tenant"),
		text("#main", &refused),
	)
	require.NoError(t, chromedp.Do(ctx, steps...))
	require.Contains(t, gammaPrefixes, "gamma.")
	require.Contains(t, gammaPrefixes, "#gamma-alerts")
	require.Equal(t, want.Total.String(), strings.TrimSpace(total))
	require.Equal(t, decimal(want.PeakInBps, 1_000_000, 3)+" MB/s", strings.TrimSpace(peakIn))
	require.Equal(t, "Tenant alpha", strings.TrimSpace(memberHeading))
	require.NotContains(t, refused, "beta.")
	t.Logf("screenshots in %s", shots)
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
