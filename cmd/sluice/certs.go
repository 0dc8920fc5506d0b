package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sluicemq/sluice/stack/localca"
)

// runCerts is `sluice certs`: a private CA and the certificates of a small cluster,
// as PEM files in --dir, for the recipes in docs/security.md and for tests. The CA
// key is not kept: to add a certificate later, run it again for every certificate.
func runCerts(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	dir := fs.String("dir", "certs", "directory for ca.pem and NAME.pem, NAME-key.pem, NAME-keystore.pem")
	var servers, clients multiFlag
	fs.Var(&servers, "server", "NAME=HOST[,HOST...]: a broker certificate valid for these hosts (repeatable); its subject is CN=NAME,O=Sluice")
	fs.Var(&clients, "client", "NAME: a client certificate with subject CN=NAME,O=Sluice (repeatable)")
	validity := fs.Duration("validity", 365*24*time.Hour, "validity of every certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || len(servers)+len(clients) == 0 {
		return fmt.Errorf("usage: sluice certs --dir DIR --server NAME=HOST[,HOST] [--client NAME]")
	}
	ca, err := localca.New(*dir, "Sluice local CA", *validity)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", ca.CertFile)
	for _, s := range servers {
		name, hosts, ok := strings.Cut(s, "=")
		if !ok || name == "" || hosts == "" {
			return fmt.Errorf("--server: %q is not NAME=HOST[,HOST]", s)
		}
		p, err := ca.Issue(name, name, strings.Split(hosts, ","), *validity)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s %s\n", p.Keystore, p.CertFile, p.KeyFile)
	}
	for _, c := range clients {
		p, err := ca.Issue(c, c, nil, *validity)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s %s\n", p.Keystore, p.CertFile, p.KeyFile)
	}
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
