package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTokensExpireAndFollowTheirOwner(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, _ := openTest(t)
	st.now = func() time.Time { return now }
	ctx := context.Background()
	require.NoError(t, st.CreateUser(ctx, "olga", "olga password", RoleOperator))
	olga, err := st.UserByName(ctx, "olga")
	require.NoError(t, err)

	tok, row, err := st.MintToken(ctx, NewToken{Name: "ci", Role: RoleOperator, OwnerID: olga.ID, CreatedBy: "olga", TTL: time.Hour})
	require.NoError(t, err)
	require.Equal(t, now.Add(time.Hour), row.ExpiresAt.UTC())

	// A token cannot have more than its owner's role.
	_, _, err = st.MintToken(ctx, NewToken{Name: "root", Role: RoleAdmin, OwnerID: olga.ID, CreatedBy: "olga"})
	require.ErrorIs(t, err, ErrConflict)

	// Use writes last_used_at.
	got, err := st.TokenRole(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, "olga", got.Owner)
	ts, err := st.ListTokens(ctx)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.NotNil(t, ts[0].LastUsedAt, "last_used_at is written")
	require.Equal(t, now, ts[0].LastUsedAt.UTC())

	// Disabling the owner stops the token; enabling brings it back.
	_, err = st.SetUserDisabled(ctx, olga.ID, true, "admin")
	require.NoError(t, err)
	_, err = st.TokenRole(ctx, tok)
	require.ErrorIs(t, err, ErrNotFound, "a disabled owner's token does not work")
	_, err = st.SetUserDisabled(ctx, olga.ID, false, "admin")
	require.NoError(t, err)
	_, err = st.TokenRole(ctx, tok)
	require.NoError(t, err)

	// A demoted owner's token is demoted with them.
	_, err = st.SetUserRole(ctx, olga.ID, RoleViewer, "admin")
	require.NoError(t, err)
	got, err = st.TokenRole(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, RoleViewer, got.Role)

	// Past its expiry the token is refused.
	now = now.Add(time.Hour)
	_, err = st.TokenRole(ctx, tok)
	require.ErrorIs(t, err, ErrNotFound, "an expired token does not work")
}

func TestPasswordChangeResetAndAudit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, _ := openTest(t)
	st.now = func() time.Time { return now }
	ctx := context.Background()
	require.NoError(t, st.CreateUserBy(ctx, "olga", "olga password", RoleOperator, "admin"))
	olga, err := st.UserByName(ctx, "olga")
	require.NoError(t, err)
	keep, _, err := st.CreateSession(ctx, olga.ID, time.Hour)
	require.NoError(t, err)
	other, _, err := st.CreateSession(ctx, olga.ID, time.Hour)
	require.NoError(t, err)

	require.ErrorIs(t, st.ChangePassword(ctx, olga.ID, "not my password", "a new password", keep), ErrWrongPassword)
	var pe *PasswordError
	require.ErrorAs(t, st.ChangePassword(ctx, olga.ID, "olga password", "short", keep), &pe)
	require.ErrorAs(t, st.ChangePassword(ctx, olga.ID, "olga password", "change-me-sluice-admin", keep), &pe,
		"the example password of deploy/secrets is refused")
	require.NoError(t, st.ChangePassword(ctx, olga.ID, "olga password", "a new password", keep))
	_, err = st.Authenticate(ctx, "olga", "olga password")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = st.Authenticate(ctx, "olga", "a new password")
	require.NoError(t, err)
	_, _, err = st.LookupSession(ctx, keep)
	require.NoError(t, err, "the session the change came from stays")
	_, _, err = st.LookupSession(ctx, other)
	require.ErrorIs(t, err, ErrNotFound, "other sessions end")

	_, err = st.ResetPassword(ctx, olga.ID, "reset by admin", "admin")
	require.NoError(t, err)
	_, _, err = st.LookupSession(ctx, keep)
	require.ErrorIs(t, err, ErrNotFound, "a reset ends every session")
	_, err = st.Authenticate(ctx, "olga", "reset by admin")
	require.NoError(t, err)

	// A taken user name is a conflict (gorm's translated error, not text).
	require.ErrorIs(t, st.CreateUserBy(ctx, "olga", "another password", RoleViewer, "admin"), ErrConflict)

	evs, err := st.AuditLog(ctx, 10)
	require.NoError(t, err)
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Actor+" "+e.Action+" "+e.Target)
	}
	require.Equal(t, []string{"admin user.password_reset user olga", "olga user.password_change user olga", "admin user.create user olga"}, actions)
	require.Error(t, st.DB().Exec("DELETE FROM audit_events").Error, "the audit log is append-only")
}

func TestExpiredSessionsArePurged(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, _ := openTest(t)
	st.now = func() time.Time { return now }
	ctx := context.Background()
	_, err := st.EnsureAdmin(ctx, "first admin pw")
	require.NoError(t, err)
	u, err := st.UserByName(ctx, "admin")
	require.NoError(t, err)
	_, _, err = st.CreateSession(ctx, u.ID, time.Minute)
	require.NoError(t, err)
	live, _, err := st.CreateSession(ctx, u.ID, time.Hour)
	require.NoError(t, err)
	now = now.Add(2 * time.Minute)
	n, err := st.PurgeSessions(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	var left int64
	require.NoError(t, st.DB().Model(&Session{}).Count(&left).Error)
	require.Equal(t, int64(1), left)
	_, _, err = st.LookupSession(ctx, live)
	require.NoError(t, err)
}

func TestOutboxIsWrittenWithTheChange(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, _ := openTest(t)
	st.now = func() time.Time { return now }
	ctx := context.Background()
	tk := &Ticket{Title: "disk", Priority: "P2"}
	require.NoError(t, st.CreateTicket(ctx, tk, "alice"))
	_, err := st.SetTicketStatus(ctx, tk.ID, "alice", "in_progress")
	require.NoError(t, err)
	// A change that fails writes no message.
	_, err = st.SetTicketStatus(ctx, tk.ID, "alice", "in_progress")
	require.ErrorIs(t, err, ErrConflict)

	due, err := st.PendingOutbox(ctx, 10)
	require.NoError(t, err)
	require.Len(t, due, 2)
	require.Equal(t, NoticeTicketFiled, due[0].Kind)
	require.Equal(t, NoticeTicketStatus, due[1].Kind)
	require.Equal(t, "in_progress", due[1].Detail)

	// Claimed once; a second claimer gets nothing.
	m, err := st.ClaimOutbox(ctx, due[0].ID, time.Minute)
	require.NoError(t, err)
	_, err = st.ClaimOutbox(ctx, due[0].ID, time.Minute)
	require.ErrorIs(t, err, ErrOutboxClaimed)
	// A failed attempt comes back at its retry time with what was done kept.
	require.NoError(t, st.SettleOutbox(ctx, m.ID, []string{"slack"}, now.Add(time.Second), false, errors.New("smtp down")))
	due, err = st.PendingOutbox(ctx, 10)
	require.NoError(t, err)
	require.Len(t, due, 1, "not due before its retry time")
	now = now.Add(time.Second)
	m, err = st.ClaimOutbox(ctx, m.ID, time.Minute)
	require.NoError(t, err)
	require.Equal(t, 1, m.Attempts)
	require.Equal(t, "slack", m.DeliveredTo)
	require.Equal(t, "smtp down", m.LastError)
	require.NoError(t, st.SettleOutbox(ctx, m.ID, []string{"slack", "email"}, time.Time{}, false, nil))
	_, err = st.ClaimOutbox(ctx, m.ID, time.Minute)
	require.ErrorIs(t, err, ErrOutboxClaimed, "a delivered message is never claimed again")
	// A claim that is never settled (the process died) expires.
	m2, err := st.ClaimOutbox(ctx, due[0].ID, time.Minute)
	require.NoError(t, err)
	now = now.Add(time.Minute)
	_, err = st.ClaimOutbox(ctx, m2.ID, time.Minute)
	require.NoError(t, err)
}
