// Package tickets is `sluice tickets`: the OPS ticket service. It turns alarms
// from Alertmanager (or Sluice's own alerting, which speaks the same webhook)
// into incidents, captures a fault snapshot of the cluster when one opens, lets
// people acknowledge, resolve and comment on incidents and file and work tickets
// through a JSON API and the web UI of package ui, and reports SLA figures.
package tickets

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/sluicemq/sluice/internal/config"
	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/sla"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// Config configures the service. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	// Listen is the HTTP address of the API, UI and /metrics, 127.0.0.1:8090 by
	// default.
	Listen string `yaml:"listen"`
	// WebConfigFile is a web config in github.com/prometheus/exporter-toolkit's
	// format (TLS, client certificates, basic auth with bcrypt hashes, extra
	// headers) for the listener, as --web.config.file; default none.
	WebConfigFile string `yaml:"web_config_file"`
	// DataDir holds the SQLite database when Database is empty.
	DataDir string `yaml:"data_dir"`
	// Database is a postgres:// URL; empty for SQLite under DataDir.
	Database string `yaml:"database"`
	// AdminPassword is the first admin's password, used only when the database
	// has no user yet; empty generates one. Never read from the YAML file.
	AdminPassword string `yaml:"-"`
	// ReopenWindow is how long after an incident resolves a new firing alarm of
	// its group reopens it instead of opening a new incident, 1h by default
	// (jiralert's reopen_duration).
	ReopenWindow time.Duration `yaml:"reopen_window"`
	// TransientWindow: an incident whose alarms all resolve within this long of
	// its opening is transient and does not page; pages of new incidents wait
	// this long. 1m by default (a resolve reaches the service one
	// Alertmanager group_interval after the alarm clears); negative turns it
	// off (pages at once, nothing is transient).
	TransientWindow time.Duration `yaml:"transient_window"`
	// DefaultCluster names the cluster of alarms without a cluster label,
	// "sluice" by default.
	DefaultCluster string `yaml:"default_cluster"`
	// SLATargets are per-severity acknowledge and resolve targets.
	SLATargets sla.Targets `yaml:"sla_targets"`
	// SLAWindow is the span of the SLA report and metrics, 30 days by default.
	SLAWindow time.Duration `yaml:"sla_window"`
	// Snapshot says where the fault snapshot observes the cluster from.
	Snapshot snapshot.Config `yaml:"snapshot"`
	// MaxBodyBytes bounds API request bodies, 1 MiB by default; webhook bodies
	// may be 8 times larger.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SessionTTL is how long a UI login lasts, 12h by default.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SecureCookies marks session cookies Secure; set it when served over
	// HTTPS. It is implied when ExternalURL is https.
	SecureCookies bool `yaml:"secure_cookies"`
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For is believed for the client address (logs, login
	// throttling); none by default, so the peer address is used.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TokenTTL is the life of an API token minted without expires_in, 90
	// days by default.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// ClusterCacheAge is the oldest cluster snapshot the Cluster health page
	// shows before capturing a new one, 15s by default.
	ClusterCacheAge time.Duration `yaml:"cluster_cache_age"`
	// AlertingURL is the HTTP API of Sluice's alerting (`sluice alerting`,
	// e.g. http://127.0.0.1:9095 in make run's stack, which sets it) whose silences the Silences page
	// lists, creates and expires; empty leaves the page unconfigured.
	AlertingURL string `yaml:"alerting_url"`
	// AlertingHTTPConfig is Prometheus' HTTP client configuration for
	// AlertingURL: the alerting API's bearer token (authorization:
	// credentials_file) or basic auth, and tls_config.
	AlertingHTTPConfig commoncfg.HTTPClientConfig `yaml:"alerting_http_config"`
	// ExternalURL is how people reach this service, for links in
	// notifications, such as https://tickets.example.com; http://<listen> by
	// default.
	ExternalURL string `yaml:"external_url"`
	// Notifications send incident and ticket changes to Slack and email.
	Notifications notify.Config `yaml:"notifications"`
	// Metering collects per-tenant usage samples every minute (metering.go).
	Metering MeteringConfig `yaml:"metering"`
	// Billing prices tenant usage for the monthly statements (billing.go).
	Billing BillingConfig `yaml:"billing"`
}

// DefaultConfig returns the configuration used without a file or flags.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8090",
		ReopenWindow:    time.Hour,
		TransientWindow: time.Minute,
		DefaultCluster:  "sluice",
		SLATargets:      sla.DefaultTargets(),
		SLAWindow:       30 * 24 * time.Hour,
		MaxBodyBytes:    1 << 20,
		SessionTTL:      12 * time.Hour,
		TokenTTL:        90 * 24 * time.Hour,
		ClusterCacheAge: 15 * time.Second,
	}
}

// LoadConfig reads a YAML file strictly (unknown fields are errors) over the
// defaults and validates the result.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	dir, err := config.Decode(path, &cfg)
	if err != nil {
		return cfg, err
	}
	cfg.resolvePaths(dir)
	cfg.setDefaults()
	return cfg, cfg.Validate()
}

// resolvePaths makes the file paths of a configuration file relative to its directory, dir.
func (c *Config) resolvePaths(dir string) {
	c.WebConfigFile = config.Path(dir, c.WebConfigFile)
	c.Notifications.ResolvePaths(dir)
	c.Snapshot.KafkaSecurity.ResolvePaths(dir)
	for i, p := range c.Snapshot.LogFiles {
		c.Snapshot.LogFiles[i] = config.Path(dir, p)
	}
	for _, hc := range []*commoncfg.HTTPClientConfig{&c.AlertingHTTPConfig, &c.Snapshot.AdminHTTPConfig, &c.Snapshot.PrometheusHTTPConfig, &c.Metering.PrometheusHTTPConfig} {
		hc.SetDirectory(dir)
	}
}

// setDefaults fills the zero values the file or the code that built the configuration left, and
// derives the settings that follow from others; LoadConfig and New call it.
func (c *Config) setDefaults() {
	def := DefaultConfig()
	if c.Listen == "" {
		c.Listen = def.Listen
	}
	if c.TransientWindow == 0 {
		c.TransientWindow = def.TransientWindow
	}
	if c.ReopenWindow == 0 {
		c.ReopenWindow = def.ReopenWindow
	}
	if c.DefaultCluster == "" {
		c.DefaultCluster = def.DefaultCluster
	}
	if c.SLATargets == nil {
		c.SLATargets = def.SLATargets
	}
	if _, ok := c.SLATargets["default"]; !ok {
		c.SLATargets["default"] = def.SLATargets["default"]
	}
	if c.SLAWindow <= 0 {
		c.SLAWindow = def.SLAWindow
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = def.MaxBodyBytes
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = def.SessionTTL
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = def.TokenTTL
	}
	if c.ClusterCacheAge == 0 {
		c.ClusterCacheAge = def.ClusterCacheAge
	}
	c.Snapshot = c.Snapshot.WithDefaults()
	c.Metering.setDefaults(c.Snapshot)
	c.Billing.setDefaults()
	c.ExternalURL = strings.TrimSuffix(c.ExternalURL, "/")
	if strings.HasPrefix(c.ExternalURL, "https://") {
		c.SecureCookies = true // browsers reach us over HTTPS
	}
}

// Validate checks the configuration; it changes nothing.
func (c *Config) Validate() error {
	if c.Database == "" && c.DataDir == "" {
		return errors.New("data_dir: required when no database URL is given")
	}
	if c.ReopenWindow < 0 {
		return errors.New("reopen_window: negative")
	}
	if err := c.SLATargets.Validate(); err != nil {
		return err
	}
	if c.TokenTTL < 0 || c.TokenTTL > 366*24*time.Hour {
		return errors.New("token_ttl: from 0 (the default, 90 days) to 8784h")
	}
	if c.ClusterCacheAge < 0 {
		return errors.New("cluster_cache_age: negative")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				return fmt.Errorf("trusted_proxies: %q is neither an IP address nor a CIDR", p)
			}
		}
	}
	if store.IsExamplePassword(c.AdminPassword) {
		return errors.New("admin password (--admin-password-file or SLUICE_ADMIN_PASSWORD): this is the example password of deploy/secrets/sluice_admin_password.example (change-me-...); set your own")
	}
	if u, err := url.Parse(c.Database); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && store.IsExamplePassword(pw) {
			return errors.New("database: the URL's password is the example of deploy/secrets/postgres_password.example (change-me-...); set your own")
		}
	}
	if err := c.Metering.validate(); err != nil {
		return err
	}
	if err := c.Billing.validate(); err != nil {
		return err
	}
	for _, hc := range []struct {
		field string
		cfg   *commoncfg.HTTPClientConfig
	}{{"alerting_http_config", &c.AlertingHTTPConfig}, {"snapshot.admin_http_config", &c.Snapshot.AdminHTTPConfig},
		{"snapshot.prometheus_http_config", &c.Snapshot.PrometheusHTTPConfig}} {
		if err := hc.cfg.Validate(); err != nil {
			return fmt.Errorf("%s: %w", hc.field, err)
		}
	}
	if c.AlertingURL != "" {
		if _, err := silences.New(c.AlertingURL, nil); err != nil {
			return err
		}
	}
	if c.ExternalURL != "" {
		u, err := url.Parse(c.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("external_url %q: want http(s)://host[:port][/path]", c.ExternalURL)
		}
	}
	if err := c.Notifications.Validate(); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	return nil
}
