package tickets

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/store"
)

// The admin pages: API tokens and local users. Every route is behind
// sessionAuth, csrfCheck and the admin role (uiRoutes).

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
	d.Tokens, d.Roles = ts, roleNames
	flash := ""
	if d.NewToken != "" {
		flash = "Token created. Copy it now: it is not shown again."
	}
	s.render(c, code, "tokens", "layout", pageData{Title: "API tokens", Nav: "tokens", Flash: flash, Data: d})
}

func (s *Service) uiCreateToken(c *gin.Context) {
	req := tokenRequest{Name: strings.TrimSpace(c.PostForm("name")), Role: c.PostForm("role")}
	var fe fieldErrors
	fe.name("name", req.Name, true)
	role, ok := store.ParseRole(req.Role)
	if !ok {
		fe.add("role", "one of viewer, operator, admin")
	}
	if len(fe) > 0 {
		s.renderTokens(c, http.StatusBadRequest, tokensData{Form: req, Errors: fe})
		return
	}
	actor := who(c).Name
	tok, t, err := s.store.CreateTokenBy(c.Request.Context(), req.Name, role, actor)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("API token created", "token_id", t.ID, "name", t.Name, "role", t.Role, "by", actor)
	// Answered directly, not redirected, so the token never sits in a URL or a
	// later page; render sends Cache-Control: no-store.
	s.renderTokens(c, http.StatusCreated, tokensData{NewToken: tok, NewTokenName: t.Name, Form: tokenRequest{Role: string(store.RoleOperator)}})
}

func (s *Service) uiRevokeToken(c *gin.Context) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil || id == 0 {
		s.uiError(c, http.StatusNotFound, "no such token")
		return
	}
	if err := s.store.DeleteToken(c.Request.Context(), uint(id)); err != nil {
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

// validateUser checks a new user; the same rules as POST /api/v1/users.
func validateUser(req userRequest) (store.Role, fieldErrors) {
	var fe fieldErrors
	fe.name("username", req.Username, true)
	if len(req.Password) < store.MinPasswordLength || len(req.Password) > 72 {
		fe.add("password", "%d to 72 bytes", store.MinPasswordLength)
	}
	role, ok := store.ParseRole(req.Role)
	if !ok {
		fe.add("role", "one of viewer, operator, admin")
	}
	return role, fe
}

func (s *Service) uiCreateUser(c *gin.Context) {
	req := userRequest{Username: strings.TrimSpace(c.PostForm("username")), Password: c.PostForm("password"), Role: c.PostForm("role")}
	role, fe := validateUser(req)
	if len(fe) > 0 {
		s.renderUsers(c, http.StatusBadRequest, usersData{Form: req, Errors: fe}, "")
		return
	}
	if err := s.store.CreateUser(c.Request.Context(), req.Username, req.Password, role); err != nil {
		if store.IsUniqueViolation(err) {
			s.renderUsers(c, http.StatusConflict, usersData{Form: req, Errors: []string{"username: taken"}}, "")
			return
		}
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("user created", "user", req.Username, "role", role, "by", who(c).Name)
	c.Redirect(http.StatusSeeOther, "/admin/users")
}

// uiUserAction changes a user's role, or disables or enables them, as named by
// the last path element.
func (s *Service) uiUserAction(c *gin.Context) {
	id64, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil || id64 == 0 {
		s.uiError(c, http.StatusNotFound, "no such user")
		return
	}
	id := uint(id64)
	var u *store.User
	switch action := c.Request.URL.Path[strings.LastIndex(c.Request.URL.Path, "/")+1:]; action {
	case "role":
		role, ok := store.ParseRole(c.PostForm("role"))
		if !ok {
			s.uiError(c, http.StatusBadRequest, "role: one of viewer, operator, admin")
			return
		}
		u, err = s.store.SetUserRole(c.Request.Context(), id, role)
	case "disable", "enable":
		u, err = s.store.SetUserDisabled(c.Request.Context(), id, action == "disable")
	}
	if errors.Is(err, store.ErrConflict) {
		s.renderUsers(c, http.StatusConflict, usersData{Form: userRequest{Role: string(store.RoleViewer)}, Errors: []string{err.Error()}}, "")
		return
	}
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.log.Info("user changed", "user", u.Username, "role", u.Role, "disabled", u.Disabled(), "by", who(c).Name)
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/admin/users#user-%d", u.ID))
}
