package alerting

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"

	"github.com/sluicemq/sluice/alerting/dispatch"
	"github.com/sluicemq/sluice/alerting/rules"
	"github.com/sluicemq/sluice/internal/config"
)

// Config is `sluice alerting`'s YAML file. Rule files are Prometheus rule files and the routing
// file is an alertmanager.yml; this file only says where they are and what to scrape.
type Config struct {
	// Listen is the HTTP address of the API, default 127.0.0.1:9093 (Alertmanager's port).
	// Without web_config_file with basic_auth_users or client certificates, or api tokens, only
	// a loopback address is accepted.
	Listen string `yaml:"listen"`
	// WebConfigFile is a web config in github.com/prometheus/exporter-toolkit's format (TLS,
	// client certificates, basic auth users with bcrypt hashes, extra headers), as Alertmanager's
	// --web.config.file; relative to this file. The flag --web.config.file overrides it.
	WebConfigFile string `yaml:"web_config_file"`
	// API holds the API's bearer tokens and limits.
	API APIConfig `yaml:"api"`
	// DataDir holds the TSDB, silences, notification log and Slack messages, default
	// data/alerting.
	DataDir string `yaml:"data_dir"`
	// ExternalURL is how people reach this API, for links in notifications; default
	// http://<listen>.
	ExternalURL string `yaml:"external_url"`
	// ScrapeInterval is the time between scrapes of each target, default 5s.
	ScrapeInterval time.Duration `yaml:"scrape_interval"`
	// EvaluationInterval is the rule evaluation interval, default 10s.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// Retention of the local TSDB, default 24h.
	Retention time.Duration `yaml:"retention"`
	// ExternalLabels are added to every alert, e.g. cluster: prod.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// Targets are scraped: brokers (job broker) and the exporter (job exporter).
	Targets []rules.Target `yaml:"targets"`
	// DefaultRules loads the built-in rule pack (alerting/rules/*.yml), default true.
	DefaultRules *bool `yaml:"default_rules"`
	// RuleFiles are globs of further Prometheus rule files, relative to this file.
	RuleFiles []string `yaml:"rule_files"`
	// RoutingFile is an alertmanager.yml (route, receivers, inhibit_rules, time intervals,
	// templates), relative to this file. Default: everything to the log.
	RoutingFile string `yaml:"routing_file"`
	// Slack holds what Alertmanager's slack_configs has no field for.
	Slack SlackConfig `yaml:"slack"`
	// DashboardURL is the Grafana base URL linked from notifications.
	DashboardURL string `yaml:"dashboard_url"`
	// Notifications tunes flapping detection and per-receiver rate limits.
	Notifications dispatch.GuardOptions `yaml:"notifications"`
	// Tickets sends every notification of the routing tree's root receiver to the ticket
	// service too (in addition to the log when that receiver has nothing else).
	Tickets TicketsConfig `yaml:"tickets"`

	// dir is the directory of the file the config came from, for relative paths.
	dir string
}

// SlackConfig configures the Slack app's interaction endpoint.
type SlackConfig struct {
	// SigningSecretFile holds the app's signing secret; SigningSecretEnv names an environment
	// variable holding it. Without either, /api/v1/slack/interactions answers 404.
	SigningSecretFile string `yaml:"signing_secret_file"`
	SigningSecretEnv  string `yaml:"signing_secret_env"`
}

// APIConfig secures the HTTP API beyond the web config.
type APIConfig struct {
	// TokenFile holds bearer tokens, one a line ('#' starts a comment), accepted as
	// `Authorization: Bearer <token>` on every /api/ endpoint; read at start and at every
	// reload. TokenEnv names an environment variable holding one token instead.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// MaxSilenceDuration caps how long a silence created or updated through the API may last
	// (from its start, or from now if it started already), default 168h (7 days).
	MaxSilenceDuration time.Duration `yaml:"max_silence_duration"`
}

// minTokenLen keeps guessable API tokens out.
const minTokenLen = 16

// DefaultMaxSilenceDuration is the default of api.max_silence_duration.
const DefaultMaxSilenceDuration = 7 * 24 * time.Hour

// TicketsConfig points notifications at the ticket service (`sluice tickets`).
type TicketsConfig struct {
	// URL is the ticket service's base URL, e.g. http://127.0.0.1:8090. Notifications are
	// POSTed to URL/api/v1/integrations/alertmanager with the Alertmanager webhook v4 payload.
	// Empty (the default) sends nothing.
	URL string `yaml:"url"`
	// TokenFile holds the ticket service API token sent as `Authorization: Bearer` (read at
	// every notification, so it can be rotated); TokenEnv names an environment variable
	// holding it instead. One of them is required with URL.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
}

// TicketsPath is where the ticket service takes Alertmanager webhook notifications.
const TicketsPath = "/api/v1/integrations/alertmanager"

// DefaultConfig is the configuration used without a file.
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:9093",
		DataDir:            filepath.Join("data", "alerting"),
		ScrapeInterval:     5 * time.Second,
		EvaluationInterval: 10 * time.Second,
		Retention:          24 * time.Hour,
		API:                APIConfig{MaxSilenceDuration: DefaultMaxSilenceDuration},
	}
}

// LoadConfig reads a config file strictly: unknown fields are errors, and every error names the
// file and line.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	cfg.dir = filepath.Dir(path)
	return cfg, nil
}

// ParseConfig decodes YAML over DefaultConfig and validates the result.
func ParseConfig(b []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := config.DecodeBytes(b, &cfg); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// Validate checks the values that can be checked without reading other files.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if c.DataDir == "" {
		return errors.New("data_dir must not be empty")
	}
	if c.ScrapeInterval <= 0 || c.EvaluationInterval <= 0 || c.Retention <= 0 {
		return errors.New("scrape_interval, evaluation_interval and retention must be positive")
	}
	for i, t := range c.Targets {
		if t.Job == "" || t.Address == "" {
			return fmt.Errorf("targets[%d]: job and address are required", i)
		}
		hc := t.HTTPClientConfig()
		if err := hc.Validate(); err != nil {
			return fmt.Errorf("targets[%d]: %w", i, err)
		}
		if strings.Contains(t.Address, "://") {
			continue
		}
		if _, _, err := net.SplitHostPort(t.Address); err != nil {
			return fmt.Errorf("targets[%d]: address %q: %w", i, t.Address, err)
		}
	}
	if c.Slack.SigningSecretFile != "" && c.Slack.SigningSecretEnv != "" {
		return errors.New("slack: set signing_secret_file or signing_secret_env, not both")
	}
	for _, u := range []struct{ field, value string }{{"external_url", c.ExternalURL}, {"dashboard_url", c.DashboardURL}} {
		if u.value == "" {
			continue
		}
		if pu, err := url.Parse(u.value); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("%s %q: want an absolute http(s) URL", u.field, u.value)
		}
	}
	n := c.Notifications
	if n.FlapCount < 0 || n.FlapWindow < 0 || n.RatePerMinute < 0 || n.Burst < 0 || n.SummaryDelay < 0 {
		return errors.New("notifications: flap_count, flap_window, rate_per_minute, burst and summary_delay must not be negative (0 or unset: the default)")
	}
	if err := c.Tickets.validate(); err != nil {
		return fmt.Errorf("tickets: %w", err)
	}
	if c.API.TokenFile != "" && c.API.TokenEnv != "" {
		return errors.New("api: set token_file or token_env, not both")
	}
	if c.API.MaxSilenceDuration < 0 {
		return fmt.Errorf("api: max_silence_duration %s must not be negative (0 or unset: the default %s)", c.API.MaxSilenceDuration, DefaultMaxSilenceDuration)
	}
	return nil
}

// maxSilence is api.max_silence_duration with its default.
func (c *Config) maxSilence() time.Duration {
	if c.API.MaxSilenceDuration <= 0 {
		return DefaultMaxSilenceDuration
	}
	return c.API.MaxSilenceDuration
}

// apiTokens reads the API's bearer tokens; none is fine (the listener is then loopback-only or
// authenticated by the web config).
func (c *Config) apiTokens() ([]string, error) {
	switch {
	case c.API.TokenFile != "":
		b, err := os.ReadFile(config.Path(c.dir, c.API.TokenFile))
		if err != nil {
			return nil, fmt.Errorf("api: token_file: %w", err)
		}
		var toks []string
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				toks = append(toks, line)
			}
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("api: token_file %s holds no token", c.API.TokenFile)
		}
		for i, t := range toks {
			if len(t) < minTokenLen {
				return nil, fmt.Errorf("api: token_file %s: token %d is shorter than %d characters", c.API.TokenFile, i+1, minTokenLen)
			}
		}
		return toks, nil
	case c.API.TokenEnv != "":
		tok, err := config.Secret{FileKey: "token_file", EnvKey: "token_env", Env: c.API.TokenEnv}.Read(c.dir)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		if tok = strings.TrimSpace(tok); len(tok) < minTokenLen {
			return nil, fmt.Errorf("api: token_env: $%s is shorter than %d characters", c.API.TokenEnv, minTokenLen)
		}
		return []string{tok}, nil
	}
	return nil, nil
}

func (t *TicketsConfig) validate() error {
	if t.URL == "" {
		if t.TokenFile != "" || t.TokenEnv != "" {
			return errors.New("token_file or token_env without url")
		}
		return nil
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return fmt.Errorf("url %q: %w", t.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want http(s)://host[:port]", t.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("url %q: the base URL takes no query or fragment", t.URL)
	}
	switch {
	case t.TokenFile != "" && t.TokenEnv != "":
		return errors.New("set token_file or token_env, not both")
	case t.TokenFile == "" && t.TokenEnv == "":
		return errors.New("token_file or token_env is required with url (the ticket service takes an API token)")
	}
	return nil
}

// endpoint is the ticket service's Alertmanager webhook URL.
func (t *TicketsConfig) endpoint() string {
	return strings.TrimSuffix(t.URL, "/") + TicketsPath
}

func (c *Config) defaultRules() bool { return c.DefaultRules == nil || *c.DefaultRules }

// externalURL is the URL notifications link to.
func (c *Config) externalURL() string {
	if c.ExternalURL != "" {
		return strings.TrimSuffix(c.ExternalURL, "/")
	}
	return "http://" + c.Listen
}

// defaultRouting sends everything to one receiver without integrations, which logs.
const defaultRouting = `
route:
  receiver: default
  group_by: [alertname, instance]
  group_wait: 5s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: default
`

// loadRouting reads the alertmanager.yml; Alertmanager's errors carry the line for YAML
// mistakes, and the file name is put in front of all of them.
func (c *Config) loadRouting() (*amconfig.Config, error) {
	if c.RoutingFile == "" {
		return amconfig.Load(defaultRouting)
	}
	p := config.Path(c.dir, c.RoutingFile)
	ac, err := amconfig.LoadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return ac, nil
}

func (c *Config) signingSecret() (string, error) {
	s, err := config.Secret{FileKey: "signing_secret_file", EnvKey: "signing_secret_env",
		File: c.Slack.SigningSecretFile, Env: c.Slack.SigningSecretEnv}.Read(c.dir)
	if err != nil {
		return "", fmt.Errorf("slack: %w", err)
	}
	return s, nil
}

// token is the ticket service's API token setting.
func (t *TicketsConfig) token() config.Secret {
	return config.Secret{FileKey: "token_file", EnvKey: "token_env", File: t.TokenFile, Env: t.TokenEnv}
}
