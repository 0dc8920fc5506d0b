package metadata

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The join protocol runs on the Raft (controller) listener, so that a node needs nothing but the
// controllers' addresses (`controller.quorum.bootstrap.servers`) and is authenticated exactly as Raft
// peers are (mTLS limited to broker.principals when the controller listener uses TLS). A connection
// whose first byte is joinMagic (Raft's RPC types are small integers) carries one request and one
// response, each a 4-byte big-endian length and a JSON document, and is then closed.
const joinMagic byte = 0xA7

// maxJoinMessage bounds a join request or response.
const maxJoinMessage = 4096

// joinTimeout bounds one join exchange, on both sides.
const joinTimeout = 10 * time.Second

// JoinRequest is a request on the join protocol.
type joinRequest struct {
	// Op is "allocate_node_id" (answered with a new node id), "join" (follow the log as a
	// non-voter with NodeID at Addr) or "status" (the node's own id and applied index).
	Op     string `json:"op"`
	NodeID int32  `json:"node_id"`
	Addr   string `json:"addr,omitempty"`
	// Controller says the joining node has the controller role (process.roles).
	Controller bool `json:"controller,omitempty"`
}

type joinResponse struct {
	NodeID int32 `json:"node_id"`
	// AppliedIndex answers "status": the metadata log index the node has applied.
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	// ErrorCode is a Kafka error code (0: none), Error its message.
	ErrorCode int16  `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
	// Leader is the Raft address of the active controller when this node is not it.
	Leader string `json:"leader,omitempty"`
}

func writeJoinMessage(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(data) > maxJoinMessage {
		return fmt.Errorf("join message of %d bytes", len(data))
	}
	buf := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	_, err = w.Write(append(buf, data...))
	return err
}

func readJoinMessage(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxJoinMessage {
		return fmt.Errorf("join message of %d bytes, more than %d", size, maxJoinMessage)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// serveJoin answers one join request on an accepted Raft connection.
func (q *Quorum) serveJoin(c net.Conn, r io.Reader) {
	c.SetDeadline(time.Now().Add(joinTimeout))
	principal := ""
	if tc, ok := c.(*tls.Conn); ok && q.cfg.PeerPrincipal != nil {
		principal = q.cfg.PeerPrincipal(tc.ConnectionState())
	}
	var req joinRequest
	if err := readJoinMessage(r, &req); err != nil {
		q.log.Warn("malformed join request", "remote", c.RemoteAddr(), "err", err)
		return
	}
	resp := joinResponse{NodeID: -1}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	// A request that arrives while the node is still starting waits for its Raft instance.
	select {
	case <-q.raftReady:
	case <-q.closed:
		return
	case <-ctx.Done():
		return
	}
	var err error
	switch {
	case req.Op == "status":
		// Any node answers: the controller asks a node it is about to make a voter.
		resp.NodeID, resp.AppliedIndex = q.cfg.NodeID, q.Image().Index
	case !q.IsController():
		err = ErrNotController
	case req.Op == "allocate_node_id":
		resp.NodeID, err = q.AllocateNodeID(ctx, principal)
	case req.Op == "join":
		if _, _, perr := net.SplitHostPort(req.Addr); perr != nil || req.NodeID < 0 {
			err = kafkaErrf(kerr.InvalidRequest, "join: node id %d at %q is not a node id and host:port", req.NodeID, req.Addr)
			break
		}
		resp.NodeID, err = req.NodeID, q.AddObserver(ctx, req.NodeID, req.Addr, principal, req.Controller)
	default:
		err = kafkaErrf(kerr.InvalidRequest, "join: unknown op %q", req.Op)
	}
	if errors.Is(err, ErrNotController) {
		addr, _ := q.raft.LeaderWithID()
		resp.Leader = string(addr)
	}
	if err != nil {
		resp.ErrorCode, resp.Error = errorCode(err), err.Error()
		q.log.Warn("join request refused", "remote", c.RemoteAddr(), "principal", principal, "op", req.Op, "node", req.NodeID, "err", err)
	}
	writeJoinMessage(c, resp)
}

// errorCode is the Kafka error code of err: its own if it is a Kafka error, NOT_CONTROLLER, or
// UNKNOWN_SERVER_ERROR.
func errorCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, ErrNotController):
		return kerr.NotController.Code
	}
	return kerr.UnknownServerError.Code
}

// JoinClient speaks the join protocol to the controllers of a quorum, following redirects to the
// active controller.
type JoinClient struct {
	// Bootstrap are Raft addresses of controllers (controller.quorum.bootstrap.servers).
	Bootstrap []string
	// TLS, when set, is the dial configuration (mTLS with this node's broker certificate).
	TLS *tls.Config
}

// AllocateNodeID asks the active controller for a new node id, retrying across controllers and
// elections until ctx ends.
func (jc JoinClient) AllocateNodeID(ctx context.Context) (int32, error) {
	resp, err := jc.call(ctx, joinRequest{Op: "allocate_node_id", NodeID: -1})
	return resp.NodeID, err
}

// Join asks the active controller to replicate the metadata log to node id at Raft address addr;
// controller says the node has the controller role and may be made a voter later.
func (jc JoinClient) Join(ctx context.Context, id int32, addr string, controller bool) error {
	_, err := jc.call(ctx, joinRequest{Op: "join", NodeID: id, Addr: addr, Controller: controller})
	return err
}

// call sends req to a controller until one that is the active controller answers, or ctx ends.
// Refusals (authorization, bad requests) end it at once.
func (jc JoinClient) call(ctx context.Context, req joinRequest) (joinResponse, error) {
	if len(jc.Bootstrap) == 0 {
		return joinResponse{}, errors.New("metadata: no controller quorum bootstrap servers")
	}
	var last error
	targets := slices.Clone(jc.Bootstrap)
	for attempt := 0; ; attempt++ {
		addr := targets[attempt%len(targets)]
		resp, err := jc.once(ctx, addr, req)
		if err == nil && resp.ErrorCode == 0 {
			return resp, nil
		}
		if err == nil {
			kerrv := kerr.ErrorForCode(resp.ErrorCode)
			err = fmt.Errorf("controller %s: %w: %s", addr, kerrv, resp.Error)
			if resp.Leader != "" && !slices.Contains(targets, resp.Leader) {
				targets = append(targets, resp.Leader)
			}
			if resp.Leader != "" {
				if i := slices.Index(targets, resp.Leader); i >= 0 {
					attempt = i - 1 // the next attempt asks the leader
				}
			}
			if !errors.Is(kerrv, kerr.NotController) && !kerr.IsRetriable(kerrv) {
				return resp, err
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return joinResponse{}, fmt.Errorf("metadata: no controller answered (last: %v): %w", last, ctx.Err())
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
	}
}

func (jc JoinClient) once(ctx context.Context, addr string, req joinRequest) (joinResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	d := net.Dialer{}
	var c net.Conn
	var err error
	if jc.TLS != nil {
		cfg := jc.TLS.Clone()
		if host, _, herr := net.SplitHostPort(addr); herr == nil && cfg.ServerName == "" {
			cfg.ServerName = host
		}
		c, err = (&tls.Dialer{NetDialer: &d, Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return joinResponse{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte{joinMagic}); err != nil {
		return joinResponse{}, err
	}
	if err := writeJoinMessage(c, req); err != nil {
		return joinResponse{}, err
	}
	var resp joinResponse
	if err := readJoinMessage(c, &resp); err != nil {
		return joinResponse{}, fmt.Errorf("controller %s: %w", addr, err)
	}
	return resp, nil
}

// bootstrapAddrs are the controllers an observer asks to join: Bootstrap, else the voters.
func (c *Config) bootstrapAddrs() []string {
	if len(c.Bootstrap) > 0 {
		return c.Bootstrap
	}
	var out []string
	for _, v := range c.Voters {
		out = append(out, v.Addr)
	}
	return out
}

// joinLoop makes a node outside the static voters join the Raft configuration as an observer: it
// asks the controllers until one accepted, and until its own Raft configuration lists it
// (replicated by the controller), then returns. It asks on every start, also when its own stored
// configuration lists it already: the controller may have removed it meanwhile (RemoveObserver), and
// a join that changes nothing is cheap. A node that is a voter returns at once.
func (q *Quorum) joinLoop(ctx context.Context) {
	if !q.cfg.observer() {
		return
	}
	jc := JoinClient{Bootstrap: q.cfg.bootstrapAddrs(), TLS: q.cfg.DialTLS}
	addr := q.cfg.raftAddr()
	accepted := false
	for {
		if cfg, err := q.configuration(); err == nil {
			i := slices.IndexFunc(cfg.Servers, func(s raft.Server) bool { return s.ID == serverID(q.cfg.NodeID) })
			if i >= 0 && (cfg.Servers[i].Suffrage == raft.Voter || accepted && string(cfg.Servers[i].Address) == addr) {
				return
			}
		}
		jctx, cancel := context.WithTimeout(ctx, 3*joinTimeout)
		err := jc.Join(jctx, q.cfg.NodeID, addr, q.cfg.ControllerRole)
		cancel()
		accepted = accepted || err == nil
		if err != nil && ctx.Err() == nil {
			q.log.Warn("joining the metadata quorum failed; retrying", "node", q.cfg.NodeID, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// nodeStatus asks the node at Raft address addr for its id and applied metadata index.
func (q *Quorum) nodeStatus(ctx context.Context, addr string) (int32, uint64, error) {
	resp, err := JoinClient{TLS: q.cfg.DialTLS}.once(ctx, addr, joinRequest{Op: "status", NodeID: -1})
	if err != nil {
		return -1, 0, err
	}
	if resp.ErrorCode != 0 {
		return -1, 0, fmt.Errorf("%w: %s", kerr.ErrorForCode(resp.ErrorCode), resp.Error)
	}
	return resp.NodeID, resp.AppliedIndex, nil
}
