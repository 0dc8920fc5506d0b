package tickets

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

// ticketRequest is the body of POST /api/v1/tickets.
type ticketRequest struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Cluster     string `json:"cluster"`
	Topic       string `json:"topic"`
	Group       string `json:"group"`
	Priority    string `json:"priority"`
	Assignee    string `json:"assignee"`
	// IncidentID links the new ticket to an incident in the same transaction.
	IncidentID uint `json:"incident_id"`
}

func (r *ticketRequest) validate() error {
	var fe fieldErrors
	fe.text("title", r.Title, 1, maxTitle)
	fe.text("description", r.Description, 0, maxText)
	fe.ref("cluster", r.Cluster)
	fe.ref("topic", r.Topic)
	fe.ref("group", r.Group)
	if r.Priority == "" {
		r.Priority = "P3"
	}
	fe.oneOf("priority", r.Priority, store.Priorities)
	fe.name("assignee", r.Assignee, false)
	return fe.err()
}

func (s *Service) createTicket(c *gin.Context) {
	var req ticketRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	if err := req.validate(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	t, err := s.fileTicket(c, &req, who(c).Name)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

// fileTicket creates a validated ticket, linked to an incident if asked.
func (s *Service) fileTicket(c *gin.Context, req *ticketRequest, actor string) (*store.Ticket, error) {
	t := &store.Ticket{Title: req.Title, Description: req.Description, Cluster: req.Cluster, Topic: req.Topic,
		GroupName: req.Group, Priority: req.Priority, Status: "new", Assignee: req.Assignee, Reporter: actor}
	if err := s.store.CreateTicketLinked(c.Request.Context(), t, actor, req.IncidentID); err != nil {
		return nil, err
	}
	s.ticketEvent(c.Request.Context(), notify.TicketFiled, actor, "", t.ID, t)
	if req.IncidentID != 0 {
		s.incidentEvent(c.Request.Context(), notify.IncidentTicketLinked, actor, fmt.Sprintf("ticket #%d", t.ID), req.IncidentID, nil)
	}
	return t, nil
}

func (s *Service) listTickets(c *gin.Context) {
	var fe fieldErrors
	f := store.TicketFilter{Status: c.Query("status"), Priority: c.Query("priority"), Assignee: c.Query("assignee")}
	if f.Status != "" {
		fe.oneOf("status", f.Status, append([]string{"open"}, store.TicketStatuses...))
	}
	if f.Priority != "" {
		fe.oneOf("priority", f.Priority, store.Priorities)
	}
	fe.name("assignee", f.Assignee, false)
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	limit, ok := queryLimit(c)
	if !ok {
		return
	}
	f.Limit = limit
	ts, err := s.store.ListTickets(c.Request.Context(), f)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if ts == nil {
		ts = []store.Ticket{}
	}
	c.JSON(http.StatusOK, gin.H{"tickets": ts})
}

func (s *Service) getTicket(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	d, err := s.store.TicketDetail(c.Request.Context(), id)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

func (s *Service) commentTicket(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var req commentRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	var fe fieldErrors
	fe.text("body", req.Body, 1, maxText)
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	cm, err := s.store.CommentTicket(c.Request.Context(), id, who(c).Name, req.Body)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	s.ticketEvent(c.Request.Context(), notify.TicketCommented, who(c).Name, req.Body, id, nil)
	c.JSON(http.StatusCreated, cm)
}

type statusRequest struct {
	Status string `json:"status"`
}

func (s *Service) ticketStatus(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var req statusRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	var fe fieldErrors
	fe.oneOf("status", req.Status, store.TicketStatuses)
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	t, err := s.store.SetTicketStatus(c.Request.Context(), id, who(c).Name, req.Status)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	s.ticketEvent(c.Request.Context(), notify.TicketStatus, who(c).Name, t.Status, id, t)
	c.JSON(http.StatusOK, t)
}

func (s *Service) assignTicket(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var req assignRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	var fe fieldErrors
	fe.name("assignee", req.Assignee, false)
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	t, err := s.store.AssignTicket(c.Request.Context(), id, who(c).Name, req.Assignee)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	s.ticketEvent(c.Request.Context(), notify.TicketAssigned, who(c).Name, t.Assignee, id, t)
	c.JSON(http.StatusOK, t)
}

type tokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (s *Service) createToken(c *gin.Context) {
	var req tokenRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	var fe fieldErrors
	fe.name("name", req.Name, true)
	role, ok := store.ParseRole(req.Role)
	if !ok {
		fe.add("role", "one of viewer, operator, admin")
	}
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	tok, _, err := s.store.CreateTokenBy(c.Request.Context(), req.Name, role, who(c).Name)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"name": req.Name, "role": role, "token": tok})
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
	if err := s.store.DeleteToken(c.Request.Context(), id); err != nil {
		s.storeFail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (s *Service) createUser(c *gin.Context) {
	var req userRequest
	if !decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		return
	}
	role, fe := validateUser(req)
	if err := fe.err(); err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.store.CreateUser(c.Request.Context(), req.Username, req.Password, role); err != nil {
		if store.IsUniqueViolation(err) {
			fail(c, http.StatusConflict, "username: taken")
			return
		}
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"username": req.Username, "role": role})
}
