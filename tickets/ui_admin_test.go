package tickets

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

var newTokenField = regexp.MustCompile(`id="new-token" readonly value="(slt_[A-Za-z0-9_-]+)"`)

func TestUIAdminPagesNeedAdmin(t *testing.T) {
	ts := startService(t)
	ctx := context.Background()
	require.NoError(t, ts.Store().CreateUser(ctx, "vera", "viewer password", store.RoleViewer))
	require.NoError(t, ts.Store().CreateUser(ctx, "otto", "operator password", store.RoleOperator))
	before, err := ts.Store().ListTokens(ctx)
	require.NoError(t, err)

	for _, u := range []struct{ name, pw string }{{"vera", "viewer password"}, {"otto", "operator password"}} {
		t.Run(u.name, func(t *testing.T) {
			b := newBrowser(t, ts)
			b.login(u.name, u.pw)
			_, body, _ := b.get("/incidents")
			require.NotContains(t, body, `href="/admin/tokens"`, "no admin links for %s", u.name)
			for _, p := range []string{"/admin/tokens", "/admin/users"} {
				code, _, _ := b.get(p)
				require.Equal(t, http.StatusForbidden, code, p)
			}
			for p, form := range map[string]url.Values{
				"/admin/tokens":          {"name": {"sneaky"}, "role": {"admin"}},
				"/admin/tokens/1/revoke": {},
				"/admin/users":           {"username": {"mallory"}, "password": {"mallory password"}, "role": {"admin"}},
				"/admin/users/1/role":    {"role": {"viewer"}},
				"/admin/users/1/disable": {},
			} {
				form.Set("csrf", b.csrf)
				code, _, _ := b.post(p, form)
				require.Equal(t, http.StatusForbidden, code, p)
			}
		})
	}
	after, err := ts.Store().ListTokens(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing changed")
	_, err = ts.Store().Authenticate(ctx, "mallory", "mallory password")
	require.ErrorIs(t, err, store.ErrNotFound)
	admin, err := ts.Store().Authenticate(ctx, "admin", testAdminPassword)
	require.NoError(t, err)
	require.Equal(t, store.RoleAdmin, admin.Role)
}

func TestUIAdminTokens(t *testing.T) {
	ts := startService(t)
	b := newBrowser(t, ts)
	b.login("admin", testAdminPassword)
	_, body, _ := b.get("/incidents")
	require.Contains(t, body, `href="/admin/tokens"`)

	code, body, _ := b.get("/admin/tokens")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, `id="new-token"`)

	// Without the CSRF token nothing is created.
	code, _, _ = b.post("/admin/tokens", url.Values{"name": {"forged"}, "role": {"admin"}})
	require.Equal(t, http.StatusForbidden, code)
	// Bad input is shown on the form.
	code, body, _ = b.post("/admin/tokens", url.Values{"csrf": {b.csrf}, "name": {"<script>"}, "role": {"root"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "role: one of viewer, operator, admin")
	require.Contains(t, body, "&lt;script&gt;")
	tokens, err := ts.Store().ListTokens(context.Background())
	require.NoError(t, err)
	require.Len(t, tokens, 3, "only the test's own tokens")

	// The new token is on the response to the form, once.
	resp, err := b.c.PostForm(ts.base+"/admin/tokens", url.Values{"csrf": {b.csrf}, "name": {"alertmanager"}, "role": {"operator"}})
	require.NoError(t, err)
	raw := readAll(t, resp)
	require.Equal(t, http.StatusCreated, resp.StatusCode, raw)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	m := newTokenField.FindStringSubmatch(raw)
	require.NotNil(t, m, raw)
	tok := m[1]
	ts.must(http.StatusOK, "GET", "/api/v1/incidents", tok, nil, nil)
	ts.must(http.StatusForbidden, "GET", "/api/v1/tokens", tok, nil, nil)
	_, body, _ = b.get("/admin/tokens")
	require.NotContains(t, body, tok, "shown only once")
	require.Contains(t, body, "alertmanager")
	var list struct{ Tokens []store.APIToken }
	ts.must(http.StatusOK, "GET", "/api/v1/tokens", ts.admin, nil, &list)
	var id uint
	for _, x := range list.Tokens {
		if x.Name == "alertmanager" {
			id = x.ID
			require.Equal(t, "admin", x.CreatedBy)
			require.Equal(t, store.RoleOperator, x.Role)
		}
	}
	require.NotZero(t, id)

	// Revoking needs CSRF too; then the token no longer works.
	code, _, _ = b.post(fmt.Sprintf("/admin/tokens/%d/revoke", id), url.Values{})
	require.Equal(t, http.StatusForbidden, code)
	ts.must(http.StatusOK, "GET", "/api/v1/incidents", tok, nil, nil)
	code, _, h := b.post(fmt.Sprintf("/admin/tokens/%d/revoke", id), url.Values{"csrf": {b.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/admin/tokens", h.Get("Location"))
	ts.must(http.StatusUnauthorized, "GET", "/api/v1/incidents", tok, nil, nil)
	code, _, _ = b.post(fmt.Sprintf("/admin/tokens/%d/revoke", id), url.Values{"csrf": {b.csrf}})
	require.Equal(t, http.StatusNotFound, code)
}

func TestUIAdminUsers(t *testing.T) {
	ts := startService(t)
	ctx := context.Background()
	admin := newBrowser(t, ts)
	admin.login("admin", testAdminPassword)

	code, _, _ := admin.post("/admin/users", url.Values{"username": {"nina"}, "password": {"nina password"}, "role": {"operator"}})
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	code, body, _ := admin.post("/admin/users", url.Values{"csrf": {admin.csrf}, "username": {"nina"}, "password": {"short"}, "role": {"boss"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "password: at least 10 characters")
	require.Contains(t, body, "role: one of viewer, operator, admin")
	require.NotContains(t, body, `value="short"`, "passwords are not echoed")
	code, _, _ = admin.post("/admin/users", url.Values{"csrf": {admin.csrf}, "username": {"nina"}, "password": {"nina password"}, "role": {"viewer"}})
	require.Equal(t, http.StatusSeeOther, code)
	code, body, _ = admin.post("/admin/users", url.Values{"csrf": {admin.csrf}, "username": {"nina"}, "password": {"other password"}, "role": {"viewer"}})
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, body, "username: taken")

	us, err := ts.Store().ListUsers(ctx)
	require.NoError(t, err)
	var nina, root store.User
	for _, u := range us {
		switch u.Username {
		case "nina":
			nina = u
		case "admin":
			root = u
		}
	}
	require.Equal(t, store.RoleViewer, nina.Role)

	// Nina logs in as a viewer; promoted to operator she may act at once.
	b := newBrowser(t, ts)
	b.login("nina", "nina password")
	code, _, _ = b.post("/tickets", url.Values{"csrf": {b.csrf}, "title": {"t"}, "priority": {"P3"}})
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = admin.post(fmt.Sprintf("/admin/users/%d/role", nina.ID), url.Values{"csrf": {admin.csrf}, "role": {"operator"}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = b.post("/tickets", url.Values{"csrf": {b.csrf}, "title": {"t"}, "priority": {"P3"}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = admin.post(fmt.Sprintf("/admin/users/%d/role", nina.ID), url.Values{"csrf": {admin.csrf}, "role": {"god"}})
	require.Equal(t, http.StatusBadRequest, code)

	// Disabled, her session ends and she cannot log in; enabled, she can.
	code, _, _ = admin.post(fmt.Sprintf("/admin/users/%d/disable", nina.ID), url.Values{"csrf": {admin.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _, h := b.get("/incidents")
	require.Equal(t, http.StatusSeeOther, code)
	require.True(t, strings.HasPrefix(h.Get("Location"), "/login"))
	b.get("/login")
	code, _, _ = b.post("/login", url.Values{"csrf": {b.csrf}, "username": {"nina"}, "password": {"nina password"}})
	require.Equal(t, http.StatusUnauthorized, code)
	_, body, _ = admin.get("/admin/users")
	require.Contains(t, body, "disabled")
	code, _, _ = admin.post(fmt.Sprintf("/admin/users/%d/enable", nina.ID), url.Values{"csrf": {admin.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	b.login("nina", "nina password")

	// The last admin can neither step down nor be disabled.
	code, body, _ = admin.post(fmt.Sprintf("/admin/users/%d/role", root.ID), url.Values{"csrf": {admin.csrf}, "role": {"viewer"}})
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, body, "last enabled admin")
	code, _, _ = admin.post(fmt.Sprintf("/admin/users/%d/disable", root.ID), url.Values{"csrf": {admin.csrf}})
	require.Equal(t, http.StatusConflict, code)
	code, _, _ = admin.post("/admin/users/9999/disable", url.Values{"csrf": {admin.csrf}})
	require.Equal(t, http.StatusNotFound, code)
	u, err := ts.Store().Authenticate(ctx, "admin", testAdminPassword)
	require.NoError(t, err)
	require.Equal(t, store.RoleAdmin, u.Role)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
