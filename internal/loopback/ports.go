// Package loopback reserves loopback TCP ports for processes that must be told their port before
// they start (brokers restarted in place, Prometheus, Alertmanager).
//
// Picking a port by binding 127.0.0.1:0 and closing the listener is a race: the kernel hands the
// same port to the next process that binds port 0 or connects out, which on a busy machine happens
// before the child binds it. Ports reserved here come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), which the kernel never gives out by itself, and each is held by
// an exclusive lock on a file in the temporary directory until Release, so two test binaries or
// `sluice chaos` runs never pick the same one.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// The range reserved ports come from when the ephemeral range cannot be read or leaves too little
// room below it: [minPort, maxPort).
const (
	minPort = 20000
	maxPort = 32768
)

// Ports is a set of reserved loopback ports.
type Ports struct {
	ports []int
	locks []*os.File
	once  sync.Once
}

// Reserve reserves n distinct ports that are free on 127.0.0.1 now and stay reserved until Release.
func Reserve(n int) (*Ports, error) {
	lo, hi := reservableRange()
	dir := filepath.Join(os.TempDir(), "sluice-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	p := &Ports{}
	start := lo + rand.IntN(hi-lo)
	for i := 0; i < hi-lo && len(p.ports) < n; i++ {
		port := lo + (start-lo+i)%(hi-lo)
		f, ok := lockPort(dir, port)
		if !ok {
			continue
		}
		if !bindable(port) {
			f.Close()
			continue
		}
		p.ports = append(p.ports, port)
		p.locks = append(p.locks, f)
	}
	if len(p.ports) < n {
		p.Release()
		return nil, errors.New("loopback: no free ports left to reserve")
	}
	return p, nil
}

// List returns the reserved ports.
func (p *Ports) List() []int { return p.ports }

// Addrs returns the reserved ports as 127.0.0.1:port addresses.
func (p *Ports) Addrs() []string {
	out := make([]string, len(p.ports))
	for i, port := range p.ports {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	return out
}

// Release gives the ports back. It is safe to call more than once.
func (p *Ports) Release() {
	p.once.Do(func() {
		for _, f := range p.locks {
			f.Close()
		}
	})
}

// reservableRange is the range below the kernel's ephemeral ports, or the default range.
func reservableRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return minPort, maxPort
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return minPort, maxPort
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low-minPort < 2000 {
		return minPort, maxPort
	}
	return minPort, low
}

// bindable reports whether 127.0.0.1:port can be bound now.
func bindable(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
