package tickets

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		file, err string
	}{
		{"valid.yaml", ""},
		{"unknown_field.yaml", "field reopen_windw not found"},
		{"bad_sla.yaml", `sla target "critical"`},
		{"no_storage.yaml", "data_dir: required"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := LoadConfig(filepath.Join("testdata", "config", tc.file))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 30*time.Minute, cfg.ReopenWindow)
			require.Equal(t, "prod-eu1", cfg.DefaultCluster)
			require.Equal(t, time.Hour, cfg.SLATargets.For("critical").Resolve)
			require.Equal(t, 30*time.Minute, cfg.SLATargets.For("unknown").Ack, "default target added")
			require.Equal(t, 8*time.Second, cfg.Snapshot.Timeout)
			require.Equal(t, 2*time.Hour, cfg.Snapshot.EventWindow)
		})
	}
}
