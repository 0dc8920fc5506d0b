package tickets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/store"
)

// Accounts, tokens and silences in the service layer; every change here is
// written to the audit log, in the transaction of the change where the store
// makes it.

// maxTokenTTL bounds an API token's life.
const maxTokenTTL = 366 * 24 * time.Hour

type tokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// ExpiresIn is a Go duration such as 720h; token_ttl by default.
	ExpiresIn string `json:"expires_in"`
}

// createToken mints a token owned by the user p acts for.
func (s *Service) createToken(ctx context.Context, p principal, req tokenRequest) (string, *store.APIToken, error) {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return "", nil, err
	}
	var fe fieldErrors
	fe.name("name", req.Name, true)
	role, ok := store.ParseRole(req.Role)
	if !ok {
		fe.add("role", "one of viewer, operator, admin")
	}
	ttl := s.cfg.TokenTTL
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 || d > maxTokenTTL {
			fe.add("expires_in", "a duration such as 720h, at most %s", maxTokenTTL)
		}
		ttl = d
	}
	if err := fe.err(); err != nil {
		return "", nil, err
	}
	return s.store.MintToken(ctx, store.NewToken{Name: req.Name, Role: role, OwnerID: p.UserID, CreatedBy: p.Name, TTL: ttl})
}

func (s *Service) revokeToken(ctx context.Context, p principal, id uint) error {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return err
	}
	return s.store.DeleteToken(ctx, id, p.Name)
}

type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// validateUser checks a new user.
func validateUser(req userRequest) (store.Role, fieldErrors) {
	var fe fieldErrors
	fe.name("username", req.Username, true)
	if err := store.CheckPassword(req.Password); err != nil {
		fe = append(fe, err.Error())
	}
	role, ok := store.ParseRole(req.Role)
	if !ok {
		fe.add("role", "one of viewer, operator, admin")
	}
	return role, fe
}

func (s *Service) createUser(ctx context.Context, p principal, req userRequest) (store.Role, error) {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return "", err
	}
	role, fe := validateUser(req)
	if err := fe.err(); err != nil {
		return "", err
	}
	return role, s.store.CreateUserBy(ctx, req.Username, req.Password, role, p.Name)
}

// userChange is an admin's change of a user: role, disable, enable,
// password (reset) or tenant (membership; empty for none).
type userChange struct {
	Action   string
	Role     string
	Password string
	Tenant   string
}

func (s *Service) changeUser(ctx context.Context, p principal, id uint, ch userChange) (*store.User, error) {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return nil, err
	}
	switch ch.Action {
	case "role":
		role, ok := store.ParseRole(ch.Role)
		if !ok {
			return nil, fieldErrors{"role: one of viewer, operator, admin"}
		}
		return s.store.SetUserRole(ctx, id, role, p.Name)
	case "disable", "enable":
		return s.store.SetUserDisabled(ctx, id, ch.Action == "disable", p.Name)
	case "password":
		if err := store.CheckPassword(ch.Password); err != nil {
			return nil, fieldErrors{err.Error()}
		}
		return s.store.ResetPassword(ctx, id, ch.Password, p.Name)
	case "tenant":
		return s.setUserTenant(ctx, p, id, ch.Tenant)
	}
	return nil, fieldErrors{"action: one of role, disable, enable, password, tenant"}
}

// changeOwnPassword lets a logged-in user change their password; the
// session (cookie value) they do it from stays, their others end.
func (s *Service) changeOwnPassword(ctx context.Context, p principal, current, next, confirm, session string) error {
	if p.UserID == 0 || p.Token {
		return errForbidden{need: "logged-in user", have: p.Role}
	}
	var fe fieldErrors
	if current == "" {
		fe.add("current_password", "required")
	}
	if next != confirm {
		fe.add("confirm_password", "does not match the new password")
	}
	if err := store.CheckPassword(next); err != nil {
		fe = append(fe, "new_"+err.Error())
	}
	if next == current && current != "" {
		fe.add("new_password", "must differ from the current one")
	}
	if err := fe.err(); err != nil {
		return err
	}
	return s.store.ChangePassword(ctx, p.UserID, current, next, session)
}

// silenceRequest is a new silence, from the Silences page or the API.
type silenceRequest struct {
	Matchers string `json:"matchers"`
	Duration string `json:"duration"`
	Comment  string `json:"comment"`
}

// errNoSilences is returned when alerting_url is not set.
var errNoSilences = errors.New("silences are not configured: set alerting_url")

// createSilence validates and creates a silence in alerting on p's word.
func (s *Service) createSilence(ctx context.Context, p principal, req silenceRequest) (string, error) {
	if err := authorize(p, store.RoleOperator); err != nil {
		return "", err
	}
	if s.silences == nil {
		return "", errNoSilences
	}
	var fe fieldErrors
	ms, err := silences.ParseMatchers(req.Matchers)
	if err != nil {
		fe.add("matchers", "%s", err)
	}
	dur, err := time.ParseDuration(req.Duration)
	if err != nil || dur <= 0 || dur > maxSilence {
		fe.add("duration", "a duration such as 30m or 2h, at most %s", maxSilence)
	}
	fe.text("comment", req.Comment, 1, 2000)
	if err := fe.err(); err != nil {
		return "", err
	}
	now := time.Now()
	id, err := s.silences.Create(ctx, silences.Silence{Matchers: ms, StartsAt: now, EndsAt: now.Add(dur), CreatedBy: p.Name, Comment: req.Comment})
	if err != nil {
		return "", err
	}
	if err := s.store.Audit(ctx, p.Name, "silence.create", "silence "+id,
		fmt.Sprintf("%s for %s: %s", silences.FormatMatchers(ms), dur, req.Comment)); err != nil {
		return id, err
	}
	return id, nil
}

// expireSilence expires a silence in alerting on p's word.
func (s *Service) expireSilence(ctx context.Context, p principal, id string) error {
	if err := authorize(p, store.RoleOperator); err != nil {
		return err
	}
	if s.silences == nil {
		return errNoSilences
	}
	if err := s.silences.Expire(ctx, id); err != nil {
		return err
	}
	return s.store.Audit(ctx, p.Name, "silence.expire", "silence "+id, "")
}
