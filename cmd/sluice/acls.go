package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/clientsec"
)

// runACLs is `sluice acls add|remove|list`: a thin wrapper over the Kafka ACL APIs
// (CreateAcls, DeleteAcls, DescribeAcls) through kadm, with kafka-acls.sh's flag
// names, so it works against Sluice and Apache Kafka alike.
func runACLs(ctx context.Context, args []string) error {
	return runACLsTo(ctx, args, os.Stdout)
}

// stringList is a repeatable, comma-separated flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func runACLsTo(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintln(out, "usage: sluice acls add|remove|list --bootstrap host:port [flags]; 'sluice acls add --help' lists the flags")
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove" && args[0] != "list") {
		return errors.New("usage: sluice acls add|remove|list --bootstrap host:port [flags]")
	}
	verb := args[0]
	fs := flag.NewFlagSet("acls "+verb, flag.ContinueOnError)
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "comma-separated `host:port` list of seed brokers")
	var sec clientsec.Config
	sec.RegisterFlags(fs)
	var allow, deny, allowHosts, denyHosts, ops, topics, groups, txns, principals stringList
	fs.Var(&allow, "allow-principal", "principal (User:name) the ACL allows; repeatable")
	fs.Var(&deny, "deny-principal", "principal (User:name) the ACL denies; repeatable")
	fs.Var(&allowHosts, "allow-host", "host the allow ACLs apply to (default * when adding)")
	fs.Var(&denyHosts, "deny-host", "host the deny ACLs apply to (default * when adding)")
	fs.Var(&ops, "operation", "operation: All, Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite; repeatable")
	fs.Var(&topics, "topic", "topic name (or prefix with --resource-pattern-type prefixed); repeatable")
	fs.Var(&groups, "group", "consumer group id; repeatable")
	fs.Var(&txns, "transactional-id", "transactional id; repeatable")
	fs.Var(&principals, "principal", "list: only ACLs of this principal; repeatable")
	cluster := fs.Bool("cluster", false, "the CLUSTER resource")
	pattern := fs.String("resource-pattern-type", "literal", "literal or prefixed; list and remove also take match and any (list's default)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the cluster")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	patternSet := false
	fs.Visit(func(f *flag.Flag) { patternSet = patternSet || f.Name == "resource-pattern-type" })
	if verb == "list" && !patternSet {
		*pattern = "any"
	}
	pt, err := kmsg.ParseACLResourcePatternType(*pattern)
	if err != nil || pt < kmsg.ACLResourcePatternTypeAny || (verb == "add" && pt != kmsg.ACLResourcePatternTypeLiteral && pt != kmsg.ACLResourcePatternTypePrefixed) {
		return fmt.Errorf("--resource-pattern-type: %q is not one of literal, prefixed (match, any: list and remove only)", *pattern)
	}
	b := kadm.NewACLs().ResourcePatternType(pt)
	if len(topics) > 0 {
		b.Topics(topics...)
	}
	if len(groups) > 0 {
		b.Groups(groups...)
	}
	if len(txns) > 0 {
		b.TransactionalIDs(txns...)
	}
	if *cluster {
		b.Clusters()
	}
	noResource := len(topics)+len(groups)+len(txns) == 0 && !*cluster
	var parsedOps []kadm.ACLOperation
	for _, o := range ops {
		op, err := kmsg.ParseACLOperation(o)
		if err != nil || op <= kmsg.ACLOperationAny {
			return fmt.Errorf("--operation: %q is not a Kafka ACL operation", o)
		}
		parsedOps = append(parsedOps, op)
	}

	switch verb {
	case "add":
		switch {
		case noResource:
			return errors.New("add: name a resource: --topic, --group, --transactional-id or --cluster")
		case len(allow)+len(deny) == 0:
			return errors.New("add: name a principal: --allow-principal or --deny-principal")
		case len(parsedOps) == 0:
			return errors.New("add: name an --operation")
		}
		if len(allowHosts) == 0 {
			allowHosts = stringList{"*"}
		}
		if len(denyHosts) == 0 {
			denyHosts = stringList{"*"}
		}
	case "remove":
		if noResource && len(allow)+len(deny) == 0 {
			return errors.New("remove: name a resource or a principal; it deletes every ACL the filter matches")
		}
	}
	if len(allow) > 0 {
		b.Allow(allow...).AllowHosts(allowHosts...)
	}
	if len(deny) > 0 {
		b.Deny(deny...).DenyHosts(denyHosts...)
	}
	if verb != "add" {
		if noResource {
			b.AnyResource()
		}
		if len(allow)+len(deny) == 0 {
			b.Allow(principals...).AllowHosts(allowHosts...).Deny(principals...).DenyHosts(denyHosts...)
		}
		if len(parsedOps) == 0 {
			parsedOps = []kadm.ACLOperation{kmsg.ACLOperationAny}
		}
	}
	b.Operations(parsedOps...)

	secOpts, err := sec.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...), kgo.RetryTimeout(*timeout)}, secOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var rows []kadm.DescribedACL
	switch verb {
	case "add":
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return err
		}
		var errs []error
		for _, r := range res {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("%s %s %s on %s %s %q: %w", r.Permission, r.Principal, r.Operation, r.Pattern, r.Type, r.Name, r.Err))
				continue
			}
			rows = append(rows, kadm.DescribedACL{Principal: r.Principal, Host: r.Host, Type: r.Type, Name: r.Name,
				Pattern: r.Pattern, Operation: r.Operation, Permission: r.Permission})
		}
		fmt.Fprintf(out, "added %d ACLs\n", len(rows))
		if len(errs) > 0 {
			printACLs(out, rows)
			return errors.Join(errs...)
		}
	case "remove":
		res, err := adm.DeleteACLs(ctx, b)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return fmt.Errorf("remove: %w", r.Err)
			}
			for _, d := range r.Deleted {
				if d.Err != nil {
					return fmt.Errorf("remove: %w", d.Err)
				}
				rows = append(rows, kadm.DescribedACL{Principal: d.Principal, Host: d.Host, Type: d.Type, Name: d.Name,
					Pattern: d.Pattern, Operation: d.Operation, Permission: d.Permission})
			}
		}
		fmt.Fprintf(out, "removed %d ACLs\n", len(rows))
	case "list":
		res, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return fmt.Errorf("list: %w", r.Err)
			}
			rows = append(rows, r.Described...)
		}
	}
	printACLs(out, rows)
	return nil
}

// printACLs writes ACLs as a table, sorted by resource.
func printACLs(out io.Writer, rows []kadm.DescribedACL) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return fmt.Sprint(a) < fmt.Sprint(b)
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tPATTERN\tNAME\tPRINCIPAL\tHOST\tOPERATION\tPERMISSION")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Type, r.Pattern, r.Name, r.Principal, r.Host, r.Operation, r.Permission)
	}
	tw.Flush()
}
