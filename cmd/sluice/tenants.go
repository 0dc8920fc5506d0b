package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// runTenants is `sluice tenants ...`: tenants through the brokers' admin API.
func runTenants(ctx context.Context, args []string) error {
	return tenantsCommand(ctx, args, os.Stdout)
}

// runPlans is `sluice plans ...`: the tenants' plans through the brokers' admin API.
func runPlans(ctx context.Context, args []string) error {
	return plansCommand(ctx, args, os.Stdout)
}

const tenantsUsage = `usage:
  sluice tenants create NAME --plan PLAN --prefix PREFIX... [--principal User:NAME]... [--slack-channel C] [--email ADDR] [admin flags]
  sluice tenants delete NAME [admin flags]
  sluice tenants list [admin flags]
  sluice tenants show NAME [admin flags]
  sluice tenants set-plan NAME PLAN [admin flags]
  sluice tenants add-principal NAME User:NAME [admin flags]
  sluice tenants remove-principal NAME User:NAME [admin flags]

A tenant owns principals and resource prefixes (topics, groups and
transactional ids starting with one of them); the brokers keep PREFIXED ACLs
for them and hold the tenant to its plan. Changes go to the metadata log
through the controller; delete removes the tenant's ACLs, not its topics.
show prints the tenant with its usage as each broker counts it.
`

const plansUsage = `usage:
  sluice plans create NAME [--produce-bytes-per-second N] [--fetch-bytes-per-second N]
                           [--disk-bytes N] [--partitions N] [--connections N] [admin flags]
  sluice plans list [admin flags]

create creates or replaces a plan; 0 (the default) means unlimited. Tenants on
a plan are held to its new limits at once.
`

// adminFlags are the flags that reach the brokers' admin interfaces.
type adminFlags struct {
	urls, user, passwordFile string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.urls, "admin", "http://127.0.0.1:9644", "comma-separated admin `URL`s of the brokers (admin.listen); writes go to whichever is the controller")
	fs.StringVar(&a.user, "admin-user", "", "basic auth `user` of the brokers' web.config.file")
	fs.StringVar(&a.passwordFile, "admin-password-file", "", "`file` holding the basic auth password (else $SLUICE_ADMIN_PASSWORD)")
}

func (a *adminFlags) client() (*adminapi.Client, error) {
	c := &adminapi.Client{Username: a.user}
	for _, u := range strings.Split(a.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.URLs = append(c.URLs, u)
		}
	}
	if len(c.URLs) == 0 {
		return nil, errors.New("--admin: no URL")
	}
	if a.user != "" {
		c.Password = os.Getenv("SLUICE_ADMIN_PASSWORD")
		if a.passwordFile != "" {
			b, err := os.ReadFile(a.passwordFile)
			if err != nil {
				return nil, fmt.Errorf("--admin-password-file: %w", err)
			}
			c.Password = strings.TrimRight(string(b), "\r\n")
		}
	}
	return c, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseSub splits `sub [positional...] [flags]` and parses the flags wherever they are.
func parseSub(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	return pos, nil
}

func helpArg(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
}

func tenantsCommand(ctx context.Context, args []string, out io.Writer) error {
	if helpArg(args) {
		fmt.Fprint(out, tenantsUsage)
		return flag.ErrHelp
	}
	subs := []string{"create", "delete", "list", "show", "set-plan", "add-principal", "remove-principal"}
	if len(args) == 0 || !slices.Contains(subs, args[0]) {
		fmt.Fprint(os.Stderr, tenantsUsage)
		return fmt.Errorf("tenants: want one of %s", strings.Join(subs, ", "))
	}
	sub := args[0]
	fs := flag.NewFlagSet("tenants "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), tenantsUsage+"\nflags:\n"); fs.PrintDefaults() }
	var af adminFlags
	af.register(fs)
	var prefixes, principals listFlag
	plan, slack, email := "", "", ""
	if sub == "create" {
		fs.StringVar(&plan, "plan", "", "the tenant's `plan`")
		fs.Var(&prefixes, "prefix", "a resource `prefix` of the tenant, e.g. payments. (repeatable)")
		fs.Var(&principals, "principal", "a `principal` of the tenant, e.g. User:payments-app (repeatable)")
		fs.StringVar(&slack, "slack-channel", "", "Slack `channel` of the tenant's alerts")
		fs.StringVar(&email, "email", "", "email `address` of the tenant's alerts")
	}
	pos, err := parseSub(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	want := map[string]int{"create": 1, "delete": 1, "list": 0, "show": 1, "set-plan": 2, "add-principal": 2, "remove-principal": 2}[sub]
	if len(pos) != want {
		return fmt.Errorf("tenants %s: want %d argument(s), got %d (see sluice tenants --help)", sub, want, len(pos))
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		t, err := cl.PutTenant(ctx, adminapi.Tenant{Name: pos[0], Plan: plan, Prefixes: prefixes, Principals: principals,
			SlackChannel: slack, Email: email})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created tenant %s\n", t.Name)
	case "delete":
		if err := cl.DeleteTenant(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted tenant %s\n", pos[0])
	case "list":
		ts, err := cl.Tenants(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPLAN\tPREFIXES\tPRINCIPALS")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Plan, strings.Join(t.Prefixes, ","), strings.Join(t.Principals, ","))
		}
		return tw.Flush()
	case "show":
		t, err := cl.Tenant(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "name:          %s\nplan:          %s\nprefixes:      %s\nprincipals:    %s\nslack channel: %s\nemail:         %s\n",
			t.Name, t.Plan, strings.Join(t.Prefixes, ", "), strings.Join(t.Principals, ", "), t.SlackChannel, t.Email)
		usage, uerr := cl.Usage(ctx, pos[0])
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nBROKER\tBYTES IN\tBYTES OUT\tREQUESTS\tTHROTTLED S\tDISK BYTES\tCONNECTIONS")
		for _, u := range usage {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f\t%d\t%d\n", u.BrokerID, u.BytesIn, u.BytesOut, u.Requests, u.ThrottleSeconds, u.DiskBytes, u.Connections)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if uerr != nil {
			return fmt.Errorf("usage: %w", uerr)
		}
	case "set-plan", "add-principal", "remove-principal":
		t, err := cl.Tenant(ctx, pos[0])
		if err != nil {
			return err
		}
		switch sub {
		case "set-plan":
			t.Plan = pos[1]
		case "add-principal":
			if slices.Contains(t.Principals, pos[1]) {
				return fmt.Errorf("tenant %s already has principal %s", t.Name, pos[1])
			}
			t.Principals = append(t.Principals, pos[1])
		case "remove-principal":
			i := slices.Index(t.Principals, pos[1])
			if i < 0 {
				return fmt.Errorf("tenant %s has no principal %s", t.Name, pos[1])
			}
			t.Principals = slices.Delete(t.Principals, i, i+1)
		}
		if _, err := cl.PutTenant(ctx, t); err != nil {
			return err
		}
		fmt.Fprintf(out, "updated tenant %s\n", t.Name)
	}
	return nil
}

func plansCommand(ctx context.Context, args []string, out io.Writer) error {
	if helpArg(args) {
		fmt.Fprint(out, plansUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "create" && args[0] != "list") {
		fmt.Fprint(os.Stderr, plansUsage)
		return errors.New("plans: want create or list")
	}
	sub := args[0]
	fs := flag.NewFlagSet("plans "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), plansUsage+"\nflags:\n"); fs.PrintDefaults() }
	var af adminFlags
	af.register(fs)
	var p adminapi.Plan
	if sub == "create" {
		fs.Int64Var(&p.ProduceBytesPerSecond, "produce-bytes-per-second", 0, "peak produce bandwidth of the whole tenant")
		fs.Int64Var(&p.FetchBytesPerSecond, "fetch-bytes-per-second", 0, "peak fetch bandwidth of the whole tenant")
		fs.Int64Var(&p.DiskBytes, "disk-bytes", 0, "disk capacity: log size times replication factor")
		parts := fs.Int("partitions", 0, "most partitions of the tenant's topics")
		conns := fs.Int("connections", 0, "most connections of the tenant to one broker")
		pos, err := parseSub(fs, args[1:])
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("plans create: want the plan's name, got %d arguments", len(pos))
		}
		for name, v := range map[string]int{"--partitions": *parts, "--connections": *conns} {
			if v < 0 || v > math.MaxInt32 {
				return fmt.Errorf("%s: %d out of range [0, %d]", name, v, math.MaxInt32)
			}
		}
		p.Name, p.Partitions, p.Connections = pos[0], int32(*parts), int32(*conns)
		cl, err := af.client()
		if err != nil {
			return err
		}
		if _, err := cl.PutPlan(ctx, p); err != nil {
			return err
		}
		fmt.Fprintf(out, "created plan %s\n", p.Name)
		return nil
	}
	pos, err := parseSub(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("plans list: no arguments, got %d", len(pos))
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	plans, err := cl.Plans(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPRODUCE B/S\tFETCH B/S\tDISK BYTES\tPARTITIONS\tCONNECTIONS\tDISK POLICY")
	for _, p := range plans {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, limit(p.ProduceBytesPerSecond), limit(p.FetchBytesPerSecond),
			limit(p.DiskBytes), limit(int64(p.Partitions)), limit(int64(p.Connections)), p.DiskPolicy)
	}
	return tw.Flush()
}

// limit prints a plan limit, "unlimited" for 0.
func limit(v int64) string {
	if v == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
}
