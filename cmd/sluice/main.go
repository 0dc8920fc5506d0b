// Command sluice is the one Sluice binary: `sluice SUBCOMMAND [flags]`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// subcommands maps each `sluice` subcommand to its entry point, which
// parses its own flags from args.
var subcommands = map[string]func(context.Context, []string) error{
	"acls":     runACLs,
	"alerting": runAlerting,
	"bench":    runBench,
	"broker":   runBroker,
	"chaos":    runChaos,
	"demo":     runDemo,
	"dev":      runDev,
	"exporter": runExporter,
	"quotas":   runQuotas,
	"tickets":  runTickets,
	"users":    runUsers,
	"certs":    runCerts,
}

func main() {
	if len(os.Args) < 2 || subcommands[os.Args[1]] == nil {
		names := make([]string, 0, len(subcommands))
		for n := range subcommands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: sluice %v [flags]\n", names)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := subcommands[os.Args[1]](ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluice %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// stderrLogger is every subcommand's text logger on stderr, at its --log-level.
func stderrLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
