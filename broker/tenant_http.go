package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/internal/weblisten"
)

// tenantHandler serves the tenant and plan management API (adminapi/tenants.go lists it). Any
// broker answers reads from its copy of the metadata log; writes are carried out by the active
// controller, which writes them to the metadata log, and the other brokers answer 503 with the
// controller's id in adminapi.ControllerHeader, so that clients try the next broker. Writes need an admin: a request the listener's web config
// authenticated (and, with admin.write.users, one of those users), or any request on a
// loopback-only listener without web config; anything else gets 403.
func (b *Broker) tenantHandler(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/tenants", func(w http.ResponseWriter, r *http.Request) {
		out := adminapi.TenantList{Tenants: []adminapi.Tenant{}}
		for _, t := range b.quorum.Image().SortedTenants() {
			out.Tenants = append(out.Tenants, t.Tenant)
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/v1/tenants/{name}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := b.quorum.Image().Tenants[r.PathValue("name")]
		if !ok {
			writeAPIError(w, http.StatusNotFound, fmt.Sprintf("tenant %q does not exist", r.PathValue("name")))
			return
		}
		writeJSON(w, t.Tenant)
	})
	mux.HandleFunc("GET /api/v1/tenants/{name}/usage", func(w http.ResponseWriter, r *http.Request) {
		u, ok := b.tenantUsage(r.PathValue("name"))
		if !ok {
			writeAPIError(w, http.StatusNotFound, fmt.Sprintf("tenant %q does not exist", r.PathValue("name")))
			return
		}
		writeJSON(w, u)
	})
	mux.HandleFunc("PUT /api/v1/tenants/{name}", func(w http.ResponseWriter, r *http.Request) {
		var t adminapi.Tenant
		if !b.adminWrite(w, r, &t) {
			return
		}
		if t.Name == "" {
			t.Name = r.PathValue("name")
		}
		if t.Name != r.PathValue("name") {
			writeAPIError(w, http.StatusBadRequest, fmt.Sprintf("name: %q differs from the path's %q", t.Name, r.PathValue("name")))
			return
		}
		stored, err := b.quorum.PutTenant(r.Context(), t)
		if b.writeTenantError(w, err) {
			return
		}
		writeJSON(w, stored)
	})
	mux.HandleFunc("DELETE /api/v1/tenants/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !b.adminWrite(w, r, nil) {
			return
		}
		if b.writeTenantError(w, b.quorum.DeleteTenant(r.Context(), r.PathValue("name"))) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/plans", func(w http.ResponseWriter, r *http.Request) {
		out := adminapi.PlanList{Plans: b.quorum.Image().SortedPlans()}
		if out.Plans == nil {
			out.Plans = []adminapi.Plan{}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/v1/plans/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := b.quorum.Image().Plans[r.PathValue("name")]
		if !ok {
			writeAPIError(w, http.StatusNotFound, fmt.Sprintf("plan %q does not exist", r.PathValue("name")))
			return
		}
		writeJSON(w, p)
	})
	mux.HandleFunc("PUT /api/v1/plans/{name}", func(w http.ResponseWriter, r *http.Request) {
		var p adminapi.Plan
		if !b.adminWrite(w, r, &p) {
			return
		}
		if p.Name == "" {
			p.Name = r.PathValue("name")
		}
		if p.Name != r.PathValue("name") {
			writeAPIError(w, http.StatusBadRequest, fmt.Sprintf("name: %q differs from the path's %q", p.Name, r.PathValue("name")))
			return
		}
		stored, err := b.quorum.PutPlan(r.Context(), p)
		if b.writeTenantError(w, err) {
			return
		}
		writeJSON(w, stored)
	})
}

// adminWrite checks that the request may change tenants and plans, that this broker is the
// controller, and decodes its body into v (when not nil). It answers and returns false otherwise.
func (b *Broker) adminWrite(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := b.adminWriteAllowed(r); err != nil {
		writeAPIError(w, http.StatusForbidden, err.Error())
		return false
	}
	if !b.quorum.IsController() {
		b.writeTenantError(w, metadata.ErrNotController)
		return false
	}
	if v == nil {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, adminapi.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeAPIError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeAPIError(w, http.StatusBadRequest, "body: more than one JSON document")
		return false
	}
	return true
}

// adminListenerKey is the context key of the weblisten.Listener a request came in on.
type adminListenerKey struct{}

// withAdminListener tells the handlers which listener a request came in on, which says whether
// requests are authenticated or local.
func withAdminListener(ln *weblisten.Listener, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminListenerKey{}, ln)))
	})
}

// adminWriteAllowed says why a request may not change tenants and plans, nil if it may.
func (b *Broker) adminWriteAllowed(r *http.Request) error {
	ln, _ := r.Context().Value(adminListenerKey{}).(*weblisten.Listener)
	switch {
	case ln == nil:
		return errors.New("this listener serves no changes")
	case ln.WebAuth():
		users := b.cfg.Tenants.AdminWriteUsers
		if users == "" {
			return nil
		}
		u, _, ok := r.BasicAuth()
		if ok && slices.Contains(strings.Split(users, ","), u) {
			return nil
		}
		return fmt.Errorf("only the users of admin.write.users may change tenants and plans")
	case ln.Loopback():
		return nil
	default:
		return errors.New("changing tenants and plans needs an authenticated admin listener: give web.config.file with basic_auth_users or client certificates, or bind admin.listen to loopback")
	}
}

// writeTenantError answers err of a tenant operation with its status and returns true, or
// returns false for nil.
func (b *Broker) writeTenantError(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	status := http.StatusInternalServerError
	msg := err.Error()
	switch {
	case errors.Is(err, metadata.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, metadata.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, metadata.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, metadata.ErrNotController):
		// 503 with the controller's id in a header: every client that tries the next broker on a
		// 5xx (the ticket service's too) finds the controller.
		status = http.StatusServiceUnavailable
		id := b.quorum.ControllerID()
		w.Header().Set(adminapi.ControllerHeader, strconv.Itoa(int(id)))
		msg = fmt.Sprintf("broker %d is not the controller; changes go to the controller (broker %d)", b.cfg.NodeID, id)
		if id < 0 {
			msg = "the cluster has no controller right now"
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		b.logger.Warn("tenant operation failed", "err", err)
	}
	writeAPIError(w, status, msg)
	return true
}

func writeAPIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(adminapi.Error{Error: msg})
}

// tenantUsage is this broker's usage figures of a tenant.
func (b *Broker) tenantUsage(name string) (adminapi.TenantUsage, bool) {
	t := b.tenants.current()
	e := t.byName[name]
	if e == nil {
		return adminapi.TenantUsage{}, false
	}
	img := b.quorum.Image()
	disk, _ := b.tenants.localTenantDisk(t, img)
	u := adminapi.TenantUsage{Tenant: name, BrokerID: b.cfg.NodeID, BytesIn: counterValue(e.meter.bytesIn), BytesOut: counterValue(e.meter.bytesOut),
		Requests: counterValue(e.meter.requests), DiskBytes: disk[name]}
	var m dto.Metric
	if e.meter.throttle.Write(&m) == nil {
		u.ThrottleSeconds = m.GetCounter().GetValue()
	}
	for topic, te := range t.byTopic {
		if te == e {
			u.Partitions += len(img.Topics[topic].Partitions)
		}
	}
	b.tenants.mu.Lock()
	u.Connections = b.tenants.conns[name]
	b.tenants.mu.Unlock()
	return u, true
}

func counterValue(c prometheus.Counter) uint64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return uint64(m.GetCounter().GetValue())
}
