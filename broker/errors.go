package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// kafkaError is a Kafka error code with a message for the client. Kafka error codes
// are data (franz-go's kerr table); this only attaches the why.
type kafkaError struct {
	code *kerr.Error
	msg  string
}

func (e *kafkaError) Error() string {
	if e.msg == "" {
		return e.code.Message
	}
	return e.code.Message + ": " + e.msg
}

func (e *kafkaError) Unwrap() error { return e.code }

// kafkaErr attaches a message to a Kafka error code.
func kafkaErr(code *kerr.Error, msg string) error { return &kafkaError{code: code, msg: msg} }

// errCode is the Kafka error code for err: 0 for nil, the code of a wrapped
// *kerr.Error, else UNKNOWN_SERVER_ERROR.
func errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// errMessage is the message returned beside an error code in responses that carry one.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	var ke *kafkaError
	if errors.As(err, &ke) && ke.msg != "" {
		return &ke.msg
	}
	s := err.Error()
	return &s
}
