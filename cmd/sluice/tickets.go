package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sluicemq/sluice/tickets"
	"github.com/sluicemq/sluice/tickets/store"
)

// runTickets is `sluice tickets`: the OPS ticket service and web UI, and
// `sluice tickets token create` to mint an API token.
func runTickets(ctx context.Context, args []string) error {
	if len(args) >= 2 && args[0] == "token" && args[1] == "create" {
		return runTicketsTokenCreate(ctx, args[2:])
	}
	def := tickets.DefaultConfig()
	fs := flag.NewFlagSet("tickets", flag.ContinueOnError)
	configFile := fs.String("config", "", "YAML configuration file (flags override it)")
	listen := fs.String("listen", "", "HTTP address of the API, web UI and /metrics (default "+def.Listen+")")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config: TLS, client certificates, basic auth users (bcrypt), headers (default the file's web_config_file)")
	dataDir := fs.String("data-dir", "", "directory of the SQLite database (when --database is not given)")
	database := fs.String("database", "", "PostgreSQL URL postgres://user:pass@host/db instead of SQLite")
	adminPasswordFile := fs.String("admin-password-file", "", "file holding the first admin's password (else $SLUICE_ADMIN_PASSWORD, else generated and printed once)")
	reopen := fs.Duration("reopen-window", 0, "how long after resolving an incident a new alarm of its group reopens it (default 1h)")
	cluster := fs.String("default-cluster", "", "cluster name of alarms without a cluster label (default sluice)")
	adminURLs := fs.String("admin-url", "", "brokers' admin interfaces for fault snapshots: host:port[,host:port]")
	bootstrap := fs.String("bootstrap", "", "Kafka bootstrap addresses for consumer group lag in snapshots: host:port[,host:port]")
	promURL := fs.String("prometheus-url", "", "Prometheus-compatible query API for snapshot charts, e.g. http://127.0.0.1:9090")
	brokerLogs := fs.String("broker-logs", "", "globs of broker log files whose WARN/ERROR lines go into snapshots, comma separated")
	alertingURL := fs.String("alerting-url", "", "HTTP API of sluice alerting for the Silences page, e.g. http://127.0.0.1:9093")
	externalURL := fs.String("external-url", "", "how people reach this service, for links in notifications (default http://<listen>)")
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
	cfg := def
	if *configFile != "" {
		var err error
		if cfg, err = tickets.LoadConfig(*configFile); err != nil && !strings.Contains(err.Error(), "data_dir: required") {
			return err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, *listen)
	set(&cfg.WebConfigFile, *webConfig)
	set(&cfg.DataDir, *dataDir)
	set(&cfg.Database, *database)
	set(&cfg.DefaultCluster, *cluster)
	set(&cfg.Snapshot.PrometheusURL, *promURL)
	set(&cfg.AlertingURL, *alertingURL)
	set(&cfg.ExternalURL, *externalURL)
	if *reopen > 0 {
		cfg.ReopenWindow = *reopen
	}
	if *adminURLs != "" {
		cfg.Snapshot.AdminURLs = strings.Split(*adminURLs, ",")
	}
	if *bootstrap != "" {
		cfg.Snapshot.Bootstrap = strings.Split(*bootstrap, ",")
	}
	if *brokerLogs != "" {
		cfg.Snapshot.LogFiles = strings.Split(*brokerLogs, ",")
	}
	pw, err := adminPassword(*adminPasswordFile)
	if err != nil {
		return err
	}
	cfg.AdminPassword = pw
	if err := cfg.Validate(); err != nil {
		return err
	}
	svc, err := tickets.New(ctx, cfg, logger, tickets.Options{})
	if err != nil {
		return err
	}
	if svc.GeneratedAdminPassword != "" {
		// Printed once, on the terminal only: it is not logged.
		fmt.Fprintf(os.Stderr, "first admin created: user admin, password %s (shown only now)\n", svc.GeneratedAdminPassword)
	}
	return svc.Run(ctx)
}

func adminPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--admin-password-file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if len(pw) < store.MinPasswordLength {
			return "", fmt.Errorf("--admin-password-file: password shorter than %d characters", store.MinPasswordLength)
		}
		return pw, nil
	}
	if pw := os.Getenv("SLUICE_ADMIN_PASSWORD"); pw != "" {
		if len(pw) < store.MinPasswordLength {
			return "", fmt.Errorf("SLUICE_ADMIN_PASSWORD: shorter than %d characters", store.MinPasswordLength)
		}
		return pw, nil
	}
	return "", nil
}

// runTicketsTokenCreate prints a new API token, and nothing else, on stdout.
func runTicketsTokenCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tickets token create", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "directory of the SQLite database")
	database := fs.String("database", "", "PostgreSQL URL instead of SQLite")
	name := fs.String("name", "", "what the token is for, e.g. alertmanager (required)")
	roleName := fs.String("role", "operator", "viewer, operator or admin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	role, ok := store.ParseRole(*roleName)
	if !ok {
		return fmt.Errorf("--role %q: one of viewer, operator, admin", *roleName)
	}
	st, err := store.Open(ctx, store.Options{Database: *database, DataDir: *dataDir})
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := st.CreateToken(ctx, *name, role)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
