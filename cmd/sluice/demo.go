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
	summaries["demo"] = "the local stack with demo traffic and a fault, or the scaling scenario (make demo)"
}

// runDemo is `sluice demo` (make demo): the local stack of `sluice dev` plus demo
// traffic that moves dashboards and lag, and optionally a fault that becomes an
// incident in the ticket service; or, with --scenario scale, the scaling scenario
// (chaos/scaling): brokers and a controller join, a broker leaves, one is killed.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	def := stack.DefaultConfig()
	dataDir := fs.String("data-dir", def.DataDir, "directory for every part's data")
	rate := fs.Int("rate", 200, "records produced per second")
	fault := fs.String("fault", "", "fault to inject: broker (stop broker 2) or consumer (stop a consumer group); empty for none")
	after := fs.Duration("fault-after", 30*time.Second, "when the fault starts")
	lasts := fs.Duration("fault-for", 2*time.Minute, "how long the fault lasts")
	scenario := fs.String("scenario", "", "scale: run the scaling scenario instead of the traffic and fault (needs a new --data-dir)")
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
	cfg.Demo = &stack.Demo{Rate: *rate, Fault: *fault, FaultAfter: *after, FaultFor: *lasts, Scenario: *scenario}
	if *scenario != "" {
		// The scenario starts nodes and runs `sluice cluster` with this binary.
		if cfg.Demo.Bin, err = os.Executable(); err != nil {
			return err
		}
	}
	return stack.Run(ctx, cfg, logger, os.Stdout)
}
