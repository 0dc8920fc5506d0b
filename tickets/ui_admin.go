package tickets

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/store"
)

// The admin pages: API tokens, local users and the audit log; and every
// user's own password page. Every route is behind sessionAuth and csrfCheck;
// the admin ones also behind the admin role (uiRoutes), checked again by the
// service layer.

var roleNames = []string{string(store.RoleViewer), string(store.RoleOperator), string(store.RoleAdmin)}

type tokensData struct {
	Tokens []store.APIToken
	Roles  []string
	// NewToken is the token just created, shown on this one response only:
	// only its hash is stored.
	NewToken     string
	NewTokenName string
	Form         tokenRequest
	Errors       []string
	DefaultTTL   string
}

func (s *Service) tokensPage(c *gin.Context) {
	s.renderTokens(c, http.StatusOK, tokensData{Form: tokenRequest{Role: string(store.RoleOperator)}})
}

func (s *Service) renderTokens(c *gin.Context, code int, d tokensData) {
	ts, err := s.store.ListTokens(c.Request.Context())
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	d.Tokens, d.Roles, d.DefaultTTL = ts, roleNames, strings.TrimSuffix(strings.TrimSuffix(s.cfg.TokenTTL.String(), "0s"), "0m")
	flash := ""
	if d.NewToken != "" {
		flash = "Token created. Copy it now: it is not shown again."
	}
	s.render(c, code, "tokens", "layout", pageData{Title: "API tokens", Nav: "tokens", Flash: flash, Data: d})
}

func (s *Service) uiCreateToken(c *gin.Context) {
	req := tokenRequest{Name: strings.TrimSpace(c.PostForm("name")), Role: c.PostForm("role"), ExpiresIn: strings.TrimSpace(c.PostForm("expires_in"))}
	tok, t, err := s.createToken(c.Request.Context(), who(c), req)
	var fe fieldErrors
	switch {
	case errors.As(err, &fe):
		s.renderTokens(c, http.StatusBadRequest, tokensData{Form: req, Errors: fe})
		return
	case errors.Is(err, store.ErrConflict):
		s.renderTokens(c, http.StatusConflict, tokensData{Form: req, Errors: []string{err.Error()}})
		return
	case err != nil:
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("API token created", "token_id", t.ID, "name", t.Name, "role", t.Role, "by", who(c).Name)
	// Answered directly, not redirected, so the token never sits in a URL or a
	// later page; render sends Cache-Control: no-store.
	s.renderTokens(c, http.StatusCreated, tokensData{NewToken: tok, NewTokenName: t.Name, Form: tokenRequest{Role: string(store.RoleOperator)}})
}

func (s *Service) uiRevokeToken(c *gin.Context) {
	id, ok := pathUint(c)
	if !ok {
		s.uiError(c, http.StatusNotFound, "no such token")
		return
	}
	if err := s.revokeToken(c.Request.Context(), who(c), id); err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("API token revoked", "token_id", id, "by", who(c).Name)
	c.Redirect(http.StatusSeeOther, "/admin/tokens")
}

type usersData struct {
	Users  []store.User
	Roles  []string
	Me     string
	Form   userRequest
	Errors []string
}

func (s *Service) usersPage(c *gin.Context) {
	s.renderUsers(c, http.StatusOK, usersData{Form: userRequest{Role: string(store.RoleViewer)}}, "")
}

func (s *Service) renderUsers(c *gin.Context, code int, d usersData, flash string) {
	us, err := s.store.ListUsers(c.Request.Context())
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	d.Users, d.Roles, d.Me = us, roleNames, who(c).Name
	d.Form.Password = "" // never echoed back
	s.render(c, code, "users", "layout", pageData{Title: "Users", Nav: "users", Flash: flash, Data: d})
}

func (s *Service) uiCreateUser(c *gin.Context) {
	req := userRequest{Username: strings.TrimSpace(c.PostForm("username")), Password: c.PostForm("password"), Role: c.PostForm("role")}
	role, err := s.createUser(c.Request.Context(), who(c), req)
	var fe fieldErrors
	switch {
	case errors.As(err, &fe):
		s.renderUsers(c, http.StatusBadRequest, usersData{Form: req, Errors: fe}, "")
		return
	case errors.Is(err, store.ErrConflict):
		s.renderUsers(c, http.StatusConflict, usersData{Form: req, Errors: []string{"username: taken"}}, "")
		return
	case err != nil:
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("user created", "user", req.Username, "role", role, "by", who(c).Name)
	c.Redirect(http.StatusSeeOther, "/admin/users")
}

// uiUserAction changes a user's role, disables or enables them, or resets
// their password, as named by the last path element.
func (s *Service) uiUserAction(c *gin.Context) {
	id, ok := pathUint(c)
	if !ok {
		s.uiError(c, http.StatusNotFound, "no such user")
		return
	}
	action := c.Request.URL.Path[strings.LastIndex(c.Request.URL.Path, "/")+1:]
	u, err := s.changeUser(c.Request.Context(), who(c), id, userChange{Action: action, Role: c.PostForm("role"), Password: c.PostForm("password")})
	var fe fieldErrors
	switch {
	case errors.Is(err, store.ErrConflict):
		s.renderUsers(c, http.StatusConflict, usersData{Form: userRequest{Role: string(store.RoleViewer)}, Errors: []string{err.Error()}}, "")
		return
	case errors.As(err, &fe):
		s.renderUsers(c, http.StatusBadRequest, usersData{Form: userRequest{Role: string(store.RoleViewer)}, Errors: fe}, "")
		return
	case err != nil:
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("user changed", "user", u.Username, "action", action, "role", u.Role, "disabled", u.Disabled(), "by", who(c).Name)
	if action == "password" {
		s.renderUsers(c, http.StatusOK, usersData{Form: userRequest{Role: string(store.RoleViewer)}},
			fmt.Sprintf("Password of %s reset; their sessions ended.", u.Username))
		return
	}
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/admin/users#user-%d", u.ID))
}

func (s *Service) auditPage(c *gin.Context) {
	evs, err := s.store.AuditLog(c.Request.Context(), 500)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.render(c, http.StatusOK, "audit", "layout", pageData{Title: "Audit log", Nav: "audit", Data: evs})
}

type passwordData struct {
	Errors []string
}

func (s *Service) passwordPage(c *gin.Context) {
	s.render(c, http.StatusOK, "password", "layout", pageData{Title: "Change password", Nav: "password", Data: passwordData{}})
}

func (s *Service) uiChangePassword(c *gin.Context) {
	cookie, _ := c.Cookie(sessionCookie)
	err := s.changeOwnPassword(c.Request.Context(), who(c), c.PostForm("current_password"), c.PostForm("new_password"),
		c.PostForm("confirm_password"), cookie)
	var fe fieldErrors
	switch {
	case errors.As(err, &fe):
		s.render(c, http.StatusBadRequest, "password", "layout", pageData{Title: "Change password", Nav: "password", Data: passwordData{Errors: fe}})
		return
	case errors.Is(err, store.ErrWrongPassword):
		s.render(c, http.StatusBadRequest, "password", "layout", pageData{Title: "Change password", Nav: "password",
			Data: passwordData{Errors: []string{"current_password: wrong password"}}})
		return
	case err != nil:
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("password changed", "user", who(c).Name)
	s.render(c, http.StatusOK, "password", "layout", pageData{Title: "Change password", Nav: "password",
		Flash: "Password changed. Your other sessions have ended.", Data: passwordData{}})
}
