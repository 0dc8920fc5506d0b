package metadata

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Voter is one member of the static Raft quorum: a node ID and the address of its Raft (controller)
// listener, one entry of Kafka's `controller.quorum.voters`.
type Voter struct {
	ID   int32
	Addr string
}

// ParseVoters parses Kafka's `controller.quorum.voters` format, a comma-separated list of
// `id@host:port` such as `1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194`. IDs must be
// non-negative and unique, addresses must have a host and a non-zero port and be unique.
func ParseVoters(s string) ([]Voter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("controller quorum voters: empty list, want id@host:port[,id@host:port...]")
	}
	var voters []Voter
	ids := map[int32]bool{}
	addrs := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		idStr, addr, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("controller quorum voters: entry %d %q: want id@host:port", i+1, part)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("controller quorum voters: entry %d %q: node id %q is not a non-negative integer", i+1, part, idStr)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("controller quorum voters: entry %d %q: address: %w", i+1, part, err)
		}
		if host == "" {
			return nil, fmt.Errorf("controller quorum voters: entry %d %q: address has no host", i+1, part)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return nil, fmt.Errorf("controller quorum voters: entry %d %q: port %q is not in 1-65535", i+1, part, port)
		}
		if ids[int32(id)] {
			return nil, fmt.Errorf("controller quorum voters: node id %d appears more than once", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("controller quorum voters: address %s appears more than once", addr)
		}
		ids[int32(id)], addrs[addr] = true, true
		voters = append(voters, Voter{ID: int32(id), Addr: addr})
	}
	return voters, nil
}
