//go:build !lean

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluicemq/sluice/tickets"
	"github.com/sluicemq/sluice/tickets/store"
)

func init() {
	subcommands["tickets"] = runTickets
	summaries["tickets"] = "the ticket service and web UI"
}

// runTickets is `sluice tickets`: the OPS ticket service and web UI,
// `sluice tickets token create` to mint an API token and `sluice tickets admin
// reset-password` to set a user's password from the machine.
func runTickets(ctx context.Context, args []string) error {
	if len(args) >= 2 && args[0] == "token" && args[1] == "create" {
		return runTicketsTokenCreate(ctx, args[2:])
	}
	if len(args) >= 2 && args[0] == "admin" && args[1] == "reset-password" {
		return runTicketsResetPassword(ctx, args[2:], os.Stdout)
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
	// docker-compose.yml hands the database password over in PGPASSWORD.
	if store.IsExamplePassword(os.Getenv("PGPASSWORD")) {
		return errors.New("PGPASSWORD: the example password of deploy/secrets/postgres_password.example (change-me-...); set your own")
	}
	// New checks everything (configuration, secrets, database, the listen
	// address) before it creates the first admin, so a password is printed
	// only for a service that starts.
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

// adminPassword reads a password from file, else $SLUICE_ADMIN_PASSWORD; ""
// when neither is set. The password rules (length, not an example password)
// are checked here, before anything is written.
func adminPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if err := store.CheckPassword(pw); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		return pw, nil
	}
	if pw := os.Getenv("SLUICE_ADMIN_PASSWORD"); pw != "" {
		if err := store.CheckPassword(pw); err != nil {
			return "", fmt.Errorf("SLUICE_ADMIN_PASSWORD: %w", err)
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
	expiresIn := fs.Duration("expires-in", 0, "how long the token works, at most 8784h; 0 (the default, for integrations such as Alertmanager's webhook) for ever")
	owner := fs.String("owner", "", "user the token belongs to: it stops working while the user is disabled (default none)")
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
	if *expiresIn < 0 || *expiresIn > 366*24*time.Hour {
		return fmt.Errorf("--expires-in %s: from 0 (never) to 8784h", *expiresIn)
	}
	st, err := store.Open(ctx, store.Options{Database: *database, DataDir: *dataDir})
	if err != nil {
		return err
	}
	defer st.Close()
	nt := store.NewToken{Name: *name, Role: role, CreatedBy: "command line", TTL: *expiresIn}
	if *owner != "" {
		u, err := st.UserByName(ctx, *owner)
		if err != nil {
			return fmt.Errorf("--owner %q: %w", *owner, err)
		}
		nt.OwnerID = u.ID
	}
	tok, _, err := st.MintToken(ctx, nt)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// runTicketsResetPassword sets a user's password (admin by default) from
// --password-file, else $SLUICE_ADMIN_PASSWORD, else a generated one printed
// once on out; it ends the user's sessions. It works on the database
// directly, with or without the service running.
func runTicketsResetPassword(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tickets admin reset-password", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "directory of the SQLite database")
	database := fs.String("database", "", "PostgreSQL URL instead of SQLite")
	user := fs.String("user", "admin", "user whose password is reset")
	pwFile := fs.String("password-file", "", "file holding the new password (else $SLUICE_ADMIN_PASSWORD, else generated and printed once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *dataDir == "" && *database == "" {
		return errors.New("--data-dir or --database is required")
	}
	pw, err := adminPassword(*pwFile)
	if err != nil {
		return err
	}
	generated := pw == ""
	if generated {
		pw = store.RandomPassword()
	}
	st, err := store.Open(ctx, store.Options{Database: *database, DataDir: *dataDir})
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.UserByName(ctx, *user)
	if err != nil {
		return fmt.Errorf("--user %q: %w", *user, err)
	}
	if _, err := st.ResetPassword(ctx, u.ID, pw, "command line"); err != nil {
		return err
	}
	if generated {
		fmt.Fprintf(out, "password of %s reset to %s (shown only now); their sessions have ended\n", u.Username, pw)
	} else {
		fmt.Fprintf(out, "password of %s reset; their sessions have ended\n", u.Username)
	}
	return nil
}
