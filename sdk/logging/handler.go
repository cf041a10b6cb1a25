package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sync"
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
	// pre holds the service and the attributes added before any WithGroup,
	// redacted and encoded once as comma-separated object members. They
	// are written at the top level, before the trace ids, so that ids and
	// service are never buried in a group.
	pre []byte
	// frames are the groups opened with WithGroup, outermost first, each
	// with the (already redacted) attributes added inside it, encoded.
	frames []frame
	// export mirrors the WithAttrs/WithGroup calls; nil when not configured.
	export slog.Handler
	// redactAll is set under a group whose name is itself a sensitive key.
	redactAll bool
}

type frame struct {
	name string
	// keyLen is the length of name encoded as a quoted JSON string.
	keyLen int
	// attrs is the encoded members, comma-separated, possibly empty.
	attrs []byte
}

// shared is the state common to a handler and every handler derived from it.
type shared struct {
	level    slog.Leveler
	redactor *redactor
	sampler  *sampler // nil without sampling
	dropped  atomic.Uint64

	addSource bool
	// mu serialises writes to w so that each record is one uninterrupted
	// Write, whichever derived handler produced it.
	mu sync.Mutex
	w  io.Writer
}

// NewHandler returns a handler writing one JSON object per record to w, which
// must not be nil. Each record is written with a single call to w.Write;
// calls are serialised across the handler and all handlers derived from it.
func NewHandler(w io.Writer, opts Options) *Handler {
	sh := &shared{
		level:     opts.Level,
		redactor:  newRedactor(opts.RedactKeys, opts.RedactPatterns),
		addSource: opts.AddSource,
		w:         w,
	}
	if sh.level == nil {
		sh.level = slog.LevelInfo
	}
	if opts.Sampling != nil {
		sh.sampler = newSampler(*opts.Sampling)
	}
	h := &Handler{shared: sh, export: opts.Export}
	if opts.Service != "" {
		h.pre = appendMembers(nil, []slog.Attr{slog.String(ServiceKey, opts.Service)})
	}
	return h
}

// write writes one encoded record; the lock is released even if w panics.
func (sh *shared) write(b []byte) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, err := sh.w.Write(b)
	return err
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

	bp := getBuffer()
	b := h.appendHeader(*bp, ctx, &r)
	// The export handler gets the redacted attributes too, collected in a
	// stack buffer in the common case of few attributes (the record copies
	// them, so the buffer need not outlive this call).
	export := h.export != nil && h.export.Enabled(ctx, r.Level)
	var abuf [16]slog.Attr
	attrs := abuf[:0]
	r.Attrs(func(a slog.Attr) bool {
		ra, _ := sh.redactor.attr(a, h.redactAll)
		b = appendAttr(b, ra)
		if export {
			attrs = append(attrs, ra)
		}
		return true
	})
	b = h.appendTrailer(b)

	err := sh.write(b)
	*bp = b
	putBuffer(bp)

	if export {
		exp := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		exp.AddAttrs(attrs...)
		err = errors.Join(err, h.export.Handle(ctx, exp))
	}
	return err
}

// appendHeader starts a record's JSON line: time, level, source, message
// (slog's order), the service and top-level attributes, the trace ids, then
// the open groups with the attributes added inside them. The record's own
// attributes follow, then [Handler.appendTrailer].
func (h *Handler) appendHeader(b []byte, ctx context.Context, r *slog.Record) []byte {
	b = append(b, '{')
	if !r.Time.IsZero() {
		b = append(b, `"time":`...)
		b = appendTime(b, r.Time.Round(0)) // strip the monotonic reading, as slog does
		b = append(b, ',')
	}
	b = append(b, `"level":`...)
	b = appendString(b, levelName(r.Level))
	if h.shared.addSource {
		if src := r.Source(); src != nil {
			b = appendAttr(b, slog.Any(slog.SourceKey, src))
		}
	}
	b = append(b, `,"msg":`...)
	b = appendString(b, r.Message)
	if len(h.pre) > 0 {
		b = append(b, ',')
		b = append(b, h.pre...)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = append(b, `,"`+TraceIDKey+`":`...)
		b = appendHexID(b, tid[:])
		b = append(b, `,"`+SpanIDKey+`":`...)
		b = appendHexID(b, sid[:])
	}
	for _, f := range h.frames {
		b = appendKey(b, f.name)
		b = append(b, '{')
		b = append(b, f.attrs...)
	}
	return b
}

// appendTrailer closes the open groups innermost first, removing each one
// that ended up empty (a group with nothing in it is not written, as with
// slog's handlers), then the record. An empty group is recognised by the
// buffer ending in its opening brace; its quoted key has a known length, and
// a comma precedes it unless it is the first member of the enclosing group.
func (h *Handler) appendTrailer(b []byte) []byte {
	for i := len(h.frames) - 1; i >= 0; i-- {
		if b[len(b)-1] != '{' {
			b = append(b, '}')
			continue
		}
		b = b[:len(b)-1-h.frames[i].keyLen-1] // `"name":{`
		if b[len(b)-1] == ',' {
			b = b[:len(b)-1]
		}
	}
	return append(b, '}', '\n')
}

// appendMembers appends the encoded attrs to dst, a possibly empty list of
// comma-separated object members, and returns the extended list.
func appendMembers(dst []byte, attrs []slog.Attr) []byte {
	b := make([]byte, 0, 1+len(dst)+64*len(attrs))
	b = append(b, '{')
	b = append(b, dst...)
	for _, a := range attrs {
		b = appendAttr(b, a)
	}
	return b[1:]
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
		h2.pre = appendMembers(h.pre, red)
	} else {
		h2.frames = slices.Clone(h.frames)
		last := &h2.frames[len(h2.frames)-1]
		last.attrs = appendMembers(last.attrs, red)
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
	h2.frames = append(slices.Clip(h.frames), frame{name: name, keyLen: len(appendString(nil, name))})
	if h.export != nil {
		h2.export = h.export.WithGroup(name)
	}
	h2.redactAll = h.redactAll || h.shared.redactor.sensitiveKey(name)
	return &h2
}
