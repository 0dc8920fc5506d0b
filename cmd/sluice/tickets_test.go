//go:build !lean

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

// TestTicketsChecksEverythingBeforeTheFirstAdmin: a start that fails (here
// on a listen address in use) creates no admin, so the next start still
// prints the first admin's password.
func TestTicketsChecksEverythingBeforeTheFirstAdmin(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	t.Setenv("SLUICE_ADMIN_PASSWORD", "")
	err = runTickets(context.Background(), []string{"--data-dir", dir, "--listen", busy.Addr().String()})
	require.ErrorContains(t, err, "listen")
	st, err := store.Open(context.Background(), store.Options{DataDir: dir})
	require.NoError(t, err)
	defer st.Close()
	us, err := st.ListUsers(context.Background())
	require.NoError(t, err)
	require.Empty(t, us, "no admin was created by the failed start")

	t.Setenv("SLUICE_ADMIN_PASSWORD", "change-me-sluice-admin")
	err = runTickets(context.Background(), []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"})
	require.ErrorContains(t, err, "example password")
}

func TestTicketsAdminResetPassword(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: dir})
	require.NoError(t, err)
	_, err = st.EnsureAdmin(ctx, "forgotten password")
	require.NoError(t, err)
	require.NoError(t, st.Close())

	t.Setenv("SLUICE_ADMIN_PASSWORD", "")
	var out bytes.Buffer
	require.NoError(t, runTicketsResetPassword(ctx, []string{"--data-dir", dir}, &out))
	m := regexp.MustCompile(`password of admin reset to (\S+) \(shown only now\)`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())

	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("chosen password\n"), 0o600))
	out.Reset()
	require.NoError(t, runTicketsResetPassword(ctx, []string{"--data-dir", dir, "--password-file", pwFile}, &out))
	require.NotContains(t, out.String(), "chosen password", "a given password is not echoed")

	st, err = store.Open(ctx, store.Options{DataDir: dir})
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Authenticate(ctx, "admin", "chosen password")
	require.NoError(t, err)
	_, err = st.Authenticate(ctx, "admin", m[1])
	require.ErrorIs(t, err, store.ErrNotFound)
	evs, err := st.AuditLog(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, "command line", evs[0].Actor)
	require.Equal(t, "user.password_reset", evs[0].Action)

	require.ErrorContains(t, runTicketsResetPassword(ctx, []string{"--data-dir", dir, "--user", "nobody"}, &out), "nobody")
	require.ErrorContains(t, runTicketsResetPassword(ctx, []string{}, &out), "--data-dir")
	require.NoError(t, os.WriteFile(pwFile, []byte("short\n"), 0o600))
	require.ErrorContains(t, runTicketsResetPassword(ctx, []string{"--data-dir", dir, "--password-file", pwFile}, &out), "at least 10")
}
