package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: v0-6
//
// Behavior:
//   - Group coordinators (key type 0) are this broker, which leads every
//     __consumer_offsets partition.
//   - Transaction coordinators (key type 1) are not available: no transactions yet.
//   - v4+ answers several keys at once (batched, KIP-699).

func init() { register(10, 0, 6, (*Broker).handleFindCoordinator) }

func (b *Broker) handleFindCoordinator(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := b.advertisedAddr()

	answer := func(key string) (nodeID int32, code int16, msg *string) {
		switch req.CoordinatorType {
		case 0:
			if !b.groups.IsCoordinator(key) {
				return -1, kerr.CoordinatorNotAvailable.Code, nil
			}
			return b.cfg.NodeID, 0, nil
		case 1:
			m := "transactions are not supported"
			return -1, kerr.CoordinatorNotAvailable.Code, &m
		default:
			m := "unknown coordinator type"
			return -1, kerr.InvalidRequest.Code, &m
		}
	}
	if req.Version < 4 {
		id, code, msg := answer(req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID = code, msg, id
		if code == 0 {
			resp.Host, resp.Port = host, port
		}
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.NodeID, c.ErrorCode, c.ErrorMessage = answer(key)
		if c.ErrorCode == 0 {
			c.Host, c.Port = host, port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}
