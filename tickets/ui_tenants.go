package tickets

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// The tenant pages: the list of tenants and plans (admins create and change
// them), a tenant's page (usage now, this month, statements, members) and a
// monthly statement with charts. Tenant members reach only their own
// tenant's pages (tenantFence, and the service layer again).

func (s *Service) tenantUIRoutes(w *gin.RouterGroup, admin gin.HandlerFunc) {
	w.GET("/tenants", s.tenantsPage)
	w.POST("/tenants", admin, s.uiSaveTenant)
	w.POST("/plans", admin, s.uiSavePlan)
	w.GET("/tenants/:name", s.tenantPage)
	w.POST("/tenants/:name/delete", admin, s.uiDeleteTenant)
	w.POST("/tenants/:name/members", admin, s.uiTenantMember)
	w.GET("/tenants/:name/statements/:period", s.statementPage)
	w.GET("/statements/:period", s.uiStatementsCSV)
}

type tenantsData struct {
	Tenants  []Tenant
	Plans    []Plan
	Period   string
	Admin    bool
	Errors   []string
	Form     tenantForm
	PlanForm planForm
}

// tenantForm is the create/update form of a tenant, as typed.
type tenantForm struct {
	Name, Plan, Principals, Prefixes, SlackChannel, Email string
}

// planForm is the plan form, in MB/s and GB as typed.
type planForm struct {
	Name, ProduceMBs, FetchMBs, DiskGB, Partitions, Connections string
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (s *Service) tenantsPage(c *gin.Context) {
	p := who(c)
	if p.Tenant != "" {
		c.Redirect(http.StatusSeeOther, "/tenants/"+url.PathEscape(p.Tenant))
		return
	}
	s.renderTenants(c, http.StatusOK, tenantsData{})
}

func (s *Service) renderTenants(c *gin.Context, code int, d tenantsData) {
	ctx, p := c.Request.Context(), who(c)
	var err error
	if d.Tenants, err = s.listTenants(ctx, p); err != nil {
		d.Errors = append(d.Errors, s.uiErrText(c, err))
	}
	if d.Plans, err = s.listPlans(ctx, p); err != nil && !errors.Is(err, errNoTenantAdmin) {
		d.Errors = append(d.Errors, s.uiErrText(c, err))
	}
	d.Period, d.Admin = currentPeriod(s.store.Now()), p.Role.Allows(store.RoleAdmin)
	s.render(c, code, "tenants", "layout", pageData{Title: "Tenants", Nav: "tenants", Data: d})
}

// uiErrText is what a page shows of an error of the service layer.
func (s *Service) uiErrText(c *gin.Context, err error) string {
	_, msg := s.errorStatus(c.Request.URL.Path, err)
	return msg
}

func (s *Service) uiSaveTenant(c *gin.Context) {
	f := tenantForm{Name: strings.TrimSpace(c.PostForm("name")), Plan: strings.TrimSpace(c.PostForm("plan")),
		Principals: c.PostForm("principals"), Prefixes: c.PostForm("prefixes"),
		SlackChannel: strings.TrimSpace(c.PostForm("slack_channel")), Email: strings.TrimSpace(c.PostForm("email"))}
	t := Tenant{Name: f.Name, Plan: f.Plan, Principals: splitList(f.Principals), Prefixes: splitList(f.Prefixes),
		SlackChannel: f.SlackChannel, Email: f.Email}
	if _, err := s.saveTenant(c.Request.Context(), who(c), t); err != nil {
		code, msg := s.errorStatus(c.Request.URL.Path, err)
		s.renderTenants(c, code, tenantsData{Form: f, Errors: []string{msg}})
		return
	}
	c.Redirect(http.StatusSeeOther, "/tenants/"+url.PathEscape(t.Name))
}

// parseScaled reads a whole number of units (MB/s, GB) typed in a form.
func parseScaled(field, v string, unit int64, fe *fieldErrors) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > maxPlanValue/unit {
		fe.add(field, "a whole number from 0 (unlimited)")
		return 0
	}
	return n * unit
}

// parseCount reads a count typed in a form (partitions, connections).
func parseCount(field, v string, fe *fieldErrors) int32 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || n < 0 {
		fe.add(field, "a whole number from 0 (unlimited) to %d", math.MaxInt32)
		return 0
	}
	return int32(n)
}

func (s *Service) uiSavePlan(c *gin.Context) {
	f := planForm{Name: strings.TrimSpace(c.PostForm("name")), ProduceMBs: c.PostForm("produce_mb_s"), FetchMBs: c.PostForm("fetch_mb_s"),
		DiskGB: c.PostForm("disk_gb"), Partitions: c.PostForm("partitions"), Connections: c.PostForm("connections")}
	var fe fieldErrors
	pl := Plan{Name: f.Name, ProduceBytesPerSecond: parseScaled("produce_mb_s", f.ProduceMBs, 1_000_000, &fe),
		FetchBytesPerSecond: parseScaled("fetch_mb_s", f.FetchMBs, 1_000_000, &fe), DiskBytes: parseScaled("disk_gb", f.DiskGB, 1_000_000_000, &fe),
		Partitions: parseCount("partitions", f.Partitions, &fe), Connections: parseCount("connections", f.Connections, &fe)}
	err := fe.err()
	if err == nil {
		_, err = s.savePlan(c.Request.Context(), who(c), pl)
	}
	if err != nil {
		code, msg := s.errorStatus(c.Request.URL.Path, err)
		s.renderTenants(c, code, tenantsData{PlanForm: f, Errors: []string{msg}})
		return
	}
	c.Redirect(http.StatusSeeOther, "/tenants")
}

func (s *Service) uiDeleteTenant(c *gin.Context) {
	if err := s.deleteTenant(c.Request.Context(), who(c), c.Param("name")); err != nil {
		s.uiStoreError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/tenants")
}

// uiTenantMember links (user_id, action=add) or unlinks (action=remove) a
// user and the tenant.
func (s *Service) uiTenantMember(c *gin.Context) {
	id, err := strconv.ParseUint(c.PostForm("user_id"), 10, 32)
	if err != nil || id == 0 {
		s.uiError(c, http.StatusBadRequest, "user_id: choose a user")
		return
	}
	tenant := c.Param("name")
	if c.PostForm("action") == "remove" {
		tenant = ""
	}
	if _, err := s.setUserTenant(c.Request.Context(), who(c), uint(id), tenant); err != nil {
		s.uiStoreError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/tenants/"+url.PathEscape(c.Param("name")))
}

type tenantData struct {
	Tenant    *Tenant
	Usage     *TenantUsage
	UsageErr  string
	Statement *Statement
	Periods   []string
	Members   []store.User
	Others    []store.User // users who could be linked
	Admin     bool
}

func (s *Service) tenantPage(c *gin.Context) {
	ctx, p, name := c.Request.Context(), who(c), c.Param("name")
	t, err := s.getTenant(ctx, p, name)
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	d := tenantData{Tenant: t, Admin: p.Role.Allows(store.RoleAdmin) && p.Tenant == ""}
	if d.Usage, err = s.tenantUsageNow(ctx, p, name); err != nil {
		d.UsageErr = s.uiErrText(c, err)
	}
	now := s.store.Now()
	if d.Statement, _, err = s.tenantStatement(ctx, p, name, currentPeriod(now)); err != nil {
		s.uiStoreError(c, err)
		return
	}
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := range 13 {
		d.Periods = append(d.Periods, currentPeriod(first.AddDate(0, -i, 0)))
	}
	if d.Admin {
		us, err := s.store.ListUsers(ctx)
		if err != nil {
			s.uiStoreError(c, err)
			return
		}
		for _, u := range us {
			switch {
			case u.Tenant == name:
				d.Members = append(d.Members, u)
			case u.Tenant == "" && u.Role != store.RoleAdmin && !u.Disabled():
				d.Others = append(d.Others, u)
			}
		}
	}
	s.render(c, http.StatusOK, "tenant", "layout", pageData{Title: "Tenant " + name, Nav: "tenants", Data: d})
}

type statementData struct {
	Statement *Statement
	Charts    []snapshot.Chart
}

func (s *Service) statementPage(c *gin.Context) {
	st, samples, err := s.tenantStatement(c.Request.Context(), who(c), c.Param("name"), c.Param("period"))
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	if c.Query("format") == "csv" {
		s.sendCSV(c, st.Period+"-"+st.Tenant, []Statement{*st})
		return
	}
	s.render(c, http.StatusOK, "statement", "layout", pageData{Title: fmt.Sprintf("Statement %s %s", st.Tenant, st.Period),
		Nav: "tenants", Data: statementData{Statement: st, Charts: statementCharts(samples)}})
}

func (s *Service) uiStatementsCSV(c *gin.Context) {
	sts, err := s.periodStatements(c.Request.Context(), who(c), c.Param("period"))
	if err != nil {
		s.uiStoreError(c, err)
		return
	}
	s.sendCSV(c, c.Param("period"), sts)
}

// statementCharts draws the month hour by hour: the highest per-minute
// bandwidth of each hour in MB/s, and the highest disk in GB. Charts are
// for people; the statement's figures are computed in integers.
func statementCharts(samples []store.TenantSample) []snapshot.Chart {
	in := snapshot.Series{Labels: map[string]string{"series": "produce (in)"}, Points: [][2]float64{}}
	out := snapshot.Series{Labels: map[string]string{"series": "fetch (out)"}, Points: [][2]float64{}}
	disk := snapshot.Series{Labels: map[string]string{"series": "disk"}, Points: [][2]float64{}}
	plan := snapshot.Series{Labels: map[string]string{"series": "plan produce"}, Points: [][2]float64{}}
	for i := 0; i < len(samples); {
		hour := samples[i].Minute / 60
		var maxIn, maxOut, maxDisk, planIn int64
		for ; i < len(samples) && samples[i].Minute/60 == hour; i++ {
			maxIn, maxOut = max(maxIn, samples[i].BytesIn), max(maxOut, samples[i].BytesOut)
			maxDisk, planIn = max(maxDisk, samples[i].DiskBytes), samples[i].PlanProduceBps
		}
		t := float64(hour * 3600)
		in.Points = append(in.Points, [2]float64{t, round3(float64(maxIn) / 60e6)})
		out.Points = append(out.Points, [2]float64{t, round3(float64(maxOut) / 60e6)})
		disk.Points = append(disk.Points, [2]float64{t, round3(float64(maxDisk) / 1e9)})
		plan.Points = append(plan.Points, [2]float64{t, round3(float64(planIn) / 1e6)})
	}
	return []snapshot.Chart{
		{Title: "Peak bandwidth per hour (MB/s): produce blue, fetch red, plan produce green", Series: []snapshot.Series{in, out, plan}},
		{Title: "Peak disk per hour (GB)", Series: []snapshot.Series{disk}},
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func init() {
	templateFuncs["gb"] = func(b int64) string { return decimal(b, 1_000_000_000, 3) + " GB" }
	templateFuncs["mbs"] = func(bps int64) string { return decimal(bps, 1_000_000, 3) + " MB/s" }
	templateFuncs["pct"] = func(bp int64) string { return decimal(bp, 100, 2) + "%" }
}

// decimal writes v/unit with places decimals, rounded down, in integers.
func decimal(v, unit int64, places int) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	scale := int64(1)
	for range places {
		scale *= 10
	}
	whole, frac := v/unit, (v%unit)*scale/unit
	return fmt.Sprintf("%s%d.%0*d", sign, whole, places, frac)
}
