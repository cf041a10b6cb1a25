package logging

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Keys under which zap entry metadata without a slog equivalent is logged.
const (
	// ZapLoggerKey holds a named zap logger's name.
	ZapLoggerKey = "logger"
	// ZapStackKey holds the stack trace zap captured for the entry.
	ZapStackKey = "stacktrace"
)

// Context returns a zap field carrying ctx, so that zap callers can hand the
// core the span to correlate with: logger.Info("msg", logging.Context(ctx)).
// It may also be bound with logger.With. The field has zap's Skip type, so
// ordinary zap encoders ignore it, and its value is a context.Context, which
// is the convention the otelzap bridge recognises too.
func Context(ctx context.Context) zap.Field {
	return zap.Field{Key: "context", Type: zapcore.SkipType, Interface: ctx}
}

// NewZapCore returns a zapcore.Core that converts zap entries and fields into
// slog records and hands them to h, so zap-based services get the same JSON
// output, redaction, sampling, trace ids and export as slog ones.
//
// An entry is written when level enables it and h.Enabled accepts the
// mapped slog level; a nil level defers to h alone. A field whose value is a
// context.Context (see [Context]) becomes the context passed to h.Handle.
// zap namespaces become slog groups; object and array marshalers are
// expanded, objects into groups so that their keys are redacted too.
func NewZapCore(h slog.Handler, level zapcore.LevelEnabler) zapcore.Core {
	if level == nil {
		level = zapcore.DebugLevel
	}
	return &zapCore{h: h, level: level, ctx: context.Background()}
}

type zapCore struct {
	h     slog.Handler
	level zapcore.LevelEnabler
	// ctx is a context bound with With(Context(ctx)); a per-entry context
	// field overrides it.
	ctx context.Context
}

// SlogLevel maps a zap level to the slog level used for it.
func SlogLevel(l zapcore.Level) slog.Level {
	switch l {
	case zapcore.DebugLevel:
		return slog.LevelDebug
	case zapcore.InfoLevel:
		return slog.LevelInfo
	case zapcore.WarnLevel:
		return slog.LevelWarn
	case zapcore.ErrorLevel:
		return slog.LevelError
	case zapcore.DPanicLevel:
		return LevelDPanic
	case zapcore.PanicLevel:
		return LevelPanic
	case zapcore.FatalLevel:
		return LevelFatal
	}
	// Custom zap levels are spaced by one like zap's own; slog's by four.
	return slog.Level(int(l) * 4)
}

func (c *zapCore) Enabled(l zapcore.Level) bool {
	return c.level.Enabled(l) && c.h.Enabled(c.ctx, SlogLevel(l))
}

func (c *zapCore) With(fields []zapcore.Field) zapcore.Core {
	if len(fields) == 0 {
		return c
	}
	c2 := *c
	ctx, attrs, groups := convertFields(fields)
	if ctx != nil {
		c2.ctx = ctx
	}
	// Attributes before the first namespace belong at the current level;
	// each namespace opens a group holding the attributes after it.
	h := c.h
	if groups == nil {
		if len(attrs) > 0 {
			h = h.WithAttrs(attrs)
		}
	} else {
		if len(groups[0].attrs) > 0 {
			h = h.WithAttrs(groups[0].attrs)
		}
		for _, g := range groups[1:] {
			h = h.WithGroup(g.name)
			if len(g.attrs) > 0 {
				h = h.WithAttrs(g.attrs)
			}
		}
	}
	c2.h = h
	return &c2
}

func (c *zapCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *zapCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	ctx, attrs, groups := convertFields(fields)
	if ctx == nil {
		ctx = c.ctx
	}
	r := slog.NewRecord(ent.Time, SlogLevel(ent.Level), ent.Message, ent.Caller.PC)
	if ent.LoggerName != "" {
		r.AddAttrs(slog.String(ZapLoggerKey, ent.LoggerName))
	}
	if len(groups) > 0 {
		// Namespaces opened in the call itself nest the fields after them.
		// groups[0].attrs are the attributes before the first namespace.
		var inner slog.Attr
		for i := len(groups) - 1; i >= 1; i-- {
			members := groups[i].attrs
			if i < len(groups)-1 {
				members = append(slices.Clip(members), inner)
			}
			inner = slog.Attr{Key: groups[i].name, Value: slog.GroupValue(members...)}
		}
		attrs = append(groups[0].attrs, inner)
	}
	r.AddAttrs(attrs...)
	if ent.Stack != "" {
		r.AddAttrs(slog.String(ZapStackKey, ent.Stack))
	}
	if err := c.h.Handle(ctx, r); err != nil {
		return fmt.Errorf("logging: zap entry to slog handler: %w", err)
	}
	return nil
}

// Sync is a no-op: slog handlers write synchronously and have no flush.
func (c *zapCore) Sync() error { return nil }

type zapGroup struct {
	name  string
	attrs []slog.Attr
}

// convertFields turns zap fields into slog attributes. Without namespaces it
// returns them in attrs. With namespaces it returns nil attrs and a list of
// groups whose first element (unnamed) holds the fields before the first
// namespace, each further element one namespace and the fields after it.
func convertFields(fields []zapcore.Field) (ctx context.Context, attrs []slog.Attr, groups []zapGroup) {
	attrs = make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		if fc, ok := f.Interface.(context.Context); ok {
			ctx = fc
			continue
		}
		switch f.Type {
		case zapcore.SkipType:
			continue
		case zapcore.NamespaceType:
			if groups == nil {
				groups = append(groups, zapGroup{})
			}
			groups[len(groups)-1].attrs = attrs
			groups = append(groups, zapGroup{name: f.Key})
			attrs = nil
			continue
		case zapcore.InlineMarshalerType:
			attrs = append(attrs, marshalObject(f)...)
			continue
		}
		if a, ok := convertField(f); ok {
			attrs = append(attrs, a)
		}
	}
	if groups != nil {
		groups[len(groups)-1].attrs = attrs
		attrs = nil
	}
	return ctx, attrs, groups
}

// convertField converts one zap field to a slog attribute. The common scalar
// types are converted directly; the rest go through zap's own in-memory
// encoder so that every marshaler behaves exactly as zap defines it.
func convertField(f zapcore.Field) (slog.Attr, bool) {
	switch f.Type {
	case zapcore.BoolType:
		return slog.Bool(f.Key, f.Integer == 1), true
	case zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type:
		return slog.Int64(f.Key, f.Integer), true
	case zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type, zapcore.UintptrType:
		return slog.Uint64(f.Key, uint64(f.Integer)), true
	case zapcore.Float64Type:
		return slog.Float64(f.Key, math.Float64frombits(uint64(f.Integer))), true
	case zapcore.Float32Type:
		return slog.Float64(f.Key, float64(math.Float32frombits(uint32(f.Integer)))), true
	case zapcore.StringType:
		return slog.String(f.Key, f.String), true
	case zapcore.ByteStringType:
		return slog.String(f.Key, string(f.Interface.([]byte))), true
	case zapcore.DurationType:
		return slog.Duration(f.Key, time.Duration(f.Integer)), true
	case zapcore.TimeType:
		t := time.Unix(0, f.Integer)
		if loc, ok := f.Interface.(*time.Location); ok && loc != nil {
			t = t.In(loc)
		}
		return slog.Time(f.Key, t), true
	case zapcore.TimeFullType:
		return slog.Time(f.Key, f.Interface.(time.Time)), true
	case zapcore.ErrorType:
		// Kept as an error value: slog writes its text, and the redactor
		// scans that text.
		err, _ := f.Interface.(error)
		if err == nil {
			return slog.Attr{}, false
		}
		return slog.Any(f.Key, err), true
	case zapcore.Complex64Type, zapcore.Complex128Type:
		// encoding/json cannot encode complex numbers; zap prints them.
		return slog.String(f.Key, fmt.Sprint(f.Interface)), true
	case zapcore.ReflectType:
		return slog.Any(f.Key, f.Interface), true
	case zapcore.ObjectMarshalerType:
		return slog.Attr{Key: f.Key, Value: slog.GroupValue(marshalObject(f)...)}, true
	}
	// Stringer, binary, arrays and anything newer: let zap encode it.
	enc := zapcore.NewMapObjectEncoder()
	addTo(f, enc)
	v, ok := enc.Fields[f.Key]
	if !ok {
		return slog.Attr{}, false
	}
	return slog.Attr{Key: f.Key, Value: anyToValue(v)}, true
}

// marshalObject expands an object (or inline) marshaler into attributes.
func marshalObject(f zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	if m, ok := f.Interface.(zapcore.ObjectMarshaler); ok {
		if err := m.MarshalLogObject(enc); err != nil {
			enc.AddString(f.Key+"Error", err.Error())
		}
	}
	return mapToAttrs(enc.Fields)
}

// addTo encodes f, turning a panicking marshaler (typically a nil pointer
// Stringer zap did not guard) into an error string rather than a crash.
func addTo(f zapcore.Field, enc *zapcore.MapObjectEncoder) {
	defer func() {
		if p := recover(); p != nil {
			enc.Fields[f.Key] = fmt.Sprintf("PANIC=%v", p)
		}
	}()
	f.AddTo(enc)
}

// mapToAttrs converts a zap map encoding into attributes in key order, so
// output is deterministic.
func mapToAttrs(m map[string]any) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		attrs = append(attrs, slog.Attr{Key: k, Value: anyToValue(m[k])})
	}
	return attrs
}

// anyToValue converts a value produced by zap's map encoder: nested objects
// become groups (so redaction sees their keys); everything else, including
// arrays (whose elements are not redacted by key), keeps its natural slog kind.
func anyToValue(v any) slog.Value {
	if m, ok := v.(map[string]any); ok {
		return slog.GroupValue(mapToAttrs(m)...)
	}
	return slog.AnyValue(v)
}
