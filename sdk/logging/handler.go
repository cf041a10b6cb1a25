package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the attributes the handler adds to every JSON record.
const (
	// TraceIDKey holds the hex trace id of the span in the record's context.
	TraceIDKey = "trace_id"
	// SpanIDKey holds the hex span id of the span in the record's context.
	SpanIDKey = "span_id"
	// ServiceKey holds [Options.Service].
	ServiceKey = "service"
)

// Levels above [slog.LevelError] used for zap's DPanic, Panic and Fatal
// entries. They are chosen so that the otelslog bridge (severity = level+9)
// maps them to OpenTelemetry FATAL, FATAL2 and FATAL3, as the otelzap bridge
// does; the JSON output names them "DPANIC", "PANIC" and "FATAL".
const (
	LevelDPanic = slog.LevelError + 4
	LevelPanic  = slog.LevelError + 5
	LevelFatal  = slog.LevelError + 6
)

// Options configures a [Handler]. The zero value logs Info and above with
// default redaction, no sampling and no export.
type Options struct {
	// Service is added to every JSON record under [ServiceKey] when set.
	Service string
	// Level is the minimum level logged; nil means slog.LevelInfo. A
	// *slog.LevelVar allows changing it at run time.
	Level slog.Leveler
	// AddSource adds the caller's file and line to JSON records.
	AddSource bool
	// RedactKeys extends [DefaultRedactKeys] with further sensitive keys,
	// matched the same way.
	RedactKeys []string
	// RedactPatterns hide any string (or error text) attribute value they
	// match, in addition to the built-in card-number detector. They are not
	// applied to the message: by convention a message is a constant template
	// ("payment failed") and variable data goes into attributes, so scanning
	// messages would cost a regexp pass per record for text that should never
	// hold data in the first place.
	RedactPatterns []*regexp.Regexp
	// Sampling, when non-nil, drops repetitive records below warning level.
	Sampling *Sampling
	// Export, when non-nil, receives every record the JSON output receives
	// (after sampling and redaction) with the original context, typically
	// the otelslog bridge, which attaches trace ids from that context itself.
	// Its own Enabled is consulted as well as Level.
	Export slog.Handler
}

// Handler is a [slog.Handler] writing redacted, trace-correlated JSON records
// and optionally forwarding them to an export handler. It is safe for
// concurrent use; handlers derived with WithAttrs/WithGroup share the
// sampler and the dropped-record count with their parent.
type Handler struct {
	shared *shared
	// json carries the attributes added before any WithGroup, preformatted
	// by slog's JSON handler. Groups are not opened on it so that the
	// trace and service attributes stay at the top level of every record.
	json slog.Handler
	// frames are the groups opened with WithGroup, outermost first, each
	// with the (already redacted) attributes added inside it.
	frames []frame
	// export mirrors the WithAttrs/WithGroup calls; nil when not configured.
	export slog.Handler
	// redactAll is set under a group whose name is itself a sensitive key.
	redactAll bool
}

type frame struct {
	name  string
	attrs []slog.Attr
}

// shared is the state common to a handler and every handler derived from it.
type shared struct {
	level    slog.Leveler
	redactor *redactor
	sampler  *sampler // nil without sampling
	dropped  atomic.Uint64
}

// NewHandler returns a handler writing one JSON object per record to w, which
// must not be nil. Writes to w are serialised by slog's JSON handler.
func NewHandler(w io.Writer, opts Options) *Handler {
	sh := &shared{
		level:    opts.Level,
		redactor: newRedactor(opts.RedactKeys, opts.RedactPatterns),
	}
	if sh.level == nil {
		sh.level = slog.LevelInfo
	}
	if opts.Sampling != nil {
		sh.sampler = newSampler(*opts.Sampling)
	}
	var jh slog.Handler = slog.NewJSONHandler(w, &slog.HandlerOptions{
		AddSource:   opts.AddSource,
		Level:       sh.level,
		ReplaceAttr: nameLevels,
	})
	if opts.Service != "" {
		jh = jh.WithAttrs([]slog.Attr{slog.String(ServiceKey, opts.Service)})
	}
	return &Handler{shared: sh, json: jh, export: opts.Export}
}

// nameLevels gives the zap-only levels readable names instead of "ERROR+4".
func nameLevels(groups []string, a slog.Attr) slog.Attr {
	if len(groups) != 0 || a.Key != slog.LevelKey {
		return a
	}
	if l, ok := a.Value.Any().(slog.Level); ok {
		switch l {
		case LevelDPanic:
			a.Value = slog.StringValue("DPANIC")
		case LevelPanic:
			a.Value = slog.StringValue("PANIC")
		case LevelFatal:
			a.Value = slog.StringValue("FATAL")
		}
	}
	return a
}

// Dropped returns how many records sampling has discarded since the handler
// (or the root handler it was derived from) was created, for exposure as a
// metric, e.g. with a prometheus.CounterFunc.
func (h *Handler) Dropped() uint64 { return h.shared.dropped.Load() }

// Enabled reports whether level is at or above [Options.Level].
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.shared.level.Level()
}

// Handle samples, redacts and writes r, then forwards it to the export
// handler. Errors from both destinations are joined.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		ctx = context.Background()
	}
	sh := h.shared
	if sh.sampler != nil && r.Level < slog.LevelWarn && !sh.sampler.keep(r.Message) {
		sh.dropped.Add(1)
		return nil
	}

	// Redact into a stack buffer in the common case of few attributes;
	// slog.Record copies what it is given, so the buffer need not outlive
	// this call.
	var buf [16]slog.Attr
	attrs := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		ra, _ := sh.redactor.attr(a, h.redactAll)
		attrs = append(attrs, ra)
		return true
	})

	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		out.AddAttrs(
			slog.String(TraceIDKey, sc.TraceID().String()),
			slog.String(SpanIDKey, sc.SpanID().String()),
		)
	}
	if len(h.frames) == 0 {
		out.AddAttrs(attrs...)
	} else {
		out.AddAttrs(nest(h.frames, attrs))
	}
	err := h.json.Handle(ctx, out)

	if h.export != nil && h.export.Enabled(ctx, r.Level) {
		exp := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		exp.AddAttrs(attrs...)
		err = errors.Join(err, h.export.Handle(ctx, exp))
	}
	return err
}

// nest wraps the record's attributes in the open groups, innermost last.
// Empty groups vanish in slog's handlers, matching WithGroup semantics where
// a group with nothing in it is not written.
func nest(frames []frame, attrs []slog.Attr) slog.Attr {
	inner := slog.Attr{}
	for i := len(frames) - 1; i >= 0; i-- {
		f := frames[i]
		members := make([]slog.Attr, 0, len(f.attrs)+len(attrs)+1)
		members = append(members, f.attrs...)
		if i == len(frames)-1 {
			members = append(members, attrs...)
		} else {
			members = append(members, inner)
		}
		inner = slog.Attr{Key: f.name, Value: slog.GroupValue(members...)}
	}
	return inner
}

// WithAttrs returns a handler that adds the redacted attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i], _ = h.shared.redactor.attr(a, h.redactAll)
	}
	h2 := *h
	if len(h.frames) == 0 {
		h2.json = h.json.WithAttrs(red)
	} else {
		h2.frames = slices.Clone(h.frames)
		last := &h2.frames[len(h2.frames)-1]
		last.attrs = slices.Concat(last.attrs, red)
	}
	if h.export != nil {
		h2.export = h.export.WithAttrs(red)
	}
	return &h2
}

// WithGroup returns a handler that nests later attributes under name. A
// group named like a sensitive key ("credentials" is not, "auth_token" is)
// redacts everything inside it.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.frames = append(slices.Clip(h.frames), frame{name: name})
	if h.export != nil {
		h2.export = h.export.WithGroup(name)
	}
	h2.redactAll = h.redactAll || h.shared.redactor.sensitiveKey(name)
	return &h2
}
