package instrument

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ErrPanic is wrapped by the errors recorded on spans when a handler panics,
// so exporters and tests can tell a recovered panic from an ordinary error.
var ErrPanic = errors.New("instrument: handler panicked")

// panicError turns a recovered value into an error wrapping ErrPanic (and the
// panic value itself when that is an error).
func panicError(v any) error {
	if err, ok := v.(error); ok {
		return fmt.Errorf("%w: %w", ErrPanic, err)
	}
	return fmt.Errorf("%w: %v", ErrPanic, v)
}

// recordPanic marks span as failed by the panic v: an "exception" event with
// the stack trace (taken here, inside the deferred recover, so it still shows
// the panicking frames) and an Error status.
func recordPanic(span trace.Span, v any) error {
	err := panicError(v)
	span.RecordError(err, trace.WithStackTrace(true))
	span.SetStatus(codes.Error, err.Error())
	return err
}
