package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// WebConfig writes dir/web.yml, an exporter-toolkit web config (--web.config.file) with a basic
// auth user for each name: password of users (bcrypt at its lowest cost, enough for a test), and
// returns its path.
func WebConfig(tb testing.TB, dir string, users map[string]string) string {
	tb.Helper()
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("basic_auth_users:\n")
	for _, name := range names {
		hash, err := bcrypt.GenerateFromPassword([]byte(users[name]), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		b.WriteString("  " + name + ": " + string(hash) + "\n")
	}
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
