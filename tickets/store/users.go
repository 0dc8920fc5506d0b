package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// ListUsers lists the local users, enabled and disabled, by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	var us []User
	return us, s.db.WithContext(ctx).Order("username").Find(&us).Error
}

// GetUser returns one user.
func (s *Store) GetUser(ctx context.Context, id uint) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).First(&u, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// SetUserRole changes a user's role. Demoting the last enabled admin is a
// conflict: nobody could manage users afterwards.
func (s *Store) SetUserRole(ctx context.Context, id uint, role Role, actor string) (*User, error) {
	var out User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if role == RoleAdmin && u.Tenant != "" {
			return fmt.Errorf("%w: %s is a member of tenant %s; an admin cannot be a tenant member", ErrConflict, u.Username, u.Tenant)
		}
		if u.Role == RoleAdmin && role != RoleAdmin && !u.Disabled() {
			if err := otherAdmins(tx, u.ID); err != nil {
				return err
			}
		}
		if err := tx.Model(&u).Update("role", role).Error; err != nil {
			return err
		}
		if err := audit(tx, s.now(), actor, "user.role", "user "+u.Username, fmt.Sprintf("%s -> %s", u.Role, role)); err != nil {
			return err
		}
		u.Role, out = role, u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetUserDisabled disables a user, ending their sessions (their API tokens
// stop working while they are disabled), or enables them again. Disabling the last enabled admin is a conflict.
func (s *Store) SetUserDisabled(ctx context.Context, id uint, disabled bool, actor string) (*User, error) {
	var out User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if !disabled {
			u.DisabledAt = nil
		} else {
			if u.Role == RoleAdmin && !u.Disabled() {
				if err := otherAdmins(tx, u.ID); err != nil {
					return err
				}
			}
			if u.DisabledAt == nil {
				now := s.now()
				u.DisabledAt = &now
			}
			if err := tx.Where("user_id = ?", u.ID).Delete(&Session{}).Error; err != nil {
				return err
			}
		}
		if err := tx.Model(&u).Update("disabled_at", u.DisabledAt).Error; err != nil {
			return err
		}
		action := "user.enable"
		if disabled {
			action = "user.disable"
		}
		if err := audit(tx, s.now(), actor, action, "user "+u.Username, ""); err != nil {
			return err
		}
		out = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// otherAdmins fails with ErrConflict unless an enabled admin other than id
// exists.
func otherAdmins(tx *gorm.DB, id uint) error {
	var n int64
	if err := tx.Model(&User{}).Where("role = ? AND disabled_at IS NULL AND id <> ?", RoleAdmin, id).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: the last enabled admin cannot be demoted or disabled", ErrConflict)
	}
	return nil
}
