//go:build !lean

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/alerting"
	"github.com/sluicemq/sluice/alerting/rules"
)

func init() {
	subcommands["alerting"] = runAlerting
	summaries["alerting"] = "evaluate the rule pack, route and send alerts, serve Prometheus' query API"
}

// runAlerting is `sluice alerting`: rule evaluation over the brokers' and the exporter's metrics,
// Alertmanager routing and notifications to Slack, email, webhooks or the log. SIGHUP reloads
// --config; a bad file is reported and the running configuration kept.
func runAlerting(ctx context.Context, args []string) error {
	def := alerting.DefaultConfig()
	fs := flag.NewFlagSet("alerting", flag.ContinueOnError)
	configPath := fs.String("config", "", "alerting.yaml (optional; defaults: built-in rules, notifications to the log)")
	listen := fs.String("listen", "", "HTTP API address (default "+def.Listen+", or the file's listen)")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config: TLS, client certificates, basic auth users (bcrypt), headers (default the file's web_config_file; without it or api tokens the API is loopback-only)")
	dataDir := fs.String("data-dir", "", "data directory (default "+def.DataDir+", or the file's data_dir)")
	var targets []string
	fs.Func("target", "scrape target job=host:port or host:port (job broker); repeatable", func(s string) error {
		targets = append(targets, s)
		return nil
	})
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	logger, err := stderrLogger(*logLevel)
	if err != nil {
		return err
	}
	load := func() (alerting.Config, error) {
		cfg := def
		if *configPath != "" {
			var err error
			if cfg, err = alerting.LoadConfig(*configPath); err != nil {
				return cfg, err
			}
		}
		if *listen != "" {
			cfg.Listen = *listen
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		if *webConfig != "" {
			// Relative to the working directory, not to the config file.
			abs, err := filepath.Abs(*webConfig)
			if err != nil {
				return cfg, err
			}
			cfg.WebConfigFile = abs
		}
		for _, t := range targets {
			job, addr, ok := strings.Cut(t, "=")
			if !ok {
				job, addr = "broker", t
			}
			cfg.Targets = append(cfg.Targets, rules.Target{Job: job, Address: addr})
		}
		return cfg, cfg.Validate()
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	m, err := alerting.New(cfg, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				cfg, err := load()
				if err == nil {
					err = m.ApplyConfig(cfg)
				}
				if err != nil {
					logger.Error("reload failed; keeping the running configuration", "err", err)
				}
			}
		}
	}()
	return m.Run(ctx)
}
