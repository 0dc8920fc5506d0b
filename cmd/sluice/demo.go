//go:build !lean

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sluicemq/sluice/stack"
)

func init() {
	subcommands["demo"] = runDemo
	summaries["demo"] = "the local stack with demo traffic and a fault (make demo)"
}

// runDemo is `sluice demo` (make demo): the local stack of `sluice dev` plus demo
// traffic that moves dashboards and lag, and optionally a fault that becomes an
// incident in the ticket service.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	def := stack.DefaultConfig()
	dataDir := fs.String("data-dir", def.DataDir, "directory for every part's data")
	rate := fs.Int("rate", 200, "records produced per second")
	fault := fs.String("fault", "", "fault to inject: broker (stop broker 2) or consumer (stop a consumer group); empty for none")
	after := fs.Duration("fault-after", 30*time.Second, "when the fault starts")
	lasts := fs.Duration("fault-for", 2*time.Minute, "how long the fault lasts")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
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
	cfg.DataDir = *dataDir
	cfg.AdminPassword = os.Getenv("SLUICE_ADMIN_PASSWORD")
	cfg.Demo = &stack.Demo{Rate: *rate, Fault: *fault, FaultAfter: *after, FaultFor: *lasts}
	return stack.Run(ctx, cfg, logger, os.Stdout)
}
