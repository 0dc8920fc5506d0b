//go:build !lean

package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/sluicemq/sluice/stack"
)

func init() {
	subcommands["dev"] = runDev
	summaries["dev"] = "the whole local stack in one process (make run)"
}

// runDev is `sluice dev`: the whole local stack in one process (what `make run`
// starts). The ticket service's first admin password comes from
// SLUICE_ADMIN_PASSWORD, else it is generated and printed once.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	def := stack.DefaultConfig()
	dataDir := fs.String("data-dir", def.DataDir, "directory for every part's data")
	brokers := fs.Int("brokers", def.Brokers, "number of brokers")
	flush := fs.String("flush", def.Flush, "brokers' flush policy: none, interval or always")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	secure := fs.Bool("secure", false, "serve Kafka with SASL_SSL only: a local CA and the SCRAM user admin with a generated password under DATA-DIR/secure (prints the kcat line)")
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
	cfg.DataDir, cfg.Brokers, cfg.Flush, cfg.Secure = *dataDir, *brokers, *flush, *secure
	cfg.AdminPassword = os.Getenv("SLUICE_ADMIN_PASSWORD")
	return stack.Run(ctx, cfg, logger, os.Stdout)
}
