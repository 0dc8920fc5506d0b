package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/clientsec"
)

// runUsers is `sluice users create|delete|list --bootstrap ...`: SCRAM users over
// Kafka's DescribeUserScramCredentials and AlterUserScramCredentials, like
// kafka-configs.sh --entity-type users.
func runUsers(ctx context.Context, args []string) error {
	usage := "usage: sluice users create|delete|list --bootstrap host:port [client security flags] [NAME]"
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Println(usage + "; 'sluice users create --help' lists the flags")
		return flag.ErrHelp
	}
	verb := args[0]
	fs := flag.NewFlagSet("users "+verb, flag.ContinueOnError)
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "brokers: host:port[,host:port]")
	mechanism := fs.String("mechanism", "SCRAM-SHA-512", "create/delete: SCRAM-SHA-256 or SCRAM-SHA-512")
	passwordFile := fs.String("password-file", "", "create: file holding the new user's password (else $SLUICE_USER_PASSWORD)")
	iterations := fs.Int("iterations", 8192, "create: SCRAM iterations (4096 to 16384)")
	var sec clientsec.Config
	sec.RegisterFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var mech kadm.ScramMechanism
	switch strings.ToUpper(*mechanism) {
	case "SCRAM-SHA-256":
		mech = kadm.ScramSha256
	case "SCRAM-SHA-512":
		mech = kadm.ScramSha512
	default:
		return fmt.Errorf("--mechanism: %q is not SCRAM-SHA-256 or SCRAM-SHA-512", *mechanism)
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	name := func() (string, error) {
		if fs.NArg() != 1 || fs.Arg(0) == "" {
			return "", fmt.Errorf("users %s: exactly one user name expected; %s", verb, usage)
		}
		return fs.Arg(0), nil
	}
	switch verb {
	case "create":
		user, err := name()
		if err != nil {
			return err
		}
		var pass string
		if *passwordFile != "" {
			raw, err := os.ReadFile(*passwordFile)
			if err != nil {
				return fmt.Errorf("--password-file: %w", err)
			}
			pass = strings.TrimRight(string(raw), "\r\n")
		} else {
			pass = os.Getenv("SLUICE_USER_PASSWORD")
		}
		if pass == "" {
			return fmt.Errorf("users create: no password: --password-file or $SLUICE_USER_PASSWORD")
		}
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: mech, Iterations: int32(*iterations), Password: pass}})
		if err != nil {
			return err
		}
		if err := res[user].Err; err != nil {
			return fmt.Errorf("users create %s: %w", user, err)
		}
		fmt.Printf("created %s (%s, %d iterations)\n", user, mech, *iterations)
	case "delete":
		user, err := name()
		if err != nil {
			return err
		}
		res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: user, Mechanism: mech}}, nil)
		if err != nil {
			return err
		}
		if err := res[user].Err; err != nil {
			return fmt.Errorf("users delete %s: %w", user, err)
		}
		fmt.Printf("deleted %s (%s)\n", user, mech)
	case "list":
		res, err := adm.DescribeUserSCRAMs(ctx, fs.Args()...)
		if err != nil {
			return err
		}
		users := make([]string, 0, len(res))
		for u := range res {
			users = append(users, u)
		}
		sort.Strings(users)
		for _, u := range users {
			d := res[u]
			if d.Err != nil {
				fmt.Printf("%s\terror: %v\n", u, d.Err)
				continue
			}
			var mechs []string
			for _, ci := range d.CredInfos {
				mechs = append(mechs, fmt.Sprintf("%s(%d)", ci.Mechanism, ci.Iterations))
			}
			fmt.Printf("%s\t%s\n", u, strings.Join(mechs, " "))
		}
	default:
		return fmt.Errorf("users: unknown command %q; %s", verb, usage)
	}
	return nil
}
