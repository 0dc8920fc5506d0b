package tickets

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicemq/sluice/tickets/store"
)

// principal is who makes a request: a user of the UI or an API token.
type principal struct {
	Name string
	Role store.Role
	// UserID is the user logged in, or the owner of the API token; 0 for a
	// token without an owner.
	UserID uint
	// Token is set for API tokens.
	Token bool
	// CSRF is the session's CSRF token; empty for API tokens.
	CSRF string
	// Tenant is the tenant a member belongs to (a user's, or a token
	// owner's); empty for staff.
	Tenant string
}

const principalKey = "sluice.principal"

func who(c *gin.Context) principal { return c.MustGet(principalKey).(principal) }

// routes builds the HTTP handler:
//
//	GET  /healthz, /metrics                         no authentication
//	POST /api/v1/integrations/alertmanager          Alertmanager webhook v4 (operator token)
//	POST /api/v1/integrations/slack/interactions    Slack buttons (signed by the Slack app)
//	GET  /api/v1/incidents[?status&severity&cluster&limit]
//	GET  /api/v1/incidents/:id
//	POST /api/v1/incidents/:id/{ack,resolve,close,assign,comments,tickets}
//	GET  /api/v1/incidents/:id/snapshot[/bundle]; POST /api/v1/incidents/:id/snapshot
//	GET  /api/v1/tickets[?status&priority&assignee&limit]; POST /api/v1/tickets
//	GET  /api/v1/tickets/:id; POST /api/v1/tickets/:id/{comments,status,assign}
//	GET  /api/v1/sla
//	GET/POST /api/v1/tokens, DELETE /api/v1/tokens/:id (admin)
//	GET/POST /api/v1/users, POST /api/v1/users/:id/{role,disable,enable,password} (admin)
//	GET  /api/v1/audit (admin)
//	GET  /api/v1/silences; POST /api/v1/silences, DELETE /api/v1/silences/:id (operator)
//	tenants, plans, usage and statements (api_tenants.go)
//	the web UI (ui.go)
func (s *Service) routes() (http.Handler, error) {
	r := gin.New()
	r.ContextWithFallback = true
	// X-Forwarded-For counts only from the configured proxies (none by
	// default): otherwise anyone could forge the address logged for a failed
	// login and dodge its throttle.
	if err := r.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted_proxies: %w", err)
	}
	r.Use(s.recoverAndMeasure, securityHeaders)
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))

	// Signed by Slack, not a bearer token: outside the API group's auth.
	if h := s.slackInteractions(); h != nil {
		r.POST("/api/v1/integrations/slack/interactions", h)
	}
	api := r.Group("/api/v1", s.bearerAuth, s.tenantFence)
	op, admin := requireRole(store.RoleOperator), requireRole(store.RoleAdmin)
	api.POST("/integrations/alertmanager", op, s.alertmanagerWebhook)
	api.GET("/incidents", s.listIncidents)
	api.GET("/incidents/:id", s.getIncident)
	api.POST("/incidents/:id/ack", op, s.ackIncident)
	api.POST("/incidents/:id/resolve", op, s.resolveIncident)
	api.POST("/incidents/:id/close", op, s.closeIncident)
	api.POST("/incidents/:id/assign", op, s.assignIncident)
	api.POST("/incidents/:id/comments", op, s.commentIncident)
	api.POST("/incidents/:id/tickets", op, s.linkTicket)
	api.GET("/incidents/:id/snapshot", s.getSnapshot)
	api.GET("/incidents/:id/snapshot/bundle", s.getBundle)
	api.POST("/incidents/:id/snapshot", op, s.recaptureSnapshot)
	api.GET("/tickets", s.listTickets)
	api.POST("/tickets", op, s.createTicket)
	api.GET("/tickets/:id", s.getTicket)
	api.POST("/tickets/:id/comments", op, s.commentTicket)
	api.POST("/tickets/:id/status", op, s.ticketStatus)
	api.POST("/tickets/:id/assign", op, s.assignTicket)
	api.GET("/sla", s.slaReport)
	api.GET("/tokens", admin, s.listTokens)
	api.POST("/tokens", admin, s.apiCreateToken)
	api.DELETE("/tokens/:id", admin, s.deleteToken)
	api.GET("/users", admin, s.listUsers)
	api.POST("/users", admin, s.apiCreateUser)
	api.POST("/users/:id/:action", admin, s.apiUserAction)
	api.GET("/audit", admin, s.auditLog)
	api.GET("/silences", s.apiListSilences)
	api.POST("/silences", op, s.apiCreateSilence)
	api.DELETE("/silences/:id", op, s.apiExpireSilence)
	s.tenantAPIRoutes(api)
	s.uiRoutes(r)
	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			fail(c, http.StatusNotFound, "no such route")
			return
		}
		s.uiError(c, http.StatusNotFound, "no such page")
	})
	return r, nil
}

func (s *Service) recoverAndMeasure(c *gin.Context) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic serving request", "path", c.Request.URL.Path, "panic", v)
			fail(c, http.StatusInternalServerError, "internal error")
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		s.httpDur.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Observe(time.Since(start).Seconds())
	}()
	c.Next()
}

// bearerAuth authenticates API requests with `Authorization: Bearer TOKEN`.
func (s *Service) bearerAuth(c *gin.Context) {
	h := c.GetHeader("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		c.Header("WWW-Authenticate", `Bearer realm="sluice"`)
		fail(c, http.StatusUnauthorized, "authentication required: Authorization: Bearer TOKEN")
		return
	}
	t, err := s.store.TokenRole(c.Request.Context(), strings.TrimSpace(tok))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`)
		fail(c, http.StatusUnauthorized, "invalid token")
		return
	}
	p := principal{Name: "token:" + t.Name, Role: t.Role, Token: true, Tenant: t.OwnerTenant}
	if t.OwnerID != nil {
		p.UserID = *t.OwnerID
	}
	c.Set(principalKey, p)
	c.Next()
}

func requireRole(min store.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if p := who(c); !p.Role.Allows(min) {
			fail(c, http.StatusForbidden, fmt.Sprintf("%s role required (you are %s)", min, p.Role))
			return
		}
		c.Next()
	}
}

type apiError struct {
	Error string `json:"error"`
}

func fail(c *gin.Context, code int, msg string) {
	c.AbortWithStatusJSON(code, apiError{msg})
}

// storeFail answers an error of the service layer or the store: 400, 403,
// 404, 409 or 500.
func (s *Service) storeFail(c *gin.Context, err error) {
	code, msg := s.errorStatus(c.Request.URL.Path, err)
	fail(c, code, msg)
}

// decodeJSON reads a request body strictly into v: JSON content type, at most
// max bytes, no unknown fields, one value. An empty body is allowed when
// optional. It answers the request and returns false on bad input.
func decodeJSON(c *gin.Context, v any, max int64, optional bool) bool {
	if optional && c.Request.ContentLength == 0 {
		return true
	}
	if ct := c.ContentType(); ct != "application/json" {
		fail(c, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be application/json, not %q", ct))
		return false
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, max)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			fail(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", max))
		case errors.Is(err, io.EOF):
			fail(c, http.StatusBadRequest, "empty body: a JSON object is required")
		default:
			fail(c, http.StatusBadRequest, "malformed JSON: "+strings.TrimPrefix(err.Error(), "json: "))
		}
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		fail(c, http.StatusBadRequest, "malformed JSON: data after the object")
		return false
	}
	return true
}

func pathID(c *gin.Context) (uint, bool) {
	v, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil || v == 0 {
		fail(c, http.StatusBadRequest, fmt.Sprintf("id %q is not a positive number", c.Param("id")))
		return 0, false
	}
	return uint(v), true
}

func queryLimit(c *gin.Context) (int, bool) {
	s := c.Query("limit")
	if s == "" {
		return 100, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		fail(c, http.StatusBadRequest, "limit: a number from 1 to 1000")
		return 0, false
	}
	return n, true
}
