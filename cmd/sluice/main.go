// Command sluice is the one Sluice binary: `sluice SUBCOMMAND [flags]`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// subcommands maps each `sluice` subcommand to its entry point, which
// parses its own flags from args. The operations suite (alerting, tickets, and
// the local stack of dev and demo, which runs them) registers itself from files
// a `-tags lean` build leaves out: that binary is a broker with its tools,
// without Prometheus' and Alertmanager's libraries and the cloud SDKs they link
// (make build-lean).
var subcommands = map[string]func(context.Context, []string) error{
	"acls":     runACLs,
	"bench":    runBench,
	"broker":   runBroker,
	"chaos":    runChaos,
	"exporter": runExporter,
	"quotas":   runQuotas,
	"users":    runUsers,
	"tenants":  runTenants,
	"plans":    runPlans,
	"certs":    runCerts,

	"transactions": runTransactions,
	"cluster":      runCluster,
	"partitions":   runPartitions,
}

// summaries are the one-line descriptions `sluice help` prints.
var summaries = map[string]string{
	"acls":     "add, remove and list Kafka ACLs with kafka-acls.sh's flags",
	"bench":    "measure produce and consume throughput against a cluster",
	"broker":   "run a Kafka-compatible broker",
	"certs":    "a private CA and broker and client certificates (PEM) for TLS and mTLS",
	"chaos":    "kill and restart brokers under load and check nothing acknowledged is lost",
	"cluster":  "the metadata quorum (describe-quorum, add-controller, remove-controller); drain and unregister a broker",
	"exporter": "the metrics sidecar (kafka_exporter names, honest lag)",
	"quotas":   "set and list client quotas per user and client id",
	"users":    "create, delete and list SCRAM users",
	"tenants":  "create, delete, list and show tenants; their plans and principals",
	"plans":    "create and list the tenants' plans (bandwidth, disk, partitions, connections)",

	"transactions": "list, describe and abort transactions, like kafka-transactions.sh",
	"partitions":   "reassign partitions, list reassignments, elect leaders",
}

func main() {
	// Signals become ctx's cancellation from the first instruction on, so
	// Ctrl-C and SIGTERM stop a subcommand during its startup too.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command line: it returns the exit status (0, 1 for a failed
// subcommand, 2 for a usage error).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && subcommands[args[1]] != nil {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	}
	f := subcommands[name]
	if f == nil {
		msg := fmt.Sprintf("sluice: unknown command %q", name)
		if s := suggest(name); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		fmt.Fprintln(stderr, msg)
		fmt.Fprintln(stderr, "Run 'sluice help' for the list of commands.")
		return 2
	}
	err := f(ctx, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case isUsageError(err):
		return 2 // the flag package printed the error and the usage
	}
	fmt.Fprintf(stderr, "sluice %s: %v\n", name, err)
	return 1
}

// isUsageError reports whether err is the flag package's parse error, which it
// has already printed with the usage.
func isUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "flag provided but not defined") || strings.HasPrefix(msg, "invalid value ") ||
		strings.HasPrefix(msg, "invalid boolean") || strings.HasPrefix(msg, "flag needs an argument") ||
		strings.HasPrefix(msg, "bad flag syntax")
}

func usage(w io.Writer) {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Sluice: a Kafka-compatible streaming service with its own monitoring, alerting and tickets.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: sluice COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, summaries[n])
	}
	fmt.Fprintf(w, "  %-9s %s\n", "help", "this list; 'sluice help COMMAND' or 'sluice COMMAND --help' for a command's flags")
	fmt.Fprintf(w, "  %-9s %s\n", "version", "the build's version, commit and Go version")
}

// version describes the build from the information the Go toolchain embeds:
// module version, VCS commit and time, and whether the tree was modified.
func version() string {
	v := "sluice"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v + " (no build information) " + runtime.Version()
	}
	v += " " + bi.Main.Version
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		v += " commit " + rev
		if set["vcs.modified"] == "true" {
			v += " (modified)"
		}
		if t := set["vcs.time"]; t != "" {
			v += " from " + t
		}
	}
	return v + fmt.Sprintf(", %s %s/%s", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// suggest returns the subcommand closest to name (a typo within two edits, or
// a prefix), or "".
func suggest(name string) string {
	best, bestD := "", 3
	for n := range subcommands {
		d := editDistance(name, n)
		if strings.HasPrefix(n, name) && len(name) >= 2 {
			d = min(d, 1)
		}
		if d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// stderrLogger is every subcommand's text logger on stderr, at its --log-level.
func stderrLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
