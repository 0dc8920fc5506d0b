package tickets

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicemq/sluice/tickets/store"
)

// The service layer: every change of an incident, a ticket, a user, a token
// or a silence goes through one function here, whichever door it came in by
// (web UI, JSON API, Slack button). The function validates the input, checks
// the caller's role, makes the change in one store transaction (which also
// writes the outbox message that announces it, or the audit event), and wakes
// the workers. Handlers only parse, call and render.

// errForbidden is a role check that failed.
type errForbidden struct{ need, have store.Role }

func (e errForbidden) Error() string {
	return fmt.Sprintf("%s role required (you are %s)", e.need, e.have)
}

func authorize(p principal, min store.Role) error {
	if !p.Role.Allows(min) {
		return errForbidden{min, p.Role}
	}
	return nil
}

// incidentChange is one change of an incident.
type incidentChange struct {
	// Action is ack, resolve, close, assign, comment or link.
	Action   string
	Assignee string
	// Body is the comment, or the note of a resolve.
	Body     string
	TicketID uint
}

// changeIncident applies ch to incident id on p's word. It returns the
// incident after the change and, for a comment, the comment.
func (s *Service) changeIncident(ctx context.Context, p principal, id uint, ch incidentChange) (*store.Incident, *store.Comment, error) {
	if err := authorize(p, store.RoleOperator); err != nil {
		return nil, nil, err
	}
	var fe fieldErrors
	switch ch.Action {
	case "assign":
		fe.name("assignee", ch.Assignee, false)
	case "comment":
		fe.text("body", ch.Body, 1, maxText)
	case "resolve":
		fe.text("note", ch.Body, 0, maxText)
	case "link":
		if ch.TicketID == 0 {
			fe.add("ticket_id", "a ticket number")
		}
	case "ack", "close":
	default:
		fe.add("action", "one of ack, resolve, close, assign, comment, link")
	}
	if err := fe.err(); err != nil {
		return nil, nil, err
	}
	var (
		inc *store.Incident
		cm  *store.Comment
		err error
	)
	switch ch.Action {
	case "ack":
		inc, err = s.store.AckIncident(ctx, id, p.Name)
	case "resolve":
		inc, err = s.store.ResolveIncident(ctx, id, p.Name, ch.Body)
	case "close":
		inc, err = s.store.CloseIncident(ctx, id, p.Name)
	case "assign":
		inc, err = s.store.AssignIncident(ctx, id, p.Name, ch.Assignee)
	case "comment":
		cm, err = s.store.CommentIncident(ctx, id, p.Name, ch.Body)
	case "link":
		err = s.store.LinkTicket(ctx, id, ch.TicketID, p.Name)
	}
	if err != nil {
		return nil, nil, err
	}
	s.kick()
	if inc == nil {
		inc, err = s.store.GetIncident(ctx, id)
	}
	return inc, cm, err
}

// ticketChange is one change of a ticket.
type ticketChange struct {
	// Action is status, assign or comment.
	Action   string
	Status   string
	Assignee string
	Body     string
}

// changeTicket applies ch to ticket id on p's word.
func (s *Service) changeTicket(ctx context.Context, p principal, id uint, ch ticketChange) (*store.Ticket, *store.Comment, error) {
	if err := authorize(p, store.RoleOperator); err != nil {
		return nil, nil, err
	}
	var fe fieldErrors
	switch ch.Action {
	case "status":
		fe.oneOf("status", ch.Status, store.TicketStatuses)
	case "assign":
		fe.name("assignee", ch.Assignee, false)
	case "comment":
		fe.text("body", ch.Body, 1, maxText)
	default:
		fe.add("action", "one of status, assign, comment")
	}
	if err := fe.err(); err != nil {
		return nil, nil, err
	}
	var (
		t   *store.Ticket
		cm  *store.Comment
		err error
	)
	switch ch.Action {
	case "status":
		t, err = s.store.SetTicketStatus(ctx, id, p.Name, ch.Status)
	case "assign":
		t, err = s.store.AssignTicket(ctx, id, p.Name, ch.Assignee)
	case "comment":
		cm, err = s.store.CommentTicket(ctx, id, p.Name, ch.Body)
	}
	if err != nil {
		return nil, nil, err
	}
	s.kick()
	return t, cm, nil
}

// fileTicket validates and files a ticket, linked to an incident if asked.
func (s *Service) fileTicket(ctx context.Context, p principal, req *ticketRequest) (*store.Ticket, error) {
	if err := authorize(p, store.RoleOperator); err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	t := &store.Ticket{Title: req.Title, Description: req.Description, Cluster: req.Cluster, Topic: req.Topic,
		GroupName: req.Group, Priority: req.Priority, Status: "new", Assignee: req.Assignee, Reporter: p.Name}
	if err := s.store.CreateTicketLinked(ctx, t, p.Name, req.IncidentID); err != nil {
		return nil, err
	}
	s.kick()
	return t, nil
}

// errorStatus maps an error of the service layer to an HTTP status and the
// message the caller may see; database errors are logged, not shown.
func (s *Service) errorStatus(path string, err error) (int, string) {
	var fe fieldErrors
	var fb errForbidden
	var pe *store.PasswordError
	switch {
	case errors.As(err, &fe):
		return 400, fe.Error()
	case errors.As(err, &fb):
		return 403, fb.Error()
	case errors.Is(err, store.ErrWrongPassword):
		return 400, "current_password: wrong password"
	case errors.Is(err, store.ErrNotFound):
		return 404, err.Error()
	case errors.Is(err, store.ErrConflict):
		return 409, err.Error()
	case errors.As(err, &pe):
		return 400, pe.Error()
	}
	if code, msg, ok := tenantErrorStatus(err); ok {
		return code, msg
	}
	s.log.Error("database", "path", path, "err", err)
	return 500, "database error"
}
