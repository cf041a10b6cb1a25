package vigil

import (
	"context"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Request colouring: a request marked as part of a gray (an X-Gray header,
// or the vigil.gray baggage member an upstream service set) keeps that mark
// on its spans and log records and on the calls it makes, so a gray's
// traffic can be followed through services that are not in the gray
// themselves.
const (
	// GrayHeader is the incoming header that colours a request.
	GrayHeader = "X-Gray"
	// GrayBaggageKey is the baggage member that carries the colour on to
	// outgoing calls (W3C baggage is propagated by Start's propagator).
	GrayBaggageKey = "vigil.gray"
	// grayAttr is the span attribute and log field.
	grayAttr = "vigil.gray"
)

// GrayFromContext returns the request's colour, "" when it has none.
func GrayFromContext(ctx context.Context) string {
	return baggage.FromContext(ctx).Member(GrayBaggageKey).Value()
}

// colourRequests runs before the server span starts: an X-Gray header is
// written into the request's W3C baggage header as the vigil.gray member
// (the header wins over a vigil.gray already there), so the trace
// middleware's extraction puts it in the request's context, where
// graySpanProcessor and grayLogHandler find it. The request itself is not
// replaced, which would hide ServeMux's pattern from the RED middleware.
func colourRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get(GrayHeader); h != "" {
			carrier := propagation.HeaderCarrier(r.Header)
			ctx := propagation.Baggage{}.Extract(context.Background(), carrier)
			if m, err := baggage.NewMemberRaw(GrayBaggageKey, h); err == nil {
				if b, err := baggage.FromContext(ctx).SetMember(m); err == nil {
					r.Header.Del("Baggage")
					propagation.Baggage{}.Inject(baggage.ContextWithBaggage(ctx, b), carrier)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// graySpanProcessor marks every span started under a coloured request.
type graySpanProcessor struct{}

func (graySpanProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if c := GrayFromContext(parent); c != "" {
		s.SetAttributes(attribute.String(grayAttr, c))
	}
}
func (graySpanProcessor) OnEnd(sdktrace.ReadOnlySpan)      {}
func (graySpanProcessor) Shutdown(context.Context) error   { return nil }
func (graySpanProcessor) ForceFlush(context.Context) error { return nil }

// grayLogHandler adds vigil.gray to the records logged with a coloured
// request's context.
type grayLogHandler struct{ slog.Handler }

func (h grayLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if c := GrayFromContext(ctx); c != "" {
		r = r.Clone()
		r.AddAttrs(slog.String(grayAttr, c))
	}
	return h.Handler.Handle(ctx, r)
}

func (h grayLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return grayLogHandler{h.Handler.WithAttrs(as)}
}

func (h grayLogHandler) WithGroup(name string) slog.Handler {
	return grayLogHandler{h.Handler.WithGroup(name)}
}
