package tickets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/alerting/notify/slack"
	"github.com/sluicemq/sluice/tickets/store"
)

// The buttons of this service's own Slack messages. Requests are verified by
// alerting/notify/slack's Handler (the app's signing secret, 5 minutes of
// clock skew); a press acts through the service layer as the operator
// "slack:<user id>", so it is announced through the outbox like any change.

// slackInteractions returns the handler of POST
// /api/v1/integrations/slack/interactions, or nil without a signing secret.
func (s *Service) slackInteractions() gin.HandlerFunc {
	st, secret, ok := s.notifier.SlackInteractions()
	if !ok {
		return nil
	}
	h := &slack.Handler{Store: st, SigningSecret: secret, Logger: s.log.With("component", "slack-interactions"), OnAction: s.slackAction}
	return gin.WrapH(h)
}

// slackAction performs a button press on the message of an incident or a
// ticket (rec.GroupKey is notify's "sluice-tickets/incident/7").
func (s *Service) slackAction(ctx context.Context, action string, rec slack.Record, user string) (string, error) {
	p := principal{Name: "slack:" + user, Role: store.RoleOperator}
	var id uint
	if _, err := fmt.Sscanf(rec.GroupKey, "sluice-tickets/incident/%d", &id); err == nil && id > 0 {
		return s.slackIncidentAction(ctx, p, id, action)
	}
	if _, err := fmt.Sscanf(rec.GroupKey, "sluice-tickets/ticket/%d", &id); err == nil && id > 0 {
		var ch ticketChange
		switch action {
		case slack.ActionAck:
			ch = ticketChange{Action: "status", Status: "in_progress"}
		case slack.ActionResolve:
			ch = ticketChange{Action: "status", Status: "resolved"}
		default:
			return "", nil
		}
		_, _, err := s.changeTicket(ctx, p, id, ch)
		return "", ignoreConflict(err)
	}
	return "", nil // not ours: a message of `sluice alerting`
}

func (s *Service) slackIncidentAction(ctx context.Context, p principal, id uint, action string) (string, error) {
	switch action {
	case slack.ActionAck:
		_, _, err := s.changeIncident(ctx, p, id, incidentChange{Action: "ack"})
		return "", ignoreConflict(err)
	case slack.ActionResolve:
		_, _, err := s.changeIncident(ctx, p, id, incidentChange{Action: "resolve", Body: "resolved from Slack"})
		return "", ignoreConflict(err)
	case slack.ActionSilence:
		d, err := s.store.IncidentDetail(ctx, id)
		if err != nil {
			return "", err
		}
		sid, err := s.createSilence(ctx, p, silenceRequest{Matchers: incidentMatchers(d), Duration: time.Hour.String(),
			Comment: fmt.Sprintf("Incident #%d: silenced for 1h from Slack", id)})
		if errors.Is(err, errNoSilences) {
			return "Silences are not configured in the ticket service (alerting_url).", nil
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Silenced for 1h by <@%s> (silence %s)", p.Name[len("slack:"):], sid), nil
	}
	return "", nil // Open is a link: nothing to do
}

// ignoreConflict makes a second press (already acknowledged, already
// resolved) a no-op: Slack retries and people double-click.
func ignoreConflict(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}
