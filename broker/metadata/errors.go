package metadata

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrNotController is returned by the controller-side operations of a [Quorum] that is not the active
// controller (or stopped being it while the operation ran). It is Kafka's NOT_CONTROLLER: the broker
// forwards the request to the controller named by [Quorum.ControllerID], and clients retry.
var ErrNotController error = kerr.NotController

// ErrClosed is returned by waiters and operations on a [Quorum] that has been shut down.
var ErrClosed = fmt.Errorf("metadata: quorum closed")

// kafkaError is a Kafka error code with the message Kafka sends beside it. Error returns the message
// alone, so callers can put it unchanged into a response's ErrorMessage; errors.Is/As reach the code.
type kafkaError struct {
	code *kerr.Error
	msg  string
}

func (e *kafkaError) Error() string {
	if e.msg == "" {
		return e.code.Message
	}
	return e.msg
}

func (e *kafkaError) Unwrap() error { return e.code }

// kafkaErrf is a Kafka error code with a formatted message.
func kafkaErrf(code *kerr.Error, format string, args ...any) error {
	return &kafkaError{code: code, msg: fmt.Sprintf(format, args...)}
}
