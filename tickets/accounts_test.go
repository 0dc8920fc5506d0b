package tickets

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

// TestTokensExpireAndDieWithTheirOwner: a token minted in the UI belongs to
// its admin, stops working when the admin is disabled, expires, and records
// its last use.
func TestTokensExpireAndDieWithTheirOwner(t *testing.T) {
	ts := startService(t)
	ts.must(http.StatusCreated, "POST", "/api/v1/users", ts.admin, map[string]string{"username": "ada", "password": "ada password", "role": "admin"}, nil)
	b := newBrowser(t, ts)
	b.login("ada", "ada password")
	code, body, _ := b.post("/admin/tokens", url.Values{"csrf": {b.csrf}, "name": {"ci"}, "role": {"operator"}, "expires_in": {"1h"}})
	require.Equal(t, http.StatusCreated, code, body)
	tok := newTokenField.FindStringSubmatch(body)[1]
	code, body, _ = b.post("/admin/tokens", url.Values{"csrf": {b.csrf}, "name": {"forever"}, "role": {"viewer"}, "expires_in": {"100000h"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "expires_in")

	ts.must(http.StatusOK, "GET", "/api/v1/incidents", tok, nil, nil)
	var list struct{ Tokens []store.APIToken }
	ts.must(http.StatusOK, "GET", "/api/v1/tokens", ts.admin, nil, &list)
	var mine store.APIToken
	for _, x := range list.Tokens {
		if x.Name == "ci" {
			mine = x
		}
	}
	require.Equal(t, "ada", mine.Owner)
	require.NotNil(t, mine.LastUsedAt, "last_used_at is written")
	require.NotNil(t, mine.ExpiresAt)
	require.Equal(t, ts.clock.Now().Add(time.Hour), mine.ExpiresAt.UTC())

	// Disabling the owner stops the token.
	var users struct{ Users []store.User }
	ts.must(http.StatusOK, "GET", "/api/v1/users", ts.admin, nil, &users)
	var ada store.User
	for _, u := range users.Users {
		if u.Username == "ada" {
			ada = u
		}
	}
	ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/users/%d/disable", ada.ID), ts.admin, nil, nil)
	code, _ = ts.do("GET", "/api/v1/incidents", tok, nil)
	require.Equal(t, http.StatusUnauthorized, code, "the token of a disabled user is refused")
	ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/users/%d/enable", ada.ID), ts.admin, nil, nil)
	ts.must(http.StatusOK, "GET", "/api/v1/incidents", tok, nil, nil)

	// An hour later it has expired.
	ts.clock.Advance(time.Hour)
	code, _ = ts.do("GET", "/api/v1/incidents", tok, nil)
	require.Equal(t, http.StatusUnauthorized, code, "an expired token is refused")

	// Tokens minted through the API get the default expiry.
	var created struct {
		Token     string     `json:"token"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	ts.must(http.StatusCreated, "POST", "/api/v1/tokens", ts.admin, map[string]string{"name": "am", "role": "operator"}, &created)
	require.NotNil(t, created.ExpiresAt)
	require.Equal(t, ts.clock.Now().Add(DefaultConfig().TokenTTL), created.ExpiresAt.UTC())
}

func TestPasswordChangeAndReset(t *testing.T) {
	ts := startService(t)
	ctx := context.Background()
	require.NoError(t, ts.Store().CreateUser(ctx, "otto", "operator password", store.RoleOperator))
	b := newBrowser(t, ts)
	b.login("otto", "operator password")
	other := newBrowser(t, ts)
	other.login("otto", "operator password")

	code, body, _ := b.get("/account/password")
	require.Equal(t, 200, code)
	require.Contains(t, body, `id="current-password"`)
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"current_password": {"wrong password"}, "new_password": {"a brand new pw"}, "confirm_password": {"a brand new pw"}}, "current_password: wrong password"},
		{url.Values{"current_password": {"operator password"}, "new_password": {"short"}, "confirm_password": {"short"}}, "at least 10 characters"},
		{url.Values{"current_password": {"operator password"}, "new_password": {"a brand new pw"}, "confirm_password": {"another pw 12"}}, "confirm_password: does not match"},
		{url.Values{"current_password": {"operator password"}, "new_password": {"change-me-sluice-admin"}, "confirm_password": {"change-me-sluice-admin"}}, "example password"},
	} {
		tc.form.Set("csrf", b.csrf)
		code, body, _ = b.post("/account/password", tc.form)
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, tc.want)
	}
	_, err := ts.Store().Authenticate(ctx, "otto", "operator password")
	require.NoError(t, err, "bad input changes nothing")

	code, body, _ = b.post("/account/password", url.Values{"csrf": {b.csrf}, "current_password": {"operator password"},
		"new_password": {"a brand new pw"}, "confirm_password": {"a brand new pw"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "Password changed")
	_, err = ts.Store().Authenticate(ctx, "otto", "a brand new pw")
	require.NoError(t, err)
	code, _, _ = b.get("/incidents")
	require.Equal(t, 200, code, "this session stays")
	code, _, _ = other.get("/incidents")
	require.Equal(t, http.StatusSeeOther, code, "the other session ended")

	// An admin resets it, through the UI and the API; an operator cannot.
	otto, err := ts.Store().UserByName(ctx, "otto")
	require.NoError(t, err)
	code, _ = ts.do("POST", fmt.Sprintf("/api/v1/users/%d/password", otto.ID), ts.operator, map[string]string{"password": "hijacked password"})
	require.Equal(t, http.StatusForbidden, code)
	admin := newBrowser(t, ts)
	admin.login("admin", testAdminPassword)
	code, body, _ = admin.post(fmt.Sprintf("/admin/users/%d/password", otto.ID), url.Values{"csrf": {admin.csrf}, "password": {"reset by the admin"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "Password of otto reset")
	code, _, _ = b.get("/incidents")
	require.Equal(t, http.StatusSeeOther, code, "a reset ends the user's sessions")
	ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/users/%d/password", otto.ID), ts.admin, map[string]string{"password": "reset via the API"}, nil)
	_, err = ts.Store().Authenticate(ctx, "otto", "reset via the API")
	require.NoError(t, err)
	code, _ = ts.do("POST", fmt.Sprintf("/api/v1/users/%d/password", otto.ID), ts.admin, map[string]string{"password": "short"})
	require.Equal(t, http.StatusBadRequest, code)
}

// TestUserRoleAPI: role changes through the JSON API with the UI's checks.
func TestUserRoleAPI(t *testing.T) {
	ts := startService(t)
	ctx := context.Background()
	require.NoError(t, ts.Store().CreateUser(ctx, "vera", "viewer password", store.RoleViewer))
	vera, err := ts.Store().UserByName(ctx, "vera")
	require.NoError(t, err)
	admin, err := ts.Store().UserByName(ctx, "admin")
	require.NoError(t, err)
	path := fmt.Sprintf("/api/v1/users/%d/role", vera.ID)
	for _, tok := range []string{ts.viewer, ts.operator} {
		code, _ := ts.do("POST", path, tok, map[string]string{"role": "admin"})
		require.Equal(t, http.StatusForbidden, code)
	}
	code, _ := ts.do("POST", path, ts.admin, "role=admin")
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = ts.do("POST", path, ts.admin, map[string]string{"role": "root"})
	require.Equal(t, http.StatusBadRequest, code)
	var u store.User
	ts.must(http.StatusOK, "POST", path, ts.admin, map[string]string{"role": "operator"}, &u)
	require.Equal(t, store.RoleOperator, u.Role)
	code, body := ts.do("POST", fmt.Sprintf("/api/v1/users/%d/role", admin.ID), ts.admin, map[string]string{"role": "viewer"})
	require.Equal(t, http.StatusConflict, code, "%s", body)
	code, _ = ts.do("POST", "/api/v1/users/999/role", ts.admin, map[string]string{"role": "viewer"})
	require.Equal(t, http.StatusNotFound, code)
	code, _ = ts.do("POST", fmt.Sprintf("/api/v1/users/%d/explode", vera.ID), ts.admin, map[string]string{})
	require.Equal(t, http.StatusBadRequest, code)
}

// TestAuditLog: token, user, role and silence changes from the UI and the API
// land in one log that admins, and only admins, read.
func TestAuditLog(t *testing.T) {
	alertingURL := startAlerting(t)
	ts := startService(t, func(c *Config) { c.AlertingURL = alertingURL })
	ctx := context.Background()
	require.NoError(t, ts.Store().CreateUser(ctx, "otto", "operator password", store.RoleOperator))

	admin := newBrowser(t, ts)
	admin.login("admin", testAdminPassword)
	code, body, _ := admin.post("/admin/tokens", url.Values{"csrf": {admin.csrf}, "name": {"ui-token"}, "role": {"viewer"}})
	require.Equal(t, http.StatusCreated, code, body)
	code, _, _ = admin.post("/admin/users", url.Values{"csrf": {admin.csrf}, "username": {"nina"}, "password": {"nina password"}, "role": {"viewer"}})
	require.Equal(t, http.StatusSeeOther, code)
	nina, err := ts.Store().UserByName(ctx, "nina")
	require.NoError(t, err)
	code, _, _ = admin.post(fmt.Sprintf("/admin/users/%d/role", nina.ID), url.Values{"csrf": {admin.csrf}, "role": {"operator"}})
	require.Equal(t, http.StatusSeeOther, code)

	var tok struct{ ID uint }
	ts.must(http.StatusCreated, "POST", "/api/v1/tokens", ts.admin, map[string]string{"name": "api-token", "role": "viewer"}, &tok)
	ts.must(http.StatusNoContent, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", tok.ID), ts.admin, nil, nil)
	ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/users/%d/disable", nina.ID), ts.admin, nil, nil)
	var sil struct{ ID string }
	ts.must(http.StatusCreated, "POST", "/api/v1/silences", ts.operator, map[string]string{"matchers": `alertname="X"`, "duration": "1h", "comment": "maintenance"}, &sil)
	op := newBrowser(t, ts)
	op.login("otto", "operator password")
	code, _, _ = op.post("/silences/"+sil.ID+"/expire", url.Values{"csrf": {op.csrf}})
	require.Equal(t, http.StatusSeeOther, code)

	var log struct{ Events []store.AuditEvent }
	ts.must(http.StatusOK, "GET", "/api/v1/audit", ts.admin, nil, &log)
	var got []string
	for _, e := range log.Events {
		got = append(got, e.Actor+" "+e.Action)
	}
	require.Equal(t, []string{
		"otto silence.expire", "token:operator silence.create", "token:admin user.disable", "token:admin token.revoke",
		"token:admin token.create", "admin user.role", "admin user.create", "admin token.create",
		// The test's own setup: otto and the three tokens of startService.
		"sluice user.create", "command line token.create", "command line token.create", "command line token.create",
	}, got)
	for _, tok := range []string{ts.viewer, ts.operator} {
		code, _ := ts.do("GET", "/api/v1/audit", tok, nil)
		require.Equal(t, http.StatusForbidden, code)
	}
	code, body, _ = admin.get("/admin/audit")
	require.Equal(t, 200, code)
	require.Contains(t, body, "silence.expire")
	require.Contains(t, body, "user.role")
	code, _, _ = op.get("/admin/audit")
	require.Equal(t, http.StatusForbidden, code)
}

// TestSilencesAPI: the JSON API of silences, with the Silences page's checks.
func TestSilencesAPI(t *testing.T) {
	alertingURL := startAlerting(t)
	ts := startService(t, func(c *Config) { c.AlertingURL = alertingURL })
	body := map[string]string{"matchers": `alertname="BrokerDown", cluster="local"`, "duration": "2h", "comment": "replacing a disk"}
	code, _ := ts.do("POST", "/api/v1/silences", "", body)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = ts.do("POST", "/api/v1/silences", ts.viewer, body)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = ts.do("POST", "/api/v1/silences", ts.operator, `alertname=~".+"`)
	require.Equal(t, http.StatusBadRequest, code)
	for _, bad := range []map[string]string{
		{"matchers": `alertname=~".+"`, "duration": "876000h", "comment": "forever"},
		{"matchers": "", "duration": "1h", "comment": "x"},
		{"matchers": `a="b"`, "duration": "1h", "comment": ""},
	} {
		code, _ := ts.do("POST", "/api/v1/silences", ts.operator, bad)
		require.Equal(t, http.StatusBadRequest, code, "%v", bad)
	}
	var created struct{ ID string }
	ts.must(http.StatusCreated, "POST", "/api/v1/silences", ts.operator, body, &created)
	var list struct {
		Silences []struct {
			ID, State, CreatedBy string
		}
	}
	ts.must(http.StatusOK, "GET", "/api/v1/silences", ts.viewer, nil, &list)
	require.Len(t, list.Silences, 1)
	require.Equal(t, created.ID, list.Silences[0].ID)
	require.Equal(t, "token:operator", list.Silences[0].CreatedBy)
	code, _ = ts.do("DELETE", "/api/v1/silences/"+created.ID, ts.viewer, nil)
	require.Equal(t, http.StatusForbidden, code)
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/silences/"+created.ID, ts.operator, nil, nil)
	code, _ = ts.do("DELETE", "/api/v1/silences/00000000-0000-0000-0000-000000000000", ts.operator, nil)
	require.Equal(t, http.StatusNotFound, code)

	unconfigured := startService(t)
	code, b := unconfigured.do("GET", "/api/v1/silences", unconfigured.viewer, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	var e apiError
	require.NoError(t, json.Unmarshal(b, &e))
	require.True(t, strings.Contains(e.Error, "alerting_url"))
}
