package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// ruleTestFile is the part of a `promtool test rules` file the coverage check reads.
type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestRuleTestsCoverEveryAlert checks that tests/*.yml has, for every alert of the default
// pack, a case where it fires (with its labels and annotations) and one where it does not.
func TestRuleTestsCoverEveryAlert(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var tf ruleTestFile
		require.NoError(t, yaml.Unmarshal(b, &tf), f)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
					for _, e := range a.ExpAlerts {
						require.Contains(t, e, "exp_annotations", "%s: %s: compare the rendered annotations", f, tc.Name)
					}
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	alerts := packAlerts(t)
	for _, name := range alerts {
		require.True(t, fires[name], "no promtool test where %s fires", name)
		require.True(t, quiet[name], "no promtool test where %s stays quiet", name)
	}
	for name := range fires {
		require.Contains(t, alerts, name, "promtool test for an alert the pack does not have")
	}
}

func packAlerts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("sluice.yml")
	require.NoError(t, err)
	var pack struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &pack))
	var out []string
	for _, g := range pack.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r.Alert)
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// TestPromtoolRules runs the rule unit tests in tests/ with Prometheus' own `promtool test
// rules`, so the default pack is checked by the tool its users run on their Prometheus.
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH; install the Debian package prometheus (apt-get install -y prometheus) to run the rule unit tests in alerting/rules/tests")
	}
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out, err := exec.Command(promtool, append([]string{"test", "rules"}, files...)...).CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)
	t.Logf("%s", out)
}
