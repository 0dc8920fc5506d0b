package tickets

import (
	"context"

	"github.com/sluicemq/sluice/tickets/notify"
)

// tenantRoute finds where the tenant of an incident's alarms (their tenant
// label, set by the tenant alerts of the default rule pack) wants its
// notifications, from the tenant in the metadata log. Without a tenant, a
// channel, or an answer from the brokers it returns nil: the event then
// goes to operations only, and the failed lookup is logged.
func (s *Service) tenantRoute(ctx context.Context, incidentID uint) *notify.TenantRoute {
	if s.tenants == nil {
		return nil
	}
	d, err := s.store.IncidentDetail(ctx, incidentID)
	if err != nil {
		return nil
	}
	name := ""
	for _, a := range d.Alarms {
		if a.Labels["tenant"] != "" {
			name = a.Labels["tenant"]
			break
		}
	}
	if name == "" {
		return nil
	}
	t, err := s.tenants.GetTenant(ctx, name)
	if err != nil {
		s.log.Warn("tenant alert: the tenant's own channel is not notified: cannot read the tenant", "incident", incidentID, "tenant", name, "err", err)
		return nil
	}
	if t.SlackChannel == "" && t.Email == "" {
		return nil
	}
	return &notify.TenantRoute{Tenant: t.Name, SlackChannel: t.SlackChannel, Email: t.Email}
}
