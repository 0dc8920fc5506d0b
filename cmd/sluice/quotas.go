package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/clientsec"
)

// runQuotas is `sluice quotas set|list`: client quotas (KIP-13, KIP-124,
// KIP-599) through AlterClientQuotas and DescribeClientQuotas, like Kafka's
// kafka-configs --entity-type users/clients.
func runQuotas(ctx context.Context, args []string) error {
	return quotasCommand(ctx, args, os.Stdout)
}

const quotasUsage = `usage:
  sluice quotas set  [--bootstrap host:port] [security flags] --entity ENTITY [--remove KEY]... [KEY=VALUE]...
  sluice quotas list [--bootstrap host:port] [security flags] [--entity ENTITY]

ENTITY is user=NAME, client-id=NAME or both, comma-separated; <default> names
the default entity of a type, e.g. 'user=alice,client-id=<default>'.
KEYs: producer_byte_rate and consumer_byte_rate (bytes/s), request_percentage
(percent of one request thread), controller_mutation_rate (partitions/s).
list shows every quota, or those of entities matching --entity.
`

func quotasCommand(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(out, quotasUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "set" && args[0] != "list") {
		fmt.Fprint(os.Stderr, quotasUsage)
		return errors.New("quotas: want set or list")
	}
	sub := args[0]
	fs := flag.NewFlagSet("quotas "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), quotasUsage+"\nflags:\n"); fs.PrintDefaults() }
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "comma-separated `host:port` list of seed brokers")
	entityFlag := fs.String("entity", "", "quota `entity`, e.g. user=alice,client-id=<default>")
	var sec clientsec.Config
	sec.RegisterFlags(fs)
	var removes []string
	fs.Func("remove", "quota `key` to remove (set only), repeatable", func(v string) error {
		removes = append(removes, v)
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var entity kadm.ClientQuotaEntity
	if *entityFlag != "" {
		var err error
		if entity, err = parseQuotaEntity(*entityFlag); err != nil {
			return fmt.Errorf("--entity: %w", err)
		}
	}
	secOpts, err := sec.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...)}, secOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	if sub == "list" {
		if fs.NArg() > 0 {
			return fmt.Errorf("quotas list: unexpected argument %q", fs.Arg(0))
		}
		return listQuotas(ctx, adm, entity, out)
	}
	if entity == nil {
		return errors.New("quotas set: --entity is required")
	}
	var ops []kadm.AlterClientQuotaOp
	for _, kv := range fs.Args() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("quotas set: %q is not KEY=VALUE", kv)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("quotas set: %s: %q is not a number", k, v)
		}
		ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Value: f})
	}
	for _, k := range removes {
		ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Remove: true})
	}
	if len(ops) == 0 {
		return errors.New("quotas set: nothing to set or remove")
	}
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: entity, Ops: ops}})
	if err != nil {
		return fmt.Errorf("quotas set: %w", err)
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("quotas set %s: %w: %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	fmt.Fprintf(out, "updated %s\n", entityString(entity))
	return nil
}

func listQuotas(ctx context.Context, adm *kadm.Client, entity kadm.ClientQuotaEntity, out io.Writer) error {
	var comps []kadm.DescribeClientQuotaComponent
	for _, c := range entity {
		dc := kadm.DescribeClientQuotaComponent{Type: c.Type, MatchName: c.Name, MatchType: kmsg.QuotasMatchTypeExact}
		if c.Name == nil {
			dc.MatchType = kmsg.QuotasMatchTypeDefault
		}
		comps = append(comps, dc)
	}
	described, err := adm.DescribeClientQuotas(ctx, false, comps)
	if err != nil {
		return fmt.Errorf("quotas list: %w", err)
	}
	sort.Slice(described, func(i, j int) bool {
		return entityString(described[i].Entity) < entityString(described[j].Entity)
	})
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ENTITY\tKEY\tVALUE")
	for _, d := range described {
		vals := d.Values
		sort.Slice(vals, func(i, j int) bool { return vals[i].Key < vals[j].Key })
		for _, v := range vals {
			fmt.Fprintf(w, "%s\t%s\t%s\n", entityString(d.Entity), v.Key, strconv.FormatFloat(v.Value, 'f', -1, 64))
		}
	}
	return w.Flush()
}

// parseQuotaEntity parses "user=alice,client-id=<default>".
func parseQuotaEntity(s string) (kadm.ClientQuotaEntity, error) {
	var e kadm.ClientQuotaEntity
	for _, part := range strings.Split(s, ",") {
		typ, name, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || (typ != "user" && typ != "client-id") {
			return nil, fmt.Errorf("%q is not user=NAME or client-id=NAME", part)
		}
		c := kadm.ClientQuotaEntityComponent{Type: typ}
		if name != "<default>" {
			c.Name = &name
		}
		e = append(e, c)
	}
	return e, nil
}

// entityString renders an entity the way --entity takes it, user first.
func entityString(e kadm.ClientQuotaEntity) string {
	parts := make([]string, 0, len(e))
	for _, c := range e {
		name := "<default>"
		if c.Name != nil {
			name = *c.Name
		}
		parts = append(parts, c.Type+"="+name)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] > parts[j] }) // user= before client-id=
	return strings.Join(parts, ",")
}
