// Command kfake serves franz-go's in-memory fake broker (kfake) on 127.0.0.1 until interrupted: the
// reference bench/compare.sh measures a Sluice broker against in the same session. It is a program of
// its own so that the sluice binary does not link kfake.
//
//	go run ./bench/kfake --port 29093
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "listen on 127.0.0.1:`port` (0: any free port)")
	flag.Parse()
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(os.Stderr, "kfake: --port %d is not a port\n", *port)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Printf("kfake listening on %s\n", strings.Join(c.ListenAddrs(), ","))
	<-ctx.Done()
}
