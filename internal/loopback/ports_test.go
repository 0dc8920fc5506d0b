package loopback

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestReserveGivesDistinctBindablePortsOutsideTheEphemeralRange(t *testing.T) {
	t.Parallel()
	p, err := Reserve(20)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	lo, hi := reservableRange()
	seen := map[int]bool{}
	for _, port := range p.List() {
		if port < lo || port >= hi {
			t.Errorf("port %d outside [%d, %d)", port, lo, hi)
		}
		if seen[port] {
			t.Errorf("port %d reserved twice", port)
		}
		seen[port] = true
	}
	if len(seen) != 20 {
		t.Fatalf("got %d ports, want 20", len(seen))
	}
	l, err := net.Listen("tcp", p.Addrs()[0])
	if err != nil {
		t.Fatalf("a reserved port is not bindable by its owner: %v", err)
	}
	l.Close()
}

func TestAReservedPortIsNotReservedAgainUntilReleased(t *testing.T) {
	t.Parallel()
	a, err := Reserve(200)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Reserve(200)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	held := map[int]bool{}
	for _, port := range a.List() {
		held[port] = true
	}
	for _, port := range b.List() {
		if held[port] {
			t.Fatalf("port %d reserved by two holders", port)
		}
	}
	dir := filepath.Join(os.TempDir(), "sluice-ports")
	if f, ok := lockPort(dir, a.List()[0]); ok {
		f.Close()
		t.Fatal("a held port's lock was taken by another holder")
	}
	a.Release()
	a.Release()
	f, ok := lockPort(dir, a.List()[0])
	if !ok {
		t.Fatal("a released port's lock cannot be taken")
	}
	f.Close()
}
