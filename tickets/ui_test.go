package tickets

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t    *testing.T
	ts   *testService
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, ts *testService) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, ts: ts, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.ts.base + path)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.ts.base+path, form)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) login(user, pw string) {
	b.t.Helper()
	code, _, _ := b.get("/login")
	require.Equal(b.t, 200, code)
	code, body, h := b.post("/login", url.Values{"csrf": {b.csrf}, "username": {user}, "password": {pw}, "next": {"/incidents"}})
	require.Equal(b.t, http.StatusSeeOther, code, body)
	require.Equal(b.t, "/incidents", h.Get("Location"))
	b.get("/incidents") // picks up the session's CSRF token
}

func TestUILoginSessionsAndCSRF(t *testing.T) {
	ts := startService(t)
	b := newBrowser(t, ts)
	code, _, h := b.get("/incidents?status=open")
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/login?next=%2Fincidents%3Fstatus%3Dopen", h.Get("Location"))
	code, _, _ = b.post("/tickets", url.Values{"title": {"x"}})
	require.Equal(t, http.StatusSeeOther, code, "no session: to the login page")

	// Login needs the login CSRF cookie and field.
	b.get("/login")
	code, _, _ = b.post("/login", url.Values{"csrf": {"forged"}, "username": {"admin"}, "password": {testAdminPassword}})
	require.Equal(t, http.StatusForbidden, code)
	b.get("/login")
	code, body, _ := b.post("/login", url.Values{"csrf": {b.csrf}, "username": {"admin"}, "password": {"wrong password"}})
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "Wrong user name or password")

	b.login("admin", testAdminPassword)
	u, _ := url.Parse(ts.base)
	var session *http.Cookie
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			session = c
		}
	}
	require.NotNil(t, session)
	resp, err := http.Get(ts.base + "/login") // the Set-Cookie attributes
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Set-Cookie"), "HttpOnly")
	require.Contains(t, resp.Header.Get("Set-Cookie"), "SameSite=Strict")

	// Forms without the session's CSRF token are refused and change nothing.
	code, _, _ = b.post("/tickets", url.Values{"title": {"no token"}, "priority": {"P2"}})
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = b.post("/tickets", url.Values{"csrf": {"wrong"}, "title": {"bad token"}, "priority": {"P2"}})
	require.Equal(t, http.StatusForbidden, code)
	ts.must(200, "GET", "/api/v1/tickets", ts.viewer, nil, nil)
	var list struct{ Tickets []store.Ticket }
	ts.must(200, "GET", "/api/v1/tickets", ts.viewer, nil, &list)
	require.Empty(t, list.Tickets)

	// With it, the ticket is filed; HTML in the title is escaped on the page.
	code, _, h = b.post("/tickets", url.Values{"csrf": {b.csrf}, "title": {`<img src=x onerror=alert(1)>`}, "priority": {"P2"}, "description": {"<script>x</script>"}})
	require.Equal(t, http.StatusSeeOther, code)
	code, body, _ = b.get(h.Get("Location"))
	require.Equal(t, 200, code)
	require.Contains(t, body, "&lt;img src=x onerror=alert(1)&gt;")
	require.NotContains(t, body, "<img src=x")
	require.NotContains(t, body, "<script>x</script>")

	// Validation errors re-render the form with messages.
	code, body, _ = b.post("/tickets", url.Values{"csrf": {b.csrf}, "title": {""}, "priority": {"P7"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "title: required")
	require.Contains(t, body, "priority: one of P1, P2, P3, P4")

	// Logging out ends the session.
	code, _, _ = b.post("/logout", url.Values{"csrf": {b.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = b.get("/incidents")
	require.Equal(t, http.StatusSeeOther, code)
}

func TestUIRolesAndPages(t *testing.T) {
	ts := startService(t)
	ctx := context.Background()
	require.NoError(t, ts.Store().CreateUser(ctx, "vera", "viewer password", store.RoleViewer))
	require.NoError(t, ts.Store().CreateUser(ctx, "otto", "operator password", store.RoleOperator))
	id := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, map[string]string{"broker": "2"}})).Opened[0]
	page := fmt.Sprintf("/incidents/%d", id)

	viewer := newBrowser(t, ts)
	viewer.login("vera", "viewer password")
	code, body, _ := viewer.get(page)
	require.Equal(t, 200, code)
	require.NotContains(t, body, `id="ack"`, "viewers get no action forms")
	code, _, _ = viewer.post(page+"/ack", url.Values{"csrf": {viewer.csrf}})
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, store.StatusTriggered, ts.incident(id).Status)

	op := newBrowser(t, ts)
	op.login("otto", "operator password")
	code, body, _ = op.get(page)
	require.Equal(t, 200, code)
	require.Contains(t, body, `id="ack"`)
	code, _, _ = op.post(page+"/ack", url.Values{"csrf": {op.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	d := ts.incident(id)
	require.Equal(t, store.StatusAcknowledged, d.Status)
	require.Equal(t, "otto", d.FirstAckBy)
	code, _, _ = op.post(page+"/comment", url.Values{"csrf": {op.csrf}, "body": {"<b>bold</b> claim"}})
	require.Equal(t, http.StatusSeeOther, code)
	_, body, _ = op.get(page)
	require.Contains(t, body, "&lt;b&gt;bold&lt;/b&gt; claim")

	for _, p := range []string{"/incidents", "/incidents?status=", "/incidents/rows?status=open", "/tickets", fmt.Sprintf("/tickets?incident=%d", id), "/cluster", "/sla", "/static/htmx-2.0.11.min.js", "/static/sluice.css"} {
		code, body, _ := op.get(p)
		require.Equal(t, 200, code, "%s: %s", p, body)
	}
	_, body, _ = op.get("/incidents?status=")
	require.Contains(t, body, "Incident")
	require.True(t, strings.Contains(body, "BrokerDown"))
	code, _, _ = op.get("/incidents/99999")
	require.Equal(t, 404, code)
	code, _, _ = op.get("/nowhere")
	require.Equal(t, 404, code)
}
