package shop

import (
	"context"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// clockSkew is how far the clock-skew fault sets catalog's clock back:
// minutes, as a host without time synchronisation drifts to, and more than
// the trace checks' margins.
const clockSkew = -3 * time.Minute

// skewedExporter exports spans stamped by a clock that runs d off the
// true time: what a host whose clock is wrong sends.
type skewedExporter struct {
	sdktrace.SpanExporter
	d time.Duration
}

func (e skewedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = skewedSpan{s, e.d}
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

// skewedSpan is a span with every time in it moved by d.
type skewedSpan struct {
	sdktrace.ReadOnlySpan
	d time.Duration
}

func (s skewedSpan) StartTime() time.Time { return s.ReadOnlySpan.StartTime().Add(s.d) }
func (s skewedSpan) EndTime() time.Time   { return s.ReadOnlySpan.EndTime().Add(s.d) }

func (s skewedSpan) Events() []sdktrace.Event {
	ev := s.ReadOnlySpan.Events()
	out := make([]sdktrace.Event, len(ev))
	for i, e := range ev {
		e.Time = e.Time.Add(s.d)
		out[i] = e
	}
	return out
}
