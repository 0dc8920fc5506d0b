package tickets

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

// TestSecurityHeadersOnEveryAnswer: CSP with frame-ancestors 'none' and no
// inline script, X-Frame-Options and Referrer-Policy on pages, API answers,
// static files and errors; and no page carries inline script.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	ts := startService(t)
	id := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, nil})).Opened[0]
	b := newBrowser(t, ts)
	b.login("admin", testAdminPassword)
	check := func(path string, h http.Header) {
		t.Helper()
		csp := h.Get("Content-Security-Policy")
		require.Contains(t, csp, "frame-ancestors 'none'", path)
		require.Contains(t, csp, "script-src 'self'", path)
		require.NotContains(t, csp, "unsafe-inline", path)
		require.NotContains(t, csp, "unsafe-eval", path)
		require.Equal(t, "DENY", h.Get("X-Frame-Options"), path)
		require.Equal(t, "same-origin", h.Get("Referrer-Policy"), path)
		require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), path)
	}
	script := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)
	handlerAttr := regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	for _, p := range []string{"/login", "/incidents", fmt.Sprintf("/incidents/%d", id), "/tickets", "/cluster", "/sla", "/silences",
		"/admin/users", "/admin/tokens", "/admin/audit", "/account/password", "/nowhere", "/static/sluice.css", "/static/sluice.js"} {
		code, body, h := b.get(p)
		require.Contains(t, []int{200, 404}, code, p)
		check(p, h)
		if strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			require.NotRegexp(t, handlerAttr, body, "%s has an inline event handler", p)
			require.NotContains(t, body, "javascript:", p)
			for _, m := range script.FindAllStringSubmatch(body, -1) {
				require.Contains(t, m[1], `src="/static/`, "%s: %s", p, m[0])
				require.Empty(t, strings.TrimSpace(m[2]), "%s has an inline script", p)
			}
		}
	}
	for _, p := range []string{"/api/v1/incidents", "/api/v1/nowhere", "/healthz"} {
		req, _ := http.NewRequest("GET", ts.base+p, nil)
		req.Header.Set("Authorization", "Bearer "+ts.viewer)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		check(p, resp.Header)
	}
}

// TestLoginRedirectStaysOnSite keeps the open-redirect attacks of the login
// page's next parameter.
func TestLoginRedirectStaysOnSite(t *testing.T) {
	ts := startService(t)
	for _, tc := range []struct{ next, want string }{
		{"/incidents/3?x=1#t", "/incidents/3?x=1#t"},
		{"/tickets", "/tickets"},
		{"/\t/evil.example/", "/incidents"},
		{"/\n/evil.example/", "/incidents"},
		{"/\r/evil.example/", "/incidents"},
		{"//evil.example/", "/incidents"},
		{"/\\evil.example/", "/incidents"},
		{"\\\\evil.example", "/incidents"},
		{"https://evil.example/", "/incidents"},
		{"javascript:alert(1)", "/incidents"},
		{"evil.example", "/incidents"},
		{"/ /evil.example", "/incidents"},
		{"/\x00/evil.example", "/incidents"},
		{"/\u2028/evil.example", "/incidents"},
		{"", "/incidents"},
	} {
		t.Run(fmt.Sprintf("%q", tc.next), func(t *testing.T) {
			require.Equal(t, tc.want, safeNext(tc.next))
			b := newBrowser(t, ts)
			b.get("/login")
			code, body, h := b.post("/login", url.Values{"csrf": {b.csrf}, "username": {"admin"}, "password": {testAdminPassword}, "next": {tc.next}})
			require.Equal(t, http.StatusSeeOther, code, body)
			require.Equal(t, tc.want, h.Get("Location"))
		})
	}
}

func TestLoginThrottle(t *testing.T) {
	ts := startService(t)
	try := func(b *browser, user, pw string, hdr map[string]string) (int, http.Header) {
		t.Helper()
		b.get("/login")
		form := url.Values{"csrf": {b.csrf}, "username": {user}, "password": {pw}}
		req, _ := http.NewRequest("POST", ts.base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := b.c.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	b := newBrowser(t, ts)
	for i := range loginFreeFailures {
		code, _ := try(b, "admin", fmt.Sprintf("wrong password %d", i), nil)
		require.Equal(t, http.StatusUnauthorized, code)
	}
	// Now even the right password waits: the guesser learns nothing.
	code, h := try(b, "admin", testAdminPassword, nil)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "1", h.Get("Retry-After"))
	// Forging X-Forwarded-For changes nothing: no proxy is trusted.
	code, _ = try(b, "someone-else", "whatever pw", map[string]string{"X-Forwarded-For": "203.0.113.9"})
	require.Equal(t, http.StatusTooManyRequests, code, "the address is throttled too, whatever the header says")
	// After the delay one more try is allowed; a failure doubles the delay.
	ts.clock.Advance(time.Second)
	code, _ = try(b, "admin", "still wrong pw", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	ts.clock.Advance(time.Second)
	code, h = try(b, "admin", testAdminPassword, nil)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "1", h.Get("Retry-After"), "2 s after the 6th failure, 1 s to go")
	ts.clock.Advance(time.Second)
	code, _ = try(b, "admin", testAdminPassword, nil)
	require.Equal(t, http.StatusSeeOther, code, "the right password works once the delay has passed")
	require.Equal(t, 2*time.Second, throttleDelay(loginFreeFailures+1))
	require.Equal(t, loginMaxDelay, throttleDelay(1000), "capped")
}

func TestTrustedProxies(t *testing.T) {
	ts := startService(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	b := newBrowser(t, ts)
	post := func(user, xff string) int {
		b.get("/login")
		form := url.Values{"csrf": {b.csrf}, "username": {user}, "password": {"wrong password"}}
		req, _ := http.NewRequest("POST", ts.base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := b.c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range loginFreeFailures {
		require.Equal(t, http.StatusUnauthorized, post(fmt.Sprintf("user%d", i), "198.51.100.7"))
	}
	require.Equal(t, http.StatusTooManyRequests, post("user9", "198.51.100.7"), "the client behind the proxy is throttled")
	require.Equal(t, http.StatusUnauthorized, post("user9", "198.51.100.8"), "another client behind the same proxy is not")

	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.TrustedProxies = []string{"not-an-ip"}
	require.ErrorContains(t, cfg.Validate(), "trusted_proxies")
}

// TestExamplePasswordsRefused: the change-me-* passwords shipped in
// deploy/secrets/*.example stop the service at start, naming the setting.
func TestExamplePasswordsRefused(t *testing.T) {
	examples, err := filepath.Glob("../deploy/secrets/*.example")
	require.NoError(t, err)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("../deploy/secrets", name))
		require.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	require.NotEmpty(t, examples)

	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = read("sluice_admin_password.example")
	err = cfg.Validate()
	require.ErrorContains(t, err, "example password")
	require.ErrorContains(t, err, "SLUICE_ADMIN_PASSWORD")
	_, err = New(context.Background(), cfg, testLogger(), Options{})
	require.Error(t, err)
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, "tickets.db"))
	require.True(t, os.IsNotExist(statErr), "nothing was created")

	cfg = DefaultConfig()
	cfg.Database = "postgres://sluice:" + read("postgres_password.example") + "@db/sluice"
	err = cfg.Validate()
	require.ErrorContains(t, err, "database")
	require.NotContains(t, err.Error(), read("postgres_password.example"), "the error does not echo the password")

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "smtp")
	require.NoError(t, os.WriteFile(pwFile, []byte(read("smtp_password.example")+"\n"), 0o600))
	_, err = notify.New(notify.Config{Email: &notify.EmailConfig{Smarthost: "smtp:25", From: "a@example.com", To: []string{"b@example.com"},
		Username: "u", PasswordFile: pwFile}}, notify.Options{})
	require.ErrorContains(t, err, "email password")

	cfg = DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	kafkaPw := filepath.Join(dir, "kafka")
	require.NoError(t, os.WriteFile(kafkaPw, []byte(read("sluice_kafka_tickets_password.example")+"\n"), 0o600))
	cfg.Snapshot.KafkaSecurity.SASLPasswordFile = kafkaPw
	_, err = New(context.Background(), cfg, testLogger(), Options{})
	require.ErrorContains(t, err, "kafka_security: the SASL password is the example")

	// New users and password changes refuse them as well.
	require.Error(t, store.CheckPassword(read("sluice_admin_password.example")))
	require.Error(t, store.CheckPassword(read("grafana_admin_password.example")))
}

func TestSecureCookiesBehindHTTPS(t *testing.T) {
	ts := startService(t, func(c *Config) { c.ExternalURL = "https://tickets.example.com" })
	resp, err := http.Get(ts.base + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Set-Cookie"), "; Secure")

	plain := startService(t)
	resp, err = http.Get(plain.base + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.NotContains(t, resp.Header.Get("Set-Cookie"), "Secure", "plain http on loopback: a Secure cookie would never come back")
}

// TestIgnoredAdminPasswordIsSaid: SLUICE_ADMIN_PASSWORD (or the file) only
// sets the first admin's password; once users exist, a start says it is
// ignored instead of silently keeping the old one.
func TestIgnoredAdminPasswordIsSaid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Database = testDatabase(t)
	cfg.AdminPassword = testAdminPassword
	var logs strings.Builder
	svc, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), Options{})
	require.NoError(t, err)
	require.NoError(t, svc.Close())
	require.NotContains(t, logs.String(), "ignored")

	cfg.AdminPassword = "a different password"
	svc, err = New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), Options{})
	require.NoError(t, err)
	require.NoError(t, svc.Close())
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "SLUICE_ADMIN_PASSWORD) is ignored: users exist already")
	require.NotContains(t, logs.String(), "a different password", "the password itself is not logged")
}
