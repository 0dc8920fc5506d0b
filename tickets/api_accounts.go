package tickets

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/store"
)

// The JSON API of tokens, users, the audit log and silences; the same service
// functions as the admin and Silences pages, so the same role checks.

func (s *Service) apiCreateToken(c *gin.Context) {
	var req tokenRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	tok, t, err := s.createToken(c.Request.Context(), who(c), req)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": t.ID, "name": t.Name, "role": t.Role, "expires_at": t.ExpiresAt, "owner_id": t.OwnerID, "token": tok})
}

func (s *Service) listTokens(c *gin.Context) {
	ts, err := s.store.ListTokens(c.Request.Context())
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if ts == nil {
		ts = []store.APIToken{}
	}
	c.JSON(http.StatusOK, gin.H{"tokens": ts})
}

func (s *Service) deleteToken(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	if err := s.revokeToken(c.Request.Context(), who(c), id); err != nil {
		s.storeFail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Service) apiCreateUser(c *gin.Context) {
	var req userRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	role, err := s.createUser(c.Request.Context(), who(c), req)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"username": req.Username, "role": role})
}

func (s *Service) listUsers(c *gin.Context) {
	us, err := s.store.ListUsers(c.Request.Context())
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if us == nil {
		us = []store.User{}
	}
	c.JSON(http.StatusOK, gin.H{"users": us})
}

// userChangeRequest is the body of POST /api/v1/users/:id/{role,password,tenant}.
type userChangeRequest struct {
	Role     string `json:"role"`
	Password string `json:"password"`
	Tenant   string `json:"tenant"`
}

// apiUserAction changes the user in the path as the last path element says:
// role, disable, enable or password (an admin's reset).
func (s *Service) apiUserAction(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	action := c.Param("action")
	var req userChangeRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, action == "disable" || action == "enable") {
		return
	}
	u, err := s.changeUser(c.Request.Context(), who(c), id, userChange{Action: action, Role: req.Role, Password: req.Password, Tenant: req.Tenant})
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}

func (s *Service) auditLog(c *gin.Context) {
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	evs, err := s.store.AuditLog(c.Request.Context(), limit)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if evs == nil {
		evs = []store.AuditEvent{}
	}
	c.JSON(http.StatusOK, gin.H{"events": evs})
}

// silenceFail answers an error of a silence action.
func (s *Service) silenceFail(c *gin.Context, err error) {
	var apiErr *silences.Error
	switch {
	case errors.Is(err, errNoSilences):
		fail(c, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, silences.ErrNotFound):
		fail(c, http.StatusNotFound, "no such silence")
	case errors.As(err, &apiErr):
		fail(c, http.StatusBadRequest, "alerting refused: "+apiErr.Message)
	case isServiceError(err):
		s.storeFail(c, err)
	default:
		s.log.Warn("alerting API", "path", c.Request.URL.Path, "err", err)
		fail(c, http.StatusBadGateway, "could not reach alerting")
	}
}

// isServiceError reports whether err is a validation or role failure.
func isServiceError(err error) bool {
	var fe fieldErrors
	var fb errForbidden
	return errors.As(err, &fe) || errors.As(err, &fb)
}

func (s *Service) apiListSilences(c *gin.Context) {
	if s.silences == nil {
		s.silenceFail(c, errNoSilences)
		return
	}
	list, err := s.silences.List(c.Request.Context())
	if err != nil {
		s.silenceFail(c, err)
		return
	}
	if list == nil {
		list = []silences.Silence{}
	}
	c.JSON(http.StatusOK, gin.H{"silences": list})
}

func (s *Service) apiCreateSilence(c *gin.Context) {
	var req silenceRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	id, err := s.createSilence(c.Request.Context(), who(c), req)
	if err != nil {
		s.silenceFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": id})
}

func (s *Service) apiExpireSilence(c *gin.Context) {
	if err := s.expireSilence(c.Request.Context(), who(c), c.Param("id")); err != nil {
		s.silenceFail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// pathUint parses a positive id path parameter for the UI.
func pathUint(c *gin.Context) (uint, bool) {
	v, err := strconv.ParseUint(c.Param("id"), 10, 32)
	return uint(v), err == nil && v > 0
}
