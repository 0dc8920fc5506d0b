package tickets

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/sla"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
	"github.com/sluicemq/sluice/ui"
)

const (
	sessionCookie    = "sluice_session"
	loginCSRFCookie  = "sluice_login_csrf"
	maxFormBodyBytes = 64 << 10
)

// pages are the parsed page templates, each with the layout and partials.
type pages map[string]*template.Template

var templateFuncs = template.FuncMap{
	"fmtTime": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if t == nil {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return fmt.Sprint(v)
	},
	"join":   strings.Join,
	"plural": plural,
	"labels": func(m map[string]string) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+m[k])
		}
		return strings.Join(parts, ", ")
	},
	"ints": func(xs []int32) string {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = strconv.Itoa(int(x))
		}
		return strings.Join(parts, ",")
	},
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"secs": func(s float64) string {
		if s == 0 {
			return "—"
		}
		return (time.Duration(s) * time.Second).String()
	},
	"lastEvents": func(evs []snapshot.Event, n int) []snapshot.Event {
		if len(evs) > n {
			evs = evs[len(evs)-n:]
		}
		out := make([]snapshot.Event, len(evs))
		for i := range evs {
			out[i] = evs[len(evs)-1-i]
		}
		return out
	},
	"chart":    chartSVG,
	"matchers": silences.FormatMatchers,
}

func loadPages() (pages, error) {
	files, err := fs.Glob(ui.Templates(), "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := pages{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(ui.Templates(), "templates/layout.html", "templates/partials.html", f)
		if err != nil {
			return nil, err
		}
		p[name] = t
	}
	return p, nil
}

// pageData is what every page template gets.
type pageData struct {
	Title, Nav string
	User       *principal
	CSRF       string
	Flash      string
	Data       any
}

func (s *Service) render(c *gin.Context, code int, page, block string, d pageData) {
	if p, ok := c.Get(principalKey); ok {
		pr := p.(principal)
		d.User, d.CSRF = &pr, pr.CSRF
	}
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, block, d); err != nil {
		s.log.Error("render page", "page", page, "err", err)
		c.String(http.StatusInternalServerError, "internal error rendering the page")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(code, "text/html; charset=utf-8", buf.Bytes())
}

func (s *Service) uiError(c *gin.Context, code int, msg string) {
	s.render(c, code, "error", "layout", pageData{Title: http.StatusText(code), Data: msg})
	c.Abort()
}

// uiStoreError answers an error of the service layer or the store on a page.
func (s *Service) uiStoreError(c *gin.Context, err error) {
	code, msg := s.errorStatus(c.Request.URL.Path, err)
	s.uiError(c, code, msg)
}

func (s *Service) uiRoutes(r *gin.Engine) {
	r.StaticFS("/static", http.FS(ui.Static()))
	r.GET("/login", s.loginPage)
	r.POST("/login", s.login)
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/incidents") })

	w := r.Group("/", s.sessionAuth, s.tenantFence, s.csrfCheck)
	op := s.uiRequireRole(store.RoleOperator)
	w.POST("/logout", s.logout)
	w.GET("/incidents", s.incidentsPage)
	w.GET("/incidents/rows", s.incidentsPage)
	w.GET("/incidents/:id", s.incidentPage)
	w.GET("/incidents/:id/bundle", s.getBundle)
	w.POST("/incidents/:id/ack", op, s.uiIncidentAction)
	w.POST("/incidents/:id/resolve", op, s.uiIncidentAction)
	w.POST("/incidents/:id/assign", op, s.uiIncidentAction)
	w.POST("/incidents/:id/comment", op, s.uiIncidentAction)
	w.POST("/incidents/:id/link", op, s.uiIncidentAction)
	w.POST("/incidents/:id/snapshot", op, s.uiIncidentAction)
	w.GET("/tickets", s.ticketsPage)
	w.POST("/tickets", op, s.uiFileTicket)
	w.GET("/tickets/:id", s.ticketPage)
	w.POST("/tickets/:id/status", op, s.uiTicketAction)
	w.POST("/tickets/:id/assign", op, s.uiTicketAction)
	w.POST("/tickets/:id/comment", op, s.uiTicketAction)
	w.GET("/cluster", s.clusterPage)
	w.GET("/sla", s.slaPage)
	w.GET("/silences", s.silencesPage)
	w.POST("/silences", op, s.uiCreateSilence)
	w.POST("/silences/:id/expire", op, s.uiExpireSilence)
	w.GET("/account/password", s.passwordPage)
	w.POST("/account/password", s.uiChangePassword)

	admin := s.uiRequireRole(store.RoleAdmin)
	w.GET("/admin/tokens", admin, s.tokensPage)
	w.POST("/admin/tokens", admin, s.uiCreateToken)
	w.POST("/admin/tokens/:id/revoke", admin, s.uiRevokeToken)
	w.GET("/admin/users", admin, s.usersPage)
	w.POST("/admin/users", admin, s.uiCreateUser)
	w.POST("/admin/users/:id/role", admin, s.uiUserAction)
	w.POST("/admin/users/:id/disable", admin, s.uiUserAction)
	w.POST("/admin/users/:id/enable", admin, s.uiUserAction)
	w.POST("/admin/users/:id/password", admin, s.uiUserAction)
	w.GET("/admin/audit", admin, s.auditPage)
	s.tenantUIRoutes(w, admin)
}

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) setCookie(c *gin.Context, name, value string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: sameSite})
}

type loginData struct {
	CSRF, Next, Username, Error string
}

func (s *Service) loginPage(c *gin.Context) {
	tok := randomString()
	s.setCookie(c, loginCSRFCookie, tok, 3600, http.SameSiteStrictMode)
	s.render(c, http.StatusOK, "login", "layout", pageData{Title: "Log in", Data: loginData{CSRF: tok, Next: safeNext(c.Query("next"))}})
}

func (s *Service) login(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBodyBytes)
	cookie, err := c.Cookie(loginCSRFCookie)
	form := c.PostForm("csrf")
	if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(cookie), []byte(form)) != 1 {
		s.uiError(c, http.StatusForbidden, "invalid or missing CSRF token: reload the login page and try again")
		return
	}
	user, pw, next := c.PostForm("username"), c.PostForm("password"), safeNext(c.PostForm("next"))
	if len(user) > 64 {
		user = user[:64]
	}
	addr := c.ClientIP()
	if wait := s.logins.wait(user, addr, s.store.Now()); wait > 0 {
		tok := randomString()
		s.setCookie(c, loginCSRFCookie, tok, 3600, http.SameSiteStrictMode)
		secs := int(wait.Round(time.Second).Seconds())
		c.Header("Retry-After", strconv.Itoa(max(secs, 1)))
		s.log.Warn("login throttled", "user", user, "remote", addr, "wait", wait.Round(time.Second))
		s.render(c, http.StatusTooManyRequests, "login", "layout", pageData{Title: "Log in",
			Data: loginData{CSRF: tok, Next: next, Username: user, Error: fmt.Sprintf("Too many failed logins: try again in %d s.", max(secs, 1))}})
		return
	}
	u, err := s.store.Authenticate(c.Request.Context(), user, pw)
	if err != nil {
		s.logins.fail(user, addr, s.store.Now())
		tok := randomString()
		s.setCookie(c, loginCSRFCookie, tok, 3600, http.SameSiteStrictMode)
		s.log.Warn("failed login", "user", user, "remote", addr)
		s.render(c, http.StatusUnauthorized, "login", "layout", pageData{Title: "Log in",
			Data: loginData{CSRF: tok, Next: next, Username: user, Error: "Wrong user name or password."}})
		return
	}
	s.logins.succeed(user)
	value, _, err := s.store.CreateSession(c.Request.Context(), u.ID, s.cfg.SessionTTL)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.setCookie(c, loginCSRFCookie, "", -1, http.SameSiteStrictMode)
	s.setCookie(c, sessionCookie, value, int(s.cfg.SessionTTL.Seconds()), http.SameSiteLaxMode)
	c.Redirect(http.StatusSeeOther, next)
}

func (s *Service) logout(c *gin.Context) {
	if v, err := c.Cookie(sessionCookie); err == nil {
		s.store.DeleteSession(c.Request.Context(), v)
	}
	s.setCookie(c, sessionCookie, "", -1, http.SameSiteLaxMode)
	c.Redirect(http.StatusSeeOther, "/login")
}

// sessionAuth lets logged-in browsers through and sends others to the login
// page.
func (s *Service) sessionAuth(c *gin.Context) {
	v, err := c.Cookie(sessionCookie)
	if err == nil {
		sess, u, err := s.store.LookupSession(c.Request.Context(), v)
		if err == nil {
			c.Set(principalKey, principal{Name: u.Username, Role: u.Role, UserID: u.ID, CSRF: sess.CSRFToken, Tenant: u.Tenant})
			c.Next()
			return
		}
	}
	to := "/login?next=" + url.QueryEscape(c.Request.URL.RequestURI())
	if c.Request.Method != http.MethodGet {
		to = "/login"
	}
	if c.GetHeader("HX-Request") == "true" {
		c.Header("HX-Redirect", to)
		c.AbortWithStatus(http.StatusUnauthorized)
		return
	}
	c.Redirect(http.StatusSeeOther, to)
	c.Abort()
}

// csrfCheck refuses state-changing requests whose form field csrf or header
// X-CSRF-Token does not carry the session's token.
func (s *Service) csrfCheck(c *gin.Context) {
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		c.Next()
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBodyBytes)
	want := who(c).CSRF
	got := c.GetHeader("X-CSRF-Token")
	if got == "" {
		got = c.PostForm("csrf")
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		s.uiError(c, http.StatusForbidden, "invalid or missing CSRF token: reload the page and try again")
		return
	}
	c.Next()
}

func (s *Service) uiRequireRole(min store.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if p := who(c); !p.Role.Allows(min) {
			s.uiError(c, http.StatusForbidden, fmt.Sprintf("%s role required (you are %s)", min, p.Role))
			return
		}
		c.Next()
	}
}

type incidentsData struct {
	Incidents  []incidentView
	Filter     store.IncidentFilter
	Statuses   []string
	Severities []string
	Query      string
	Now        string
}

func (s *Service) incidentsPage(c *gin.Context) {
	f := store.IncidentFilter{Status: c.DefaultQuery("status", "open"), Severity: c.Query("severity"), Cluster: c.Query("cluster"), Limit: 200}
	var fe fieldErrors
	fe.oneOf("status", f.Status, incidentStatuses)
	fe.ref("severity", f.Severity)
	fe.ref("cluster", f.Cluster)
	if err := fe.err(); err != nil {
		s.uiError(c, http.StatusBadRequest, err.Error())
		return
	}
	incs, err := s.store.ListIncidents(c.Request.Context(), f)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	d := incidentsData{Filter: f, Statuses: incidentStatuses, Severities: []string{"", "critical", "error", "warning", "info"},
		Query: url.Values{"status": {f.Status}, "severity": {f.Severity}, "cluster": {f.Cluster}}.Encode(),
		Now:   s.store.Now().Format("15:04:05 UTC")}
	for _, inc := range incs {
		d.Incidents = append(d.Incidents, s.view(inc))
	}
	block := "layout"
	if strings.HasSuffix(c.Request.URL.Path, "/rows") {
		block = "incident-rows"
	}
	s.render(c, http.StatusOK, "incidents", block, pageData{Title: "Incidents", Nav: "incidents", Data: d})
}

type incidentPageData struct {
	*store.IncidentDetail
	SLA      sla.Status
	Snapshot *snapshot.Snapshot
	CanAct   bool
	// Impact summarizes the snapshot's affected brokers, topics and
	// partitions; AllPartitions (?partitions=all) lists every partition.
	Impact        impactSummary
	AllPartitions bool
}

func (s *Service) incidentPage(c *gin.Context) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		s.uiError(c, http.StatusNotFound, "no such incident")
		return
	}
	d, err := s.store.IncidentDetail(c.Request.Context(), uint(id))
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	pd := incidentPageData{IncidentDetail: d, SLA: sla.Check(&d.Incident, s.cfg.SLATargets, s.store.Now()), CanAct: who(c).Role.Allows(store.RoleOperator),
		AllPartitions: c.Query("partitions") == "all"}
	if rec, err := s.store.LatestSnapshot(c.Request.Context(), uint(id), true); err == nil {
		var snap snapshot.Snapshot
		if json.Unmarshal([]byte(rec.Data), &snap) == nil {
			pd.Snapshot = snapshot.RedactSnapshot(&snap)
			pd.Impact = summarizeImpact(pd.Snapshot)
		}
	}
	s.render(c, http.StatusOK, "incident", "layout", pageData{Title: fmt.Sprintf("Incident #%d", id), Nav: "incidents", Data: pd})
}

// uiIncidentAction performs the incident form named by the last path element.
func (s *Service) uiIncidentAction(c *gin.Context) {
	id64, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		s.uiError(c, http.StatusNotFound, "no such incident")
		return
	}
	id, p := uint(id64), who(c)
	action := c.Request.URL.Path[strings.LastIndex(c.Request.URL.Path, "/")+1:]
	switch action {
	case "snapshot":
		if err = authorize(p, store.RoleOperator); err == nil {
			_, err = s.captureSnapshot(c.Request.Context(), id, "captured by "+p.Name)
		}
	default:
		ch := incidentChange{Action: action, Assignee: strings.TrimSpace(c.PostForm("assignee")), Body: c.PostForm("body")}
		if action == "link" {
			t, perr := strconv.ParseUint(c.PostForm("ticket_id"), 10, 32)
			if perr != nil {
				s.uiError(c, http.StatusBadRequest, "ticket_id: a ticket number")
				return
			}
			ch.TicketID = uint(t)
		}
		_, _, err = s.changeIncident(c.Request.Context(), p, id, ch)
	}
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/incidents/%d", id))
}

type ticketsData struct {
	Tickets    []store.Ticket
	Form       ticketRequest
	Errors     []string
	Priorities []string
	CanAct     bool
}

func (s *Service) ticketsPage(c *gin.Context) {
	form := ticketRequest{Priority: "P3"}
	if v, err := strconv.ParseUint(c.Query("incident"), 10, 32); err == nil {
		form.IncidentID = uint(v)
		if inc, err := s.store.GetIncident(c.Request.Context(), form.IncidentID); err == nil {
			form.Title, form.Cluster = inc.Title, inc.Cluster
			if len(inc.Topics) == 1 {
				form.Topic = inc.Topics[0]
			}
			if len(inc.Groups) == 1 {
				form.Group = inc.Groups[0]
			}
		}
	}
	s.renderTickets(c, http.StatusOK, form, nil)
}

func (s *Service) renderTickets(c *gin.Context, code int, form ticketRequest, errs []string) {
	ts, err := s.store.ListTickets(c.Request.Context(), store.TicketFilter{Limit: 200})
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.render(c, code, "tickets", "layout", pageData{Title: "Tickets", Nav: "tickets", Data: ticketsData{
		Tickets: ts, Form: form, Errors: errs, Priorities: store.Priorities, CanAct: who(c).Role.Allows(store.RoleOperator)}})
}

func (s *Service) uiFileTicket(c *gin.Context) {
	req := ticketRequest{Title: c.PostForm("title"), Description: c.PostForm("description"), Cluster: strings.TrimSpace(c.PostForm("cluster")),
		Topic: strings.TrimSpace(c.PostForm("topic")), Group: strings.TrimSpace(c.PostForm("group")), Priority: c.PostForm("priority"),
		Assignee: strings.TrimSpace(c.PostForm("assignee"))}
	var errs []string
	if v := c.PostForm("incident_id"); v != "" {
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			errs = append(errs, "incident_id: not a number")
		}
		req.IncidentID = uint(id)
	}
	if err := req.validate(); err != nil {
		var fe fieldErrors
		if errors.As(err, &fe) {
			errs = append(errs, fe...)
		}
	}
	if len(errs) > 0 {
		s.renderTickets(c, http.StatusBadRequest, req, errs)
		return
	}
	t, err := s.fileTicket(c.Request.Context(), who(c), &req)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/tickets/%d", t.ID))
}

type ticketPageData struct {
	Ticket   *store.TicketDetail
	Statuses []string
	CanAct   bool
}

func (s *Service) ticketPage(c *gin.Context) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		s.uiError(c, http.StatusNotFound, "no such ticket")
		return
	}
	d, err := s.store.TicketDetail(c.Request.Context(), uint(id))
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.render(c, http.StatusOK, "ticket", "layout", pageData{Title: fmt.Sprintf("Ticket #%d", id), Nav: "tickets",
		Data: ticketPageData{Ticket: d, Statuses: store.TicketStatuses, CanAct: who(c).Role.Allows(store.RoleOperator)}})
}

func (s *Service) uiTicketAction(c *gin.Context) {
	id64, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		s.uiError(c, http.StatusNotFound, "no such ticket")
		return
	}
	action := c.Request.URL.Path[strings.LastIndex(c.Request.URL.Path, "/")+1:]
	ch := ticketChange{Action: action, Status: c.PostForm("status"), Assignee: strings.TrimSpace(c.PostForm("assignee")), Body: c.PostForm("body")}
	if _, _, err := s.changeTicket(c.Request.Context(), who(c), uint(id64), ch); err != nil {
		s.uiStoreError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/tickets/%d", id64))
}

type clusterData struct {
	Snapshot *snapshot.Snapshot
	Alarms   []store.AlarmInstance
}

// clusterCache keeps the Cluster health page's snapshot for
// cluster_cache_age, so visits do not each run a live snapshot against the
// brokers; concurrent visits after it ages share one capture.
type clusterCache struct {
	mu       sync.Mutex
	snap     *snapshot.Snapshot
	at       time.Time
	captures int // for tests
	flight   singleflight.Group
}

// clusterSnapshot returns a cluster snapshot no older than cluster_cache_age.
func (s *Service) clusterSnapshot(ctx context.Context) *snapshot.Snapshot {
	cc := &s.cluster
	cc.mu.Lock()
	if cc.snap != nil && s.store.Now().Sub(cc.at) <= s.cfg.ClusterCacheAge {
		snap := cc.snap
		cc.mu.Unlock()
		return snap
	}
	cc.mu.Unlock()
	v, _, _ := cc.flight.Do("cluster", func() (any, error) {
		// Shared by every waiting visitor: not cancelled with the first one.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		snap := snapshot.RedactSnapshot(s.capturer.Capture(cctx, snapshot.Target{}, s.store.Now()))
		cc.mu.Lock()
		cc.snap, cc.at = snap, s.store.Now()
		cc.captures++
		cc.mu.Unlock()
		return snap, nil
	})
	return v.(*snapshot.Snapshot)
}

func (s *Service) clusterPage(c *gin.Context) {
	snap := s.clusterSnapshot(c.Request.Context())
	alarms, err := s.store.FiringAlarms(c.Request.Context(), 200)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.render(c, http.StatusOK, "cluster", "layout", pageData{Title: "Cluster health", Nav: "cluster", Data: clusterData{snap, alarms}})
}

type slaData struct {
	Report *sla.Report
}

func (s *Service) slaPage(c *gin.Context) {
	now := s.store.Now()
	incs, err := s.store.IncidentsDetectedSince(c.Request.Context(), now.Add(-s.cfg.SLAWindow))
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.render(c, http.StatusOK, "sla", "layout", pageData{Title: "SLA", Nav: "sla",
		Data: slaData{sla.Compute(incs, s.cfg.SLATargets, now.Add(-s.cfg.SLAWindow), now)}})
}
