package smithytel

import (
	"context"
	"errors"

	"github.com/aws/smithy-go"
)

// Class names a sentinel error for telemetry.
type Class struct {
	Err  error
	Name string
}

// Classify names the kind of err for a span or metric without its text,
// which may name keys and attributes: the first class err matches, else
// the context's end, else the AWS error code, else "other".
func Classify(err error, classes []Class) string {
	for _, c := range classes {
		if errors.Is(err, c.Err) {
			return c.Name
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return "other"
}
