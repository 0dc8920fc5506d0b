package tickets

import (
	"net/http"

	"github.com/gin-gonic/gin"

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
	t, err := s.fileTicket(c.Request.Context(), who(c), &req)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
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

// apiTicketChange answers a change of the ticket in the path made through the
// service layer.
func (s *Service) apiTicketChange(c *gin.Context, ch ticketChange) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	t, cm, err := s.changeTicket(c.Request.Context(), who(c), id, ch)
	if err != nil {
		s.storeFail(c, err)
		return
	}
	if cm != nil {
		c.JSON(http.StatusCreated, cm)
		return
	}
	c.JSON(http.StatusOK, t)
}

func (s *Service) commentTicket(c *gin.Context) {
	var req commentRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		s.apiTicketChange(c, ticketChange{Action: "comment", Body: req.Body})
	}
}

type statusRequest struct {
	Status string `json:"status"`
}

func (s *Service) ticketStatus(c *gin.Context) {
	var req statusRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		s.apiTicketChange(c, ticketChange{Action: "status", Status: req.Status})
	}
}

func (s *Service) assignTicket(c *gin.Context) {
	var req assignRequest
	if decodeJSON(c, &req, s.cfg.MaxBodyBytes, false) {
		s.apiTicketChange(c, ticketChange{Action: "assign", Assignee: req.Assignee})
	}
}
