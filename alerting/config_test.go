package alerting

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

// TestBadFilesRejectedAndReloadKeepsRunning loads bad rule and routing files, expects the file
// and line in the error, and checks a reload with a bad file keeps the running configuration.
func TestBadFilesRejectedAndReloadKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "extra.yml", "groups:\n  - name: extra\n    rules:\n      - alert: Extra\n        expr: vector(1)\n")
	_ = good
	cfgPath := writeFile(t, dir, "alerting.yaml", "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\nrule_files: [extra.yml]\n")
	cfg, err := LoadConfig(cfgPath)
	require.NoError(t, err)
	m, err := New(cfg, nil, nil)
	require.NoError(t, err)
	defer m.close()
	n := len(m.evaluator.Rules())

	_, err = ParseConfig([]byte("listen: 127.0.0.1:0\nbogus: 1\n"))
	require.ErrorContains(t, err, "line 2")

	writeFile(t, dir, "bad.yml", "groups:\n  - name: bad\n    rules:\n      - alert: Bad\n        expr: sum(rate(x[5m])\n")
	bad := cfg
	bad.RuleFiles = []string{"bad.yml"}
	err = m.ApplyConfig(bad)
	require.ErrorContains(t, err, "bad.yml")
	require.ErrorContains(t, err, "5:15")
	require.Len(t, m.evaluator.Rules(), n, "running rules kept")

	writeFile(t, dir, "am.yml", "route:\n  receiver: nowhere\nreceivers:\n  - name: default\n    bogus_configs: []\n")
	badRouting := cfg
	badRouting.RoutingFile = "am.yml"
	err = m.ApplyConfig(badRouting)
	require.ErrorContains(t, err, "am.yml")
	require.ErrorContains(t, err, "line 5")
	require.Equal(t, "", m.Config().RoutingFile, "running routing kept")
	require.Len(t, m.evaluator.Rules(), n)
}
