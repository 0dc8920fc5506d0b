package tickets

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// tenantAPIRoutes adds the tenant routes to the API group:
//
//	GET  /api/v1/tenants                              the tenants the caller may see
//	GET/PUT/DELETE /api/v1/tenants/:name              (PUT, DELETE: admin)
//	GET  /api/v1/tenants/:name/usage                  current counters from the cluster
//	GET  /api/v1/tenants/:name/statements/:period     statement (yyyy-mm) as JSON, ?format=csv for CSV
//	GET  /api/v1/statements/:period                   every visible tenant's statement as CSV, ?format=json
//	GET  /api/v1/plans; PUT /api/v1/plans/:name       (staff; PUT: admin)
//	POST /api/v1/users/:id/tenant {"tenant": name}    membership (admin; api_accounts.go)
func (s *Service) tenantAPIRoutes(api *gin.RouterGroup) {
	api.GET("/tenants", s.apiListTenants)
	api.GET("/tenants/:name", s.apiGetTenant)
	api.PUT("/tenants/:name", s.apiPutTenant)
	api.DELETE("/tenants/:name", s.apiDeleteTenant)
	api.GET("/tenants/:name/usage", s.apiTenantUsage)
	api.GET("/tenants/:name/statements/:period", s.apiTenantStatement)
	api.GET("/statements/:period", s.apiStatements)
	api.GET("/plans", s.apiListPlans)
	api.PUT("/plans/:name", s.apiPutPlan)
}

// tenantRoutes are the routes a tenant member may reach; the service
// layer then limits them to their own tenant.
var tenantRoutes = map[string]bool{
	"/api/v1/tenants": true, "/api/v1/tenants/:name": true, "/api/v1/tenants/:name/usage": true,
	"/api/v1/tenants/:name/statements/:period": true, "/api/v1/statements/:period": true,
	"/logout": true, "/account/password": true, "/tenants": true, "/tenants/:name": true,
	"/tenants/:name/statements/:period": true, "/statements/:period": true,
}

// tenantFence keeps tenant members out of everything but their tenant's
// pages and API: incidents, tickets, the cluster and the other tenants are
// the platform team's.
func (s *Service) tenantFence(c *gin.Context) {
	p := who(c)
	if p.Tenant == "" || tenantRoutes[c.FullPath()] {
		c.Next()
		return
	}
	if strings.HasPrefix(c.Request.URL.Path, "/api/") {
		fail(c, http.StatusForbidden, "tenant members may only use their tenant's API (/api/v1/tenants/"+p.Tenant+")")
		return
	}
	if c.Request.Method == http.MethodGet && c.FullPath() == "/incidents" {
		// The landing page after login.
		c.Redirect(http.StatusSeeOther, "/tenants/"+p.Tenant)
		c.Abort()
		return
	}
	s.uiError(c, http.StatusForbidden, "tenant members see only their tenant's pages")
}

// tenantErrorStatus maps the errors of the tenant API to an HTTP status.
func tenantErrorStatus(err error) (int, string, bool) {
	var be *brokerAPIError
	switch {
	case errors.Is(err, errNoTenantAdmin):
		return http.StatusServiceUnavailable, err.Error(), true
	case errors.Is(err, errBrokerUnreachable):
		return http.StatusBadGateway, "the brokers' admin API did not answer", true
	case errors.As(err, &be):
		switch be.Status {
		case http.StatusNotFound, http.StatusConflict:
			return be.Status, "cluster: " + be.Message, true
		case http.StatusUnauthorized, http.StatusForbidden:
			return http.StatusBadGateway, "the brokers' admin API refused the service's credentials", true
		}
		return http.StatusBadRequest, "cluster refused: " + be.Message, true
	}
	return 0, "", false
}

func (s *Service) apiListTenants(c *gin.Context) {
	ts, err := s.listTenants(c.Request.Context(), who(c))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if ts == nil {
		ts = []Tenant{}
	}
	c.JSON(http.StatusOK, gin.H{"tenants": ts})
}

func (s *Service) apiGetTenant(c *gin.Context) {
	t, err := s.getTenant(c.Request.Context(), who(c), c.Param("name"))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

func (s *Service) apiPutTenant(c *gin.Context) {
	var t Tenant
	if !decodeJSON(c, &t, s.cfg.MaxBodyBytes, false) {
		return
	}
	if t.Name != "" && t.Name != c.Param("name") {
		fail(c, http.StatusBadRequest, fmt.Sprintf("name: %q differs from the path's %q", t.Name, c.Param("name")))
		return
	}
	t.Name = c.Param("name")
	out, err := s.saveTenant(c.Request.Context(), who(c), t)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Service) apiDeleteTenant(c *gin.Context) {
	if err := s.deleteTenant(c.Request.Context(), who(c), c.Param("name")); err != nil {
		s.storeFail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Service) apiTenantUsage(c *gin.Context) {
	u, err := s.tenantUsageNow(c.Request.Context(), who(c), c.Param("name"))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}

func (s *Service) apiTenantStatement(c *gin.Context) {
	st, _, err := s.tenantStatement(c.Request.Context(), who(c), c.Param("name"), c.Param("period"))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if c.Query("format") == "csv" {
		s.sendCSV(c, st.Period+"-"+st.Tenant, []Statement{*st})
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Service) apiStatements(c *gin.Context) {
	sts, err := s.periodStatements(c.Request.Context(), who(c), c.Param("period"))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if c.Query("format") == "json" {
		c.JSON(http.StatusOK, gin.H{"statements": sts})
		return
	}
	s.sendCSV(c, c.Param("period"), sts)
}

// sendCSV answers with the statements CSV as a download.
func (s *Service) sendCSV(c *gin.Context, name string, sts []Statement) {
	var buf bytes.Buffer
	if err := writeStatementsCSV(&buf, sts); err != nil {
		s.storeFail(c, err)
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="sluice-statements-%s.csv"`, name))
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

func (s *Service) apiListPlans(c *gin.Context) {
	ps, err := s.listPlans(c.Request.Context(), who(c))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if ps == nil {
		ps = []Plan{}
	}
	c.JSON(http.StatusOK, gin.H{"plans": ps})
}

func (s *Service) apiPutPlan(c *gin.Context) {
	var pl Plan
	if !decodeJSON(c, &pl, s.cfg.MaxBodyBytes, false) {
		return
	}
	if pl.Name != "" && pl.Name != c.Param("name") {
		fail(c, http.StatusBadRequest, fmt.Sprintf("name: %q differs from the path's %q", pl.Name, c.Param("name")))
		return
	}
	pl.Name = c.Param("name")
	out, err := s.savePlan(c.Request.Context(), who(c), pl)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
