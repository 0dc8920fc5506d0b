package bench

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Fake is franz-go's in-memory fake broker (kfake) running in this
// process: the reference a broker's figures are compared with in the same
// session on the same machine.
type Fake struct {
	cluster *kfake.Cluster
}

// StartFake starts a one-broker kfake cluster listening on a random
// loopback port. Close it when done.
func StartFake(opts ...kfake.Opt) (*Fake, error) {
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(0)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting kfake: %w", err)
	}
	return &Fake{cluster: c}, nil
}

// Bootstrap returns the fake's address for Config.Bootstrap.
func (f *Fake) Bootstrap() string { return strings.Join(f.cluster.ListenAddrs(), ",") }

// Close stops the fake and drops its data.
func (f *Fake) Close() { f.cluster.Close() }
