package deploy

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/exporter-toolkit/web"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/tickets"
)

// repoRoot is where docker-compose.yml lives and compose resolves ./ paths from.
const repoRoot = ".."

// composeFile is the part of docker-compose.yml the tests cross-check.
type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Volumes []string `yaml:"volumes"`
		Secrets []string `yaml:"secrets"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c))
	require.NotEmpty(t, c.Services)
	return c
}

// needTool returns the path of an external validator, skipping the test when
// it is not installed.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not on PATH: install Debian's %s package to validate with it (.ci/run does)", name, pkg)
	}
	return p
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out.String())
	return out.String()
}

// TestComposeConfig runs `docker-compose config -q`, Debian's docker-compose
// (1.29), which checks the file against the compose schema and interpolates
// its variables.
func TestComposeConfig(t *testing.T) {
	dc := needTool(t, "docker-compose", "docker-compose")
	run(t, repoRoot, dc, "-f", "docker-compose.yml", "config", "-q")
}

// TestComposeReferences checks what `docker-compose config` does not: every
// file and directory bind-mounted from the repository exists, every named
// volume is declared, and every secret has a template in deploy/secrets.
func TestComposeReferences(t *testing.T) {
	c := loadCompose(t)
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			src, _, ok := strings.Cut(v, ":")
			require.True(t, ok, "%s: volume %q has no target", name, v)
			if strings.HasPrefix(src, "./") {
				_, err := os.Stat(filepath.Join(repoRoot, src))
				require.NoError(t, err, "%s: bind mount %q", name, v)
				continue
			}
			require.Contains(t, c.Volumes, src, "%s: named volume %q is not declared", name, src)
		}
		for _, s := range svc.Secrets {
			require.Contains(t, c.Secrets, s, "%s: secret %q is not declared", name, s)
		}
	}
	for name, s := range c.Secrets {
		require.Equal(t, "./deploy/secrets/"+name, s.File, "secret %s", name)
		_, err := os.Stat(filepath.Join(repoRoot, s.File+".example"))
		require.NoError(t, err, "secret %s needs a template", name)
	}
}

// prometheusLayout copies prometheus.yml into a directory laid out like the
// container's /etc/prometheus, with the rule pack mounted at rules/, so that
// the rule_files glob is resolved and checked as Prometheus will.
func prometheusLayout(t *testing.T) (config string, ruleFiles []string) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("prometheus.yml")
	require.NoError(t, err)
	config = filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(config, b, 0o644))
	rules, err := filepath.Abs(filepath.Join(repoRoot, "alerting", "rules"))
	require.NoError(t, err)
	require.NoError(t, os.Symlink(rules, filepath.Join(dir, "rules")))
	ruleFiles, err = filepath.Glob(filepath.Join(rules, "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, ruleFiles)
	return config, ruleFiles
}

// TestPrometheusConfig loads prometheus.yml with the Prometheus library Sluice
// builds with and checks that its rule_files glob finds the rule pack (whose
// rules alerting/rules/pack_test.go tests).
func TestPrometheusConfig(t *testing.T) {
	path, ruleFiles := prometheusLayout(t)
	cfg, err := promconfig.LoadFile(path, false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
	}
	// The rule pack selects these jobs by name.
	require.True(t, jobs["broker"] && jobs["exporter"], "jobs %v", jobs)
	require.Equal(t, "sluice", cfg.GlobalConfig.ExternalLabels.Get("cluster"))
	matched := 0
	for _, g := range cfg.RuleFiles {
		m, err := filepath.Glob(g)
		require.NoError(t, err)
		matched += len(m)
	}
	require.Equal(t, len(ruleFiles), matched, "rule_files should load alerting/rules/*.yml")
}

// TestPromtoolCheckConfig runs Debian's promtool, which also checks every rule
// file the configuration loads.
func TestPromtoolCheckConfig(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	path, ruleFiles := prometheusLayout(t)
	out := run(t, filepath.Dir(path), promtool, "check", "config", path)
	require.Contains(t, out, fmt.Sprintf("%d rule files found", len(ruleFiles)), out)
}

// TestAlertmanagerConfig loads alertmanager.yml with the Alertmanager library
// Sluice builds with, and checks that every alert reaches the ticket service.
func TestAlertmanagerConfig(t *testing.T) {
	cfg, err := amconfig.LoadFile("alertmanager.yml")
	require.NoError(t, err)
	first := cfg.Route.Routes[0]
	require.Equal(t, "tickets", first.Receiver)
	require.True(t, first.Continue)
	require.Empty(t, first.Matchers, "the tickets route must match every alert")
	require.Empty(t, cfg.InhibitRules, "inhibition would hide alarms from the ticket service")
}

// TestAmtoolCheckConfig runs Debian's amtool.
func TestAmtoolCheckConfig(t *testing.T) {
	amtool := needTool(t, "amtool", "prometheus-alertmanager")
	run(t, ".", amtool, "check-config", "alertmanager.yml")
}

// TestBrokerConfig loads broker.yaml strictly and validates it with each
// broker's flags from docker-compose.yml applied.
func TestBrokerConfig(t *testing.T) {
	c := loadCompose(t)
	n := 0
	for name, svc := range c.Services {
		if len(svc.Command) == 0 || svc.Command[0] != "broker" {
			continue
		}
		n++
		cfg, err := broker.DecodeConfig("broker.yaml")
		require.NoError(t, err)
		for _, arg := range svc.Command[1:] {
			k, v, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
			require.True(t, ok, "%s: write flags as --name=value: %q", name, arg)
			v = os.Expand(v, composeDefault)
			switch k {
			case "config":
				require.Equal(t, "/etc/sluice/broker.yaml", v)
			case "node-id":
				var id int32
				_, err := fmt.Sscan(v, &id)
				require.NoError(t, err)
				cfg.NodeID = id
			case "listen":
				cfg.Listen = v
			case "advertised-listen":
				cfg.AdvertisedListen = v
			case "web.config.file":
				require.Equal(t, "/run/secrets/web_config", v)
				cfg.WebConfigFile = v
			case "listeners":
				cfg.Listeners = v
			case "advertised-listeners":
				cfg.AdvertisedListeners = v
			case "ssl-keystore-location":
				cfg.SSLKeystoreLocation = v
			default:
				t.Fatalf("%s: flag --%s is not checked here", name, k)
			}
		}
		require.NoError(t, cfg.Validate(), name)
		require.Contains(t, cfg.ControllerQuorumVoters, fmt.Sprintf("%d@%s:", cfg.NodeID, name), "%s: voter entry", name)
	}
	require.Equal(t, 3, n, "brokers in docker-compose.yml")
}

// TestWebConfigTemplate checks the brokers' and exporter's web config template
// with exporter-toolkit, and that its hash is of the scrape_password template,
// so that the secrets copied from the templates let Prometheus in.
func TestWebConfigTemplate(t *testing.T) {
	path := filepath.Join(repoRoot, "deploy", "secrets", "web_config.example")
	require.NoError(t, web.Validate(path))
	var wc web.Config
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &wc))
	pw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "secrets", "scrape_password.example"))
	require.NoError(t, err)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(wc.Users["prometheus"]), []byte(strings.TrimSpace(string(pw)))))
}

// composeDefault expands ${VAR:-default} the way compose does when VAR is unset.
func composeDefault(s string) string {
	_, def, _ := strings.Cut(s, ":-")
	return def
}

// TestTicketsConfig loads tickets.yaml strictly. The database URL is given by
// flag in docker-compose.yml, as `sluice tickets` allows.
func TestTicketsConfig(t *testing.T) {
	cfg, err := tickets.LoadConfig("tickets.yaml")
	if err != nil {
		require.ErrorContains(t, err, "data_dir: required")
	}
	cfg.Database = "postgres://sluice@postgres:5432/sluice?sslmode=disable"
	require.NoError(t, cfg.Validate())
	require.Equal(t, "sluice", cfg.DefaultCluster)
}
