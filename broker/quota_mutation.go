package broker

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// handleWithMutationQuota runs a request's handler under the controller
// mutation quota (KIP-599) when it creates or deletes partitions: CreateTopics,
// CreatePartitions and DeleteTopics count the partitions they create or delete.
// While the client's bucket is below zero, requests at versions that know the
// error (CreateTopics v6+, DeleteTopics v5+, CreatePartitions v3+) get
// THROTTLING_QUOTA_EXCEEDED for every topic and change nothing; older versions
// are carried out and throttled, as in Kafka.
//
// The quota is enforced by the broker the client is connected to; the request it
// forwards to the controller in an Envelope is handled there without passing
// here again.
func (cc *conn) handleWithMutationQuota(api *apiDef, req kmsg.Request) (kmsg.Response, error) {
	key := req.Key()
	if key != 19 && key != 20 && key != 37 {
		return api.handle(cc.b, cc, req)
	}
	m := cc.b.quotas
	if len(m.current().byType) == 0 || (cc.listener != nil && cc.listener.brokerOnly()) {
		return api.handle(cc.b, cc, req)
	}
	s := cc.quotaSensor(metadata.QuotaControllerMutationRate)
	if s == nil {
		return api.handle(cc.b, cc, req)
	}
	now := time.Now()
	if d := s.throttled(now); d > 0 && strictMutationQuota(req) {
		s.throttleSeconds.Add(d.Seconds())
		cc.mutationThrottle = d
		return throttledMutationResponse(req, d), nil
	}
	planned := cc.b.plannedMutations(req)
	resp, err := api.handle(cc.b, cc, req)
	if err != nil || resp == nil {
		return resp, err
	}
	var n float64
	for topic, code := range mutationResults(resp) {
		if code == 0 {
			n += float64(planned[topic])
		}
	}
	if n > 0 {
		if d := s.take(n, now); d > 0 {
			s.throttleSeconds.Add(d.Seconds())
			cc.mutationThrottle = d
		}
	}
	return resp, nil
}

func strictMutationQuota(req kmsg.Request) bool {
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		return r.Version >= 6 && !r.ValidateOnly
	case *kmsg.DeleteTopicsRequest:
		return r.Version >= 5
	case *kmsg.CreatePartitionsRequest:
		return r.Version >= 3 && !r.ValidateOnly
	}
	return false
}

// plannedMutations is the number of partitions each topic of a request would
// create or delete, by topic name.
func (b *Broker) plannedMutations(req kmsg.Request) map[string]int {
	out := map[string]int{}
	img := b.quorum.Image()
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		if r.ValidateOnly {
			return out
		}
		for _, t := range r.Topics {
			n := int(t.NumPartitions)
			if len(t.ReplicaAssignment) > 0 {
				n = len(t.ReplicaAssignment)
			} else if n == -1 {
				n = int(b.cfg.NumPartitions)
			}
			out[t.Topic] = max(n, 0)
		}
	case *kmsg.CreatePartitionsRequest:
		if r.ValidateOnly {
			return out
		}
		for _, t := range r.Topics {
			if mt := img.Topic(t.Topic); mt != nil {
				out[t.Topic] = max(int(t.Count)-len(mt.Partitions), 0)
			}
		}
	case *kmsg.DeleteTopicsRequest:
		for _, t := range r.Topics {
			var mt *metadata.Topic
			if t.Topic != nil {
				mt = img.Topic(*t.Topic)
			} else {
				mt = img.TopicByID(t.TopicID)
			}
			if mt != nil {
				out[mt.Name] = len(mt.Partitions)
			}
		}
		for _, name := range r.TopicNames {
			if mt := img.Topic(name); mt != nil {
				out[name] = len(mt.Partitions)
			}
		}
	}
	return out
}

// mutationResults returns the error code of each topic of a mutation response.
func mutationResults(resp kmsg.Response) map[string]int16 {
	out := map[string]int16{}
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			out[t.Topic] = t.ErrorCode
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			out[t.Topic] = t.ErrorCode
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			if t.Topic != nil {
				out[*t.Topic] = t.ErrorCode
			}
		}
	}
	return out
}

// throttledMutationResponse answers every topic of req with
// THROTTLING_QUOTA_EXCEEDED.
func throttledMutationResponse(req kmsg.Request, d time.Duration) kmsg.Response {
	code := kerr.ThrottlingQuotaExceeded.Code
	msg := "controller mutation quota exceeded; retry after the throttle time"
	ms := int32(d / time.Millisecond)
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
		resp.ThrottleMillis = ms
		for _, t := range r.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode, st.ErrorMessage = t.Topic, code, &msg
			st.NumPartitions, st.ReplicationFactor = -1, -1
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	case *kmsg.CreatePartitionsRequest:
		resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
		resp.ThrottleMillis = ms
		for _, t := range r.Topics {
			st := kmsg.NewCreatePartitionsResponseTopic()
			st.Topic, st.ErrorCode, st.ErrorMessage = t.Topic, code, &msg
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	case *kmsg.DeleteTopicsRequest:
		resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
		resp.ThrottleMillis = ms
		for _, t := range r.Topics {
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.Topic, st.TopicID, st.ErrorCode, st.ErrorMessage = t.Topic, t.TopicID, code, &msg
			resp.Topics = append(resp.Topics, st)
		}
		for _, name := range r.TopicNames {
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.Topic, st.ErrorCode = &name, code
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	return nil
}
