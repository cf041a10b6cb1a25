package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type zapUser struct {
	Name     string
	Password string
}

func (u zapUser) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("name", u.Name)
	enc.AddString("password", u.Password)
	return nil
}

func newZapLogger(buf *bytes.Buffer, opts Options, level zapcore.LevelEnabler) *zap.Logger {
	return zap.New(NewZapCore(NewHandler(buf, opts), level))
}

func TestZapFieldTypes(t *testing.T) {
	ts := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	var nilAddr *netip.Addr
	tests := []struct {
		name  string
		field zap.Field
		path  string
		want  any
	}{
		{"string", zap.String("s", "v"), "s", "v"},
		{"bool", zap.Bool("b", true), "b", true},
		{"int", zap.Int("i", -3), "i", float64(-3)},
		{"int8", zap.Int8("i8", -8), "i8", float64(-8)},
		{"int16", zap.Int16("i16", 16), "i16", float64(16)},
		{"int32", zap.Int32("i32", 32), "i32", float64(32)},
		{"int64", zap.Int64("i64", 1<<40), "i64", float64(1 << 40)},
		{"uint", zap.Uint("u", 7), "u", float64(7)},
		{"uint8", zap.Uint8("u8", 8), "u8", float64(8)},
		{"uint16", zap.Uint16("u16", 16), "u16", float64(16)},
		{"uint32", zap.Uint32("u32", 32), "u32", float64(32)},
		{"uint64", zap.Uint64("u64", 64), "u64", float64(64)},
		{"uintptr", zap.Uintptr("p", 0x10), "p", float64(16)},
		{"float64", zap.Float64("f", 1.5), "f", 1.5},
		{"float32", zap.Float32("f32", 0.25), "f32", 0.25},
		{"duration", zap.Duration("d", 1500*time.Millisecond), "d", float64(1500 * time.Millisecond)},
		{"time", zap.Time("t", ts), "t", "2025-03-04T05:06:07Z"},
		{"error", zap.Error(errors.New("boom")), "error", "boom"},
		{"named error", zap.NamedError("cause", errors.New("bad")), "cause", "bad"},
		{"stringer", zap.Stringer("addr", netip.MustParseAddr("10.0.0.1")), "addr", "10.0.0.1"},
		{"nil stringer", zap.Stringer("nil_addr", nilAddr), "nil_addr", "<nil>"},
		{"bytestring", zap.ByteString("bs", []byte("raw")), "bs", "raw"},
		{"binary", zap.Binary("bin", []byte{1, 2, 3}), "bin", "AQID"},
		{"complex", zap.Complex128("c", complex(1, 2)), "c", "(1+2i)"},
		{"strings array", zap.Strings("arr", []string{"a", "b"}), "arr", []any{"a", "b"}},
		{"ints array", zap.Ints("ints", []int{1, 2}), "ints", []any{float64(1), float64(2)}},
		{"reflect", zap.Reflect("m", map[string]int{"x": 1}), "m.x", float64(1)},
		{"any struct", zap.Any("pt", struct{ X int }{X: 4}), "pt.X", float64(4)},
		{"object", zap.Object("user", zapUser{Name: "ann", Password: "pw"}), "user.name", "ann"},
		{"object redacted inside", zap.Object("user", zapUser{Name: "ann", Password: "pw"}), "user.password", Redacted},
		{"inline", zap.Inline(zapUser{Name: "bob", Password: "pw"}), "name", "bob"},
		{"sensitive key", zap.String("api_key", "k"), "api_key", Redacted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			newZapLogger(&buf, Options{}, zapcore.DebugLevel).Info("m", tt.field)
			rec := decodeOne(t, &buf)
			got, ok := lookup(rec, tt.path)
			if !ok || !equalJSON(got, tt.want) {
				t.Errorf("%s = %#v (present %v), want %#v\n%s", tt.path, got, ok, tt.want, buf.String())
			}
		})
	}
}

func equalJSON(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok {
		if len(as) != len(bs) {
			return false
		}
		for i := range as {
			if as[i] != bs[i] {
				return false
			}
		}
		return true
	}
	if aok || bok {
		return false
	}
	return a == b
}

func TestZapSkipsNilErrorAndSkip(t *testing.T) {
	var buf bytes.Buffer
	newZapLogger(&buf, Options{}, zapcore.DebugLevel).Info("m", zap.Error(nil), zap.Skip(), zap.String("k", "v"))
	rec := decodeOne(t, &buf)
	if _, ok := rec["error"]; ok {
		t.Error("nil error was logged")
	}
	if len(rec) != 4 { // time, level, msg, k
		t.Errorf("unexpected fields: %v", rec)
	}
}

func TestZapLevels(t *testing.T) {
	tests := []struct {
		zl        zapcore.Level
		wantLevel string
	}{
		{zapcore.DebugLevel, "DEBUG"},
		{zapcore.InfoLevel, "INFO"},
		{zapcore.WarnLevel, "WARN"},
		{zapcore.ErrorLevel, "ERROR"},
		{zapcore.DPanicLevel, "DPANIC"},
		{zapcore.PanicLevel, "PANIC"},
		{zapcore.FatalLevel, "FATAL"},
	}
	for _, tt := range tests {
		t.Run(tt.zl.String(), func(t *testing.T) {
			var buf bytes.Buffer
			core := NewZapCore(NewHandler(&buf, Options{Level: slog.LevelDebug}), zapcore.DebugLevel)
			// Written directly: zap's logger would panic or exit for the
			// highest levels after writing.
			if err := core.Write(zapcore.Entry{Level: tt.zl, Time: time.Now(), Message: "m"}, nil); err != nil {
				t.Fatal(err)
			}
			if got := decodeOne(t, &buf)[slog.LevelKey]; got != tt.wantLevel {
				t.Errorf("level = %v, want %s", got, tt.wantLevel)
			}
		})
	}
}

func TestZapEnabled(t *testing.T) {
	tests := []struct {
		name      string
		zapLevel  zapcore.LevelEnabler
		slogLevel slog.Level
		check     zapcore.Level
		want      bool
	}{
		{"zap level rejects", zapcore.WarnLevel, slog.LevelDebug, zapcore.InfoLevel, false},
		{"handler level rejects", zapcore.DebugLevel, slog.LevelWarn, zapcore.InfoLevel, false},
		{"both accept", zapcore.InfoLevel, slog.LevelInfo, zapcore.InfoLevel, true},
		{"nil enabler defers to handler", nil, slog.LevelInfo, zapcore.DebugLevel, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := newZapLogger(&buf, Options{Level: tt.slogLevel}, tt.zapLevel)
			if got := logger.Core().Enabled(tt.check); got != tt.want {
				t.Errorf("Enabled = %v, want %v", got, tt.want)
			}
			logger.Check(tt.check, "m").Write()
			if logged := buf.Len() > 0; logged != tt.want {
				t.Errorf("logged = %v, want %v", logged, tt.want)
			}
		})
	}
}

func TestZapContextAndStructure(t *testing.T) {
	ctx, sc := spanContext(t)
	tests := []struct {
		name      string
		log       func(l *zap.Logger)
		wantTrace bool
		want      map[string]any
	}{
		{name: "context field", log: func(l *zap.Logger) { l.Info("m", Context(ctx)) }, wantTrace: true},
		{name: "context bound with With", log: func(l *zap.Logger) { l.With(Context(ctx)).Info("m") }, wantTrace: true},
		{name: "context via zap.Any", log: func(l *zap.Logger) { l.Info("m", zap.Any("ctx", ctx)) }, wantTrace: true},
		{name: "no context", log: func(l *zap.Logger) { l.Info("m") }},
		{
			name: "With fields are redacted",
			log:  func(l *zap.Logger) { l.With(zap.String("token", "t"), zap.Int("n", 1)).Info("m") },
			want: map[string]any{"token": Redacted, "n": float64(1)},
		},
		{
			name: "namespace in call",
			log: func(l *zap.Logger) {
				l.Info("m", zap.String("a", "1"), zap.Namespace("ns"), zap.String("b", "2"), zap.Namespace("inner"), zap.String("password", "p"))
			},
			want: map[string]any{"a": "1", "ns.b": "2", "ns.inner.password": Redacted},
		},
		{
			name: "namespace in With",
			log: func(l *zap.Logger) {
				l.With(zap.String("a", "1"), zap.Namespace("ns"), zap.String("b", "2")).Info("m", zap.String("c", "3"))
			},
			want: map[string]any{"a": "1", "ns.b": "2", "ns.c": "3"},
		},
		{
			name: "named logger",
			log:  func(l *zap.Logger) { l.Named("payments").Info("m") },
			want: map[string]any{ZapLoggerKey: "payments"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(newZapLogger(&buf, Options{Service: "svc"}, zapcore.DebugLevel))
			rec := decodeOne(t, &buf)
			gotTrace, _ := rec[TraceIDKey].(string)
			gotSpan, _ := rec[SpanIDKey].(string)
			if tt.wantTrace && (gotTrace != sc.TraceID().String() || gotSpan != sc.SpanID().String()) {
				t.Errorf("trace/span = %q/%q, want %s/%s", gotTrace, gotSpan, sc.TraceID(), sc.SpanID())
			}
			if !tt.wantTrace && (gotTrace != "" || gotSpan != "") {
				t.Errorf("unexpected trace ids %q/%q", gotTrace, gotSpan)
			}
			if _, ok := rec["ctx"]; ok {
				t.Error("context field leaked into the output")
			}
			if rec[ServiceKey] != "svc" {
				t.Errorf("service = %v", rec[ServiceKey])
			}
			for path, want := range tt.want {
				if got, ok := lookup(rec, path); !ok || got != want {
					t.Errorf("%s = %v (present %v), want %v\n%s", path, got, ok, want, buf.String())
				}
			}
		})
	}
}

func TestZapCallerAndStack(t *testing.T) {
	var buf bytes.Buffer
	logger := zap.New(NewZapCore(NewHandler(&buf, Options{AddSource: true}), zapcore.DebugLevel),
		zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
	logger.Error("m")
	rec := decodeOne(t, &buf)
	if file, _ := lookup(rec, "source.file"); file == nil || file == "" {
		t.Errorf("source missing: %v", rec)
	}
	if st, _ := rec[ZapStackKey].(string); st == "" {
		t.Errorf("stacktrace missing: %v", rec)
	}
}

func TestZapContextFieldIgnoredByZapEncoders(t *testing.T) {
	enc := zapcore.NewMapObjectEncoder()
	Context(t.Context()).AddTo(enc)
	if len(enc.Fields) != 0 {
		t.Errorf("zap encoders see the context field: %v", enc.Fields)
	}
}
