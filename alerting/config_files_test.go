package alerting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/config"
)

// TestConfigFiles loads every file under testdata/config: each valid one loads, each invalid
// one is refused with an error that names the file and says what its first line
// ("# error: ...") expects.
func TestConfigFiles(t *testing.T) {
	valid, err := filepath.Glob(filepath.Join("testdata", "config", "valid", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, valid)
	for _, p := range valid {
		t.Run("valid/"+filepath.Base(p), func(t *testing.T) {
			_, err := LoadConfig(p)
			require.NoError(t, err)
		})
	}
	invalid, err := filepath.Glob(filepath.Join("testdata", "config", "invalid", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, invalid)
	for _, p := range invalid {
		t.Run("invalid/"+filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# error: ")
			require.True(t, ok, "the first line of %s says the expected error", p)
			_, err = LoadConfig(p)
			require.Error(t, err)
			require.ErrorContains(t, err, p, "the error names the file")
			require.ErrorContains(t, err, want)
		})
	}
}

// TestConfigDefaults checks the values a file without them gets.
func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "config", "valid", "minimal.yaml"))
	require.NoError(t, err)
	want := DefaultConfig()
	want.dir = cfg.dir
	require.Equal(t, want, cfg)
	require.True(t, cfg.defaultRules())
	require.Equal(t, "http://127.0.0.1:9093", cfg.externalURL())

	full, err := LoadConfig(filepath.Join("testdata", "config", "valid", "full.yaml"))
	require.NoError(t, err)
	require.Equal(t, "https://alerts.example.com", full.externalURL())
	require.Equal(t, filepath.Join("testdata", "config", "valid", "alertmanager.yml"), config.Path(full.dir, full.RoutingFile), "relative to the config file")
	require.Equal(t, "/etc/sluice/tickets-token", config.Path(full.dir, full.Tickets.TokenFile))
	require.Equal(t, "http://127.0.0.1:8090/api/v1/integrations/alertmanager", full.Tickets.endpoint())
	env, err := LoadConfig(filepath.Join("testdata", "config", "valid", "tickets-env.yaml"))
	require.NoError(t, err)
	require.Equal(t, "https://tickets.example.com/base/api/v1/integrations/alertmanager", env.Tickets.endpoint())
}
