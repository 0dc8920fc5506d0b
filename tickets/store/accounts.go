package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// ErrWrongPassword is returned by ChangePassword when the current password
// does not match.
var ErrWrongPassword = errors.New("current password is wrong")

// NewToken describes an API token to mint.
type NewToken struct {
	Name string
	Role Role
	// OwnerID is the user the token belongs to, 0 for none (command line).
	OwnerID uint
	// CreatedBy is who minted it, for the list of tokens and the audit log.
	CreatedBy string
	// TTL is how long the token works; 0 for ever.
	TTL time.Duration
}

// CreateToken stores a new API token without an owner or expiry (the local
// stack's own token) and returns it; only its hash is kept.
func (s *Store) CreateToken(ctx context.Context, name string, role Role) (string, error) {
	tok, _, err := s.MintToken(ctx, NewToken{Name: name, Role: role, CreatedBy: "command line"})
	return tok, err
}

// MintToken stores a new API token and returns it with the stored row; only
// its hash is kept. A token's role may not exceed its owner's.
func (s *Store) MintToken(ctx context.Context, nt NewToken) (string, *APIToken, error) {
	tok := "slt_" + randomToken(32)
	now := s.now()
	t := &APIToken{Name: nt.Name, Role: nt.Role, TokenHash: hashToken(tok), CreatedBy: nt.CreatedBy, CreatedAt: now}
	if nt.TTL > 0 {
		exp := now.Add(nt.TTL)
		t.ExpiresAt = &exp
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if nt.OwnerID != 0 {
			var u User
			if err := tx.First(&u, nt.OwnerID).Error; err != nil {
				return fmt.Errorf("owner: %w", notFound(err))
			}
			if u.Disabled() {
				return fmt.Errorf("%w: owner %s is disabled", ErrConflict, u.Username)
			}
			if !u.Role.Allows(nt.Role) {
				return fmt.Errorf("%w: a token of %s cannot have more than the %s role", ErrConflict, u.Username, u.Role)
			}
			id := nt.OwnerID
			t.OwnerID = &id
		}
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		return audit(tx, now, nt.CreatedBy, "token.create", fmt.Sprintf("token #%d %s", t.ID, t.Name), tokenDetail(t))
	})
	if err != nil {
		return "", nil, err
	}
	return tok, t, nil
}

func tokenDetail(t *APIToken) string {
	d := "role " + string(t.Role)
	if t.ExpiresAt != nil {
		d += ", expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return d
}

// TokenRole returns the token presented as a Bearer credential, if it has not
// expired and its owner is enabled, and records when it was used (at most once
// a minute, to spare the database).
func (s *Store) TokenRole(ctx context.Context, tok string) (*APIToken, error) {
	db := s.db.WithContext(ctx)
	var t APIToken
	if err := db.Where("token_hash = ?", hashToken(tok)).First(&t).Error; err != nil {
		return nil, notFound(err)
	}
	now := s.now()
	if t.Expired(now) {
		return nil, fmt.Errorf("%w: token expired", ErrNotFound)
	}
	if t.OwnerID != nil {
		var u User
		if err := db.First(&u, *t.OwnerID).Error; err != nil {
			return nil, notFound(err)
		}
		if u.Disabled() {
			return nil, fmt.Errorf("%w: owner disabled", ErrNotFound)
		}
		if !u.Role.Allows(t.Role) {
			t.Role = u.Role // the owner was demoted: the token follows
		}
		t.Owner = u.Username
		t.OwnerTenant = u.Tenant
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= time.Minute {
		if err := db.Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", now).Error; err != nil {
			return nil, err
		}
		t.LastUsedAt = &now
	}
	return &t, nil
}

// ListTokens lists the API tokens, without their secrets, with their owners'
// names.
func (s *Store) ListTokens(ctx context.Context) ([]APIToken, error) {
	var ts []APIToken
	if err := s.db.WithContext(ctx).Order("id").Find(&ts).Error; err != nil {
		return nil, err
	}
	names := map[uint]string{}
	var us []User
	if err := s.db.WithContext(ctx).Select("id", "username").Find(&us).Error; err != nil {
		return nil, err
	}
	for _, u := range us {
		names[u.ID] = u.Username
	}
	for i := range ts {
		if ts[i].OwnerID != nil {
			ts[i].Owner = names[*ts[i].OwnerID]
		}
	}
	return ts, nil
}

// DeleteToken revokes a token; actor is recorded in the audit log.
func (s *Store) DeleteToken(ctx context.Context, id uint, actor string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t APIToken
		if err := tx.First(&t, id).Error; err != nil {
			return notFound(err)
		}
		if err := tx.Delete(&t).Error; err != nil {
			return err
		}
		return audit(tx, s.now(), actor, "token.revoke", fmt.Sprintf("token #%d %s", t.ID, t.Name), "")
	})
}

// UserByName returns the user called username.
func (s *Store) UserByName(ctx context.Context, username string) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).Where("username = ?", username).First(&u).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// ChangePassword sets a user's own password after checking the current one,
// and ends the user's other sessions (keepSession, a cookie value, survives).
func (s *Store) ChangePassword(ctx context.Context, userID uint, current, next, keepSession string) error {
	var u User
	if err := s.db.WithContext(ctx).First(&u, userID).Error; err != nil {
		return notFound(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(current)) != nil {
		return ErrWrongPassword
	}
	return s.setPassword(ctx, &u, next, u.Username, "user.password_change", keepSession)
}

// ResetPassword sets a user's password on an admin's word (actor) and ends all
// the user's sessions.
func (s *Store) ResetPassword(ctx context.Context, userID uint, password, actor string) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).First(&u, userID).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, s.setPassword(ctx, &u, password, actor, "user.password_reset", "")
}

func (s *Store) setPassword(ctx context.Context, u *User, password, actor, action, keepSession string) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	now := s.now()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{"password_hash": hash, "password_changed_at": now}).Error; err != nil {
			return err
		}
		q := tx.Where("user_id = ?", u.ID)
		if keepSession != "" {
			q = q.Where("id <> ?", hashToken(keepSession))
		}
		if err := q.Delete(&Session{}).Error; err != nil {
			return err
		}
		return audit(tx, now, actor, action, "user "+u.Username, "")
	})
}

// Audit records an account, token, role or silence change made by actor.
func (s *Store) Audit(ctx context.Context, actor, action, target, detail string) error {
	return audit(s.db.WithContext(ctx), s.now(), actor, action, target, detail)
}

func audit(tx *gorm.DB, at time.Time, actor, action, target, detail string) error {
	if actor == "" {
		actor = "sluice"
	}
	return tx.Create(&AuditEvent{At: at, Actor: actor, Action: action, Target: clip(target, 500), Detail: clip(detail, 2000)}).Error
}

// AuditLog returns the newest audit events first, at most limit.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	var out []AuditEvent
	return out, s.db.WithContext(ctx).Order("id DESC").Limit(limit).Find(&out).Error
}
