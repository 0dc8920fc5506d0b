package tickets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/alertmanager"
	"github.com/sluicemq/sluice/tickets/sla"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// webhookBodyFactor is how much larger a webhook body may be than an API body:
// a group of a few thousand alerts is several MiB.
const webhookBodyFactor = 8

func (s *Service) alertmanagerWebhook(c *gin.Context) {
	max := s.cfg.MaxBodyBytes * webhookBodyFactor
	if ct := c.ContentType(); ct != "application/json" {
		s.webhookTotal.WithLabelValues("invalid").Inc()
		fail(c, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be application/json, not %q", ct))
		return
	}
	msg, err := alertmanager.Decode(http.MaxBytesReader(c.Writer, c.Request.Body, max))
	if err != nil {
		s.webhookTotal.WithLabelValues("invalid").Inc()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", max))
			return
		}
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	if msg.TruncatedAlerts > 0 {
		s.log.Warn("Alertmanager truncated a notification; raise max_alerts of the webhook receiver",
			"group_key", msg.GroupKey, "truncated_alerts", msg.TruncatedAlerts)
	}
	sig := msg.Signal()
	policy := s.intakePolicy(c.Request.Context(), sig)
	s.intakeMu.Lock()
	res, err := s.store.ApplyGroup(c.Request.Context(), sig, policy)
	s.intakeMu.Unlock()
	if err != nil {
		// 5xx: Alertmanager retries.
		s.webhookTotal.WithLabelValues("error").Inc()
		s.storeFail(c, err)
		return
	}
	s.webhookTotal.WithLabelValues("ok").Inc()
	s.kick()
	c.JSON(http.StatusOK, res)
}

var incidentStatuses = []string{"", "open", store.StatusTriggered, store.StatusAcknowledged, store.StatusResolved, store.StatusClosed}

// incidentView is an incident with its SLA standing.
type incidentView struct {
	store.Incident
	SLA sla.Status `json:"sla"`
}

func (s *Service) view(inc store.Incident) incidentView {
	return incidentView{inc, sla.Check(&inc, s.cfg.SLATargets, s.store.Now())}
}

func (s *Service) listIncidents(c *gin.Context) {
	var fe fieldErrors
	f := store.IncidentFilter{Status: c.Query("status"), Severity: c.Query("severity"), Cluster: c.Query("cluster")}
	fe.oneOf("status", f.Status, incidentStatuses)
	fe.ref("severity", f.Severity)
	fe.ref("cluster", f.Cluster)
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	f.Limit = limit
	incs, err := s.store.ListIncidents(c.Request.Context(), f)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	out := make([]incidentView, 0, len(incs))
	for _, inc := range incs {
		out = append(out, s.view(inc))
	}
	c.JSON(http.StatusOK, gin.H{"incidents": out})
}

type incidentDetailView struct {
	*store.IncidentDetail
	SLA sla.Status `json:"sla"`
}

func (s *Service) getIncident(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	d, err := s.store.IncidentDetail(c.Request.Context(), id)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, incidentDetailView{d, sla.Check(&d.Incident, s.cfg.SLATargets, s.store.Now())})
}

// apiIncidentChange answers a change of the incident in the path made through
// the service layer.
func (s *Service) apiIncidentChange(c *gin.Context, ch incidentChange) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	inc, cm, err := s.changeIncident(c.Request.Context(), who(c), id, ch)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	switch ch.Action {
	case "comment":
		c.JSON(http.StatusCreated, cm)
	case "link":
		c.JSON(http.StatusCreated, store.IncidentTicket{IncidentID: id, TicketID: ch.TicketID, CreatedAt: s.store.Now()})
	default:
		c.JSON(http.StatusOK, s.view(*inc))
	}
}

type noteRequest struct {
	Note string `json:"note"`
}

func (s *Service) ackIncident(c *gin.Context) {
	var req struct{}
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, true) {
		s.apiIncidentChange(c, incidentChange{Action: "ack"})
	}
}

func (s *Service) resolveIncident(c *gin.Context) {
	var req noteRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, true) {
		s.apiIncidentChange(c, incidentChange{Action: "resolve", Body: req.Note})
	}
}

func (s *Service) closeIncident(c *gin.Context) {
	var req struct{}
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, true) {
		s.apiIncidentChange(c, incidentChange{Action: "close"})
	}
}

type assignRequest struct {
	Assignee string `json:"assignee"`
}

func (s *Service) assignIncident(c *gin.Context) {
	var req assignRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		s.apiIncidentChange(c, incidentChange{Action: "assign", Assignee: req.Assignee})
	}
}

type commentRequest struct {
	Body string `json:"body"`
}

func (s *Service) commentIncident(c *gin.Context) {
	var req commentRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		s.apiIncidentChange(c, incidentChange{Action: "comment", Body: req.Body})
	}
}

type linkRequest struct {
	TicketID uint `json:"ticket_id"`
}

func (s *Service) linkTicket(c *gin.Context) {
	var req linkRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		s.apiIncidentChange(c, incidentChange{Action: "link", TicketID: req.TicketID})
	}
}

func (s *Service) loadSnapshot(c *gin.Context) (*store.Snapshot, *snapshot.Snapshot, bool) {
	id, ok := pathID(c)
	if !ok {
		return nil, nil, false
	}
	if _, err := s.store.GetIncident(c.Request.Context(), id); err != nil {
		s.storeFail(c, err)
		return nil, nil, false
	}
	rec, err := s.store.LatestSnapshot(c.Request.Context(), id, true)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, "no snapshot captured yet")
		return nil, nil, false
	} else if err != nil {
		s.storeFail(c, err)
		return nil, nil, false
	}
	var snap snapshot.Snapshot
	if err := json.Unmarshal([]byte(rec.Data), &snap); err != nil {
		s.storeFail(c, fmt.Errorf("snapshot %d: %w", rec.ID, err))
		return nil, nil, false
	}
	return rec, &snap, true
}

func (s *Service) getSnapshot(c *gin.Context) {
	rec, snap, ok := s.loadSnapshot(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": rec.ID, "reason": rec.Reason, "snapshot": snapshot.RedactSnapshot(snap)})
}

func (s *Service) getBundle(c *gin.Context) {
	_, snap, ok := s.loadSnapshot(c)
	if !ok {
		return
	}
	d, err := s.store.IncidentDetail(c.Request.Context(), snap.Target.IncidentID)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	alarms := slices.Clone(d.Alarms)
	for i := range alarms {
		alarms[i].Labels = snapshot.RedactMap(alarms[i].Labels)
		alarms[i].Annotations = snapshot.RedactMap(alarms[i].Annotations)
	}
	var buf bytes.Buffer
	err = snapshot.Bundle(&buf, snap, []snapshot.File{
		{Name: "incident.json", Data: d.Incident},
		{Name: "alarms.json", Data: alarms},
		{Name: "timeline.json", Data: d.Timeline},
		{Name: "comments.json", Data: d.Comments},
	})
	if err != nil {
		s.storeFail(c, err)
		return
	}
	name := fmt.Sprintf("sluice-incident-%d-%s.tar.gz", snap.Target.IncidentID, snap.CapturedAt.UTC().Format("20060102T150405Z"))
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Data(http.StatusOK, "application/gzip", buf.Bytes())
}

func (s *Service) recaptureSnapshot(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var req struct{}
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, true) {
		return
	}
	rec, err := s.captureSnapshot(c.Request.Context(), id, "captured by "+who(c).Name)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": rec.ID, "diagnosis": rec.Diagnosis, "captured_at": rec.CapturedAt})
}

func (s *Service) slaReport(c *gin.Context) {
	window := s.cfg.SLAWindow
	if w := c.Query("window"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 || d > 366*24*time.Hour {
			fail(c, http.StatusBadRequest, "window: a Go duration up to 8784h, such as 168h")
			return
		}
		window = d
	}
	now := s.store.Now()
	incs, err := s.store.IncidentsDetectedSince(c.Request.Context(), now.Add(-window))
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, sla.Compute(incs, s.cfg.SLATargets, now.Add(-window), now))
}
