package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/schema"
)

// openTest opens a store on SQLite, or on a fresh schema of the PostgreSQL at
// $SLUICE_TEST_POSTGRES.
func openTest(t *testing.T) (*Store, Options) {
	opts := Options{DataDir: t.TempDir()}
	if base := os.Getenv("SLUICE_TEST_POSTGRES"); base != "" {
		b := make([]byte, 6)
		rand.Read(b)
		sch := "s_" + hex.EncodeToString(b)
		db, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
		require.NoError(t, err)
		require.NoError(t, db.Exec("CREATE SCHEMA "+sch).Error)
		t.Cleanup(func() {
			db.Exec("DROP SCHEMA " + sch + " CASCADE")
			sqlDB, _ := db.DB()
			sqlDB.Close()
		})
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", sch)
		u.RawQuery = q.Encode()
		opts.Database = u.String()
	}
	st, err := Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st, opts
}

func TestMigrationsAreVersionedAndIdempotent(t *testing.T) {
	st, opts := openTest(t)
	var versions []int
	require.NoError(t, st.DB().Raw("SELECT version FROM schema_migrations ORDER BY version").Scan(&versions).Error)
	require.Equal(t, []int{1, 2, 3, 4, 5}, versions)
	// Opening again applies nothing and keeps the data.
	require.NoError(t, st.CreateUser(context.Background(), "eve", "0123456789ab", RoleViewer))
	st2, err := Open(context.Background(), opts)
	require.NoError(t, err)
	defer st2.Close()
	_, err = st2.Authenticate(context.Background(), "eve", "0123456789ab")
	require.NoError(t, err)
	// A database from a newer build is refused.
	require.NoError(t, st.DB().Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')").Error)
	_, err = Open(context.Background(), opts)
	require.ErrorContains(t, err, "newer than this build")
}

// TestSchemaMatchesModels checks every model field has its column, so a model
// change without a migration fails here rather than in production.
func TestSchemaMatchesModels(t *testing.T) {
	st, _ := openTest(t)
	for _, m := range []any{&Incident{}, &AlarmInstance{}, &Ticket{}, &IncidentTicket{}, &Comment{}, &TimelineEvent{}, &User{}, &APIToken{}, &Session{}, &Snapshot{}, &AuditEvent{}, &OutboxMessage{}, &SnapshotJob{}} {
		s, err := schema.Parse(m, &sync.Map{}, st.DB().NamingStrategy)
		require.NoError(t, err)
		for _, f := range s.Fields {
			if f.DBName == "" {
				continue
			}
			require.True(t, st.DB().Migrator().HasColumn(m, f.DBName), "%s.%s has no column", s.Table, f.DBName)
		}
	}
}

func TestTimelineIsAppendOnly(t *testing.T) {
	st, _ := openTest(t)
	ctx := context.Background()
	tk := &Ticket{Title: "t", Priority: "P2"}
	require.NoError(t, st.CreateTicket(ctx, tk, "alice"))
	db := st.DB()
	require.Error(t, db.Exec("UPDATE timeline_events SET detail = 'rewritten'").Error)
	require.Error(t, db.Exec("DELETE FROM timeline_events").Error)
	var n int64
	require.NoError(t, db.Model(&TimelineEvent{}).Count(&n).Error)
	require.Equal(t, int64(1), n)
}

func TestFailedChangeWritesNothing(t *testing.T) {
	st, _ := openTest(t)
	ctx := context.Background()
	// Linking a ticket to a missing incident fails inside the transaction that
	// created the ticket: no ticket, no timeline row remain.
	err := st.CreateTicketLinked(ctx, &Ticket{Title: "t", Priority: "P1"}, "bob", 42)
	require.ErrorIs(t, err, ErrNotFound)
	var n int64
	require.NoError(t, st.DB().Model(&Ticket{}).Count(&n).Error)
	require.Zero(t, n)
	require.NoError(t, st.DB().Model(&TimelineEvent{}).Count(&n).Error)
	require.Zero(t, n)
}

func TestSessionsAndPasswords(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, _ := openTest(t)
	st.now = func() time.Time { return now }
	ctx := context.Background()
	created, err := st.EnsureAdmin(ctx, "first admin pw")
	require.NoError(t, err)
	require.True(t, created)
	created, err = st.EnsureAdmin(ctx, "other password")
	require.NoError(t, err)
	require.False(t, created)
	u, err := st.Authenticate(ctx, "admin", "first admin pw")
	require.NoError(t, err)
	_, err = st.Authenticate(ctx, "admin", "wrong password")
	require.ErrorIs(t, err, ErrNotFound)
	var hash string
	require.NoError(t, st.DB().Raw("SELECT password_hash FROM users").Scan(&hash).Error)
	require.Contains(t, hash, "$2a$")
	cookie, sess, err := st.CreateSession(ctx, u.ID, time.Hour)
	require.NoError(t, err)
	require.NotEqual(t, cookie, sess.ID, "only the hash of the cookie is stored")
	_, _, err = st.LookupSession(ctx, cookie)
	require.NoError(t, err)
	now = now.Add(2 * time.Hour)
	_, _, err = st.LookupSession(ctx, cookie)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestUserRolesAndDisabling(t *testing.T) {
	st, _ := openTest(t)
	ctx := context.Background()
	_, err := st.EnsureAdmin(ctx, "first admin pw")
	require.NoError(t, err)
	require.NoError(t, st.CreateUser(ctx, "olga", "olga password", RoleOperator))
	us, err := st.ListUsers(ctx)
	require.NoError(t, err)
	require.Len(t, us, 2)
	admin, olga := us[0], us[1]

	// The only admin can be neither demoted nor disabled.
	_, err = st.SetUserRole(ctx, admin.ID, RoleViewer, "test")
	require.ErrorIs(t, err, ErrConflict)
	_, err = st.SetUserDisabled(ctx, admin.ID, true, "test")
	require.ErrorIs(t, err, ErrConflict)

	// A disabled user cannot log in and loses their sessions.
	cookie, _, err := st.CreateSession(ctx, olga.ID, time.Hour)
	require.NoError(t, err)
	u, err := st.SetUserDisabled(ctx, olga.ID, true, "test")
	require.NoError(t, err)
	require.True(t, u.Disabled())
	_, err = st.Authenticate(ctx, "olga", "olga password")
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = st.LookupSession(ctx, cookie)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = st.SetUserDisabled(ctx, olga.ID, false, "test")
	require.NoError(t, err)
	_, err = st.Authenticate(ctx, "olga", "olga password")
	require.NoError(t, err)

	// With a second admin the first may step down.
	_, err = st.SetUserRole(ctx, olga.ID, RoleAdmin, "test")
	require.NoError(t, err)
	u, err = st.SetUserRole(ctx, admin.ID, RoleViewer, "test")
	require.NoError(t, err)
	require.Equal(t, RoleViewer, u.Role)
	_, err = st.SetUserRole(ctx, 999, RoleViewer, "test")
	require.ErrorIs(t, err, ErrNotFound)
}
