package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// The encoder must write exactly what slog's JSONHandler wrote when the
// handler delegated to it, so these tests log the same record through both
// and compare the bytes. Only keys and values that redaction leaves alone
// are used; redaction has its own tests.

type textError struct{ msg string }

func (e *textError) Error() string { return e.msg }

// marshalingError is an error that marshals itself; slog prefers MarshalJSON.
type marshalingError struct{}

func (marshalingError) Error() string                { return "as text" }
func (marshalingError) MarshalJSON() ([]byte, error) { return []byte(`{"as":"json"}`), nil }

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("cannot marshal") }

type panickingMarshaler struct{}

func (panickingMarshaler) MarshalJSON() ([]byte, error) { panic("boom") }

type stringer struct{ N int }

func (stringer) String() string { return "as string" }

type valuer struct{ v slog.Value }

func (v valuer) LogValue() slog.Value { return v.v }

type point struct {
	X, Y int
	Tag  string `json:"tag,omitempty"`
}

func TestEncoderMatchesSlogJSON(t *testing.T) {
	var nilErr *textError
	var nilPoint *point
	zone := time.FixedZone("x", -(3*3600 + 30*60))
	tests := []struct {
		name  string
		msg   string
		level slog.Level
		attrs []slog.Attr
	}{
		{name: "no attrs", msg: "m"},
		{name: "message escaping", msg: "a \"q\" \\ \n\r\t \x00\x1f\x7f <b>&amp; \xff\xfe \u2028\u2029 héllo 世界 🙂"},
		{name: "string escaping", attrs: []slog.Attr{
			slog.String("plain", "eu-west-1"),
			slog.String("quotes", `say "hi" \ back`),
			slog.String("controls", "\x00\x01\b\f\n\r\t\x1f\x7f"),
			slog.String("html", "<script>&amp;</script>"),
			slog.String("invalid utf8", "a\xffb\xc3(\xe2\x82"),
			slog.String("separators", "x\u2028y\u2029z"),
			slog.String("unicode", "héllo 世界 🙂"),
			slog.String("", "empty key"),
			slog.String("k\"e\ny<>", "escaped key"),
		}},
		{name: "integers", attrs: []slog.Attr{
			slog.Int("zero", 0), slog.Int("neg", -1), slog.Int64("max", math.MaxInt64),
			slog.Int64("min", math.MinInt64), slog.Uint64("umax", math.MaxUint64),
		}},
		{name: "floats", attrs: []slog.Attr{
			slog.Float64("zero", 0), slog.Float64("negzero", math.Copysign(0, -1)), slog.Float64("half", 0.5),
			slog.Float64("ratio", 99.95), slog.Float64("big", 1e20), slog.Float64("huge", 1e21),
			slog.Float64("small", 1e-6), slog.Float64("tiny", 1e-7), slog.Float64("neg tiny", -1.5e-9),
			slog.Float64("max", math.MaxFloat64), slog.Float64("denormal", math.SmallestNonzeroFloat64),
			slog.Float64("third", 1.0/3), slog.Float64("e100", 1e100),
		}},
		{name: "non-finite floats", attrs: []slog.Attr{
			slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(1)), slog.Float64("-inf", math.Inf(-1)),
		}},
		{name: "bool duration time", attrs: []slog.Attr{
			slog.Bool("t", true), slog.Bool("f", false),
			slog.Duration("d", 1500*time.Microsecond), slog.Duration("neg", -time.Second),
			slog.Time("utc", time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC)),
			slog.Time("zoned", time.Date(2025, 3, 4, 5, 6, 7, 0, zone)),
			slog.Time("zero", time.Time{}),
			slog.Time("monotonic", time.Unix(1700000000, 5).Add(0)),
		}},
		{name: "errors", attrs: []slog.Attr{
			slog.Any("err", io.ErrUnexpectedEOF),
			slog.Any("wrapped", fmt.Errorf("load %q: %w", "x<y>", io.EOF)),
			slog.Any("nil pointer error", nilErr),
			slog.Any("marshaling error", marshalingError{}),
		}},
		{name: "any values", attrs: []slog.Attr{
			slog.Any("nil", nil),
			slog.Any("", nil), // elided
			slog.Any("slice", []int{1, 2, 3}),
			slog.Any("map", map[string]any{"b": 1, "a": "<&>"}),
			slog.Any("struct", point{X: 1, Y: 2}),
			slog.Any("pointer", &point{X: 3, Tag: "t"}),
			slog.Any("nil pointer", nilPoint),
			slog.Any("stringer", stringer{N: 7}),
			slog.Any("text marshaler", netip.MustParseAddr("192.0.2.1")),
			slog.Any("level", slog.LevelWarn),
			slog.Any("bytes", []byte("hi")),
			slog.Any("complex", complex(1, 2)),
			slog.Any("chan", make(chan int)),
			slog.Any("failing", failingMarshaler{}),
			slog.Any("panicking", panickingMarshaler{}),
			slog.Any("raw", json.RawMessage(`{"x":1}`)),
			slog.Any("source", &slog.Source{Function: "f", File: "a.go", Line: 3}),
			slog.Any("empty source", &slog.Source{}),
		}},
		{name: "log valuers", attrs: []slog.Attr{
			slog.Any("v", valuer{slog.IntValue(4)}),
			slog.Any("nested", valuer{slog.AnyValue(valuer{slog.StringValue("deep")})}),
			slog.Any("group", valuer{slog.GroupValue(slog.Int("a", 1), slog.Any("b", valuer{slog.BoolValue(true)}))}),
			slog.Any("empty group", valuer{slog.GroupValue()}),
		}},
		{name: "groups", attrs: []slog.Attr{
			slog.Group("g", slog.Int("a", 1), slog.Group("h", slog.String("b", "x"))),
			slog.Group("empty"),
			slog.Group("", slog.Int("inlined", 1), slog.Group("", slog.Int("twice", 2))),
			slog.Group("nested empty", slog.Group("inner")),
			slog.Int("after", 1),
		}},
		{name: "levels", level: slog.LevelDebug - 2},
		{name: "error+1", level: slog.LevelError + 1},
		{name: "zap levels", level: LevelDPanic},
		{name: "panic", level: LevelPanic},
		{name: "fatal", level: LevelFatal},
	}
	type chain func(slog.Handler) slog.Handler
	chains := map[string]chain{
		"plain": func(h slog.Handler) slog.Handler { return h },
		"with attrs": func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("component", "pay<ments>"), slog.Group("empty")})
		},
		"group": func(h slog.Handler) slog.Handler { return h.WithGroup("req") },
		"empty nested groups": func(h slog.Handler) slog.Handler {
			return h.WithGroup("a").WithGroup("b\"c").WithGroup("d")
		},
		"groups with attrs": func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.Int("top", 1)}).WithGroup("a").
				WithAttrs([]slog.Attr{slog.Int("x", 1), slog.Any("", nil)}).WithGroup("b").WithGroup("c").
				WithAttrs([]slog.Attr{slog.Bool("y", true)}).WithGroup("d")
		},
		"group with only a group": func(h slog.Handler) slog.Handler {
			return h.WithGroup("a").WithAttrs([]slog.Attr{slog.Group("g", slog.Int("x", 1))}).WithGroup("b")
		},
	}
	for _, tt := range tests {
		for cname, ch := range chains {
			t.Run(tt.name+"/"+cname, func(t *testing.T) {
				when := time.Date(2026, 11, 21, 6, 51, 26, 123456789, time.UTC)
				var got, want bytes.Buffer
				ours := ch(NewHandler(&got, Options{Level: slog.LevelDebug - 10}))
				ref := ch(slog.NewJSONHandler(&want, &slog.HandlerOptions{
					Level: slog.LevelDebug - 10, ReplaceAttr: zapLevelNames,
				}))
				for _, h := range []slog.Handler{ours, ref} {
					r := slog.NewRecord(when, tt.level, tt.msg, 0)
					r.AddAttrs(tt.attrs...)
					if err := h.Handle(t.Context(), r); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("output differs from slog's JSON handler:\ngot:  %s\nwant: %s", got.Bytes(), want.Bytes())
				}
				if !json.Valid(got.Bytes()) {
					t.Errorf("invalid JSON: %s", got.Bytes())
				}
			})
		}
	}
}

// zapLevelNames is the ReplaceAttr the handler used with slog's JSON
// handler to name the zap-only levels.
func zapLevelNames(groups []string, a slog.Attr) slog.Attr {
	if len(groups) != 0 || a.Key != slog.LevelKey {
		return a
	}
	switch a.Value.Any().(slog.Level) {
	case LevelDPanic:
		a.Value = slog.StringValue("DPANIC")
	case LevelPanic:
		a.Value = slog.StringValue("PANIC")
	case LevelFatal:
		a.Value = slog.StringValue("FATAL")
	}
	return a
}

func TestEncoderSourceMatchesSlogJSON(t *testing.T) {
	var pcs [1]uintptr
	runtime.Callers(1, pcs[:])
	for _, pc := range []uintptr{0, pcs[0]} {
		var got, want bytes.Buffer
		ours := NewHandler(&got, Options{AddSource: true})
		ref := slog.NewJSONHandler(&want, &slog.HandlerOptions{AddSource: true})
		for _, h := range []slog.Handler{ours, ref} {
			if err := h.Handle(t.Context(), slog.NewRecord(time.Unix(1, 0).UTC(), slog.LevelInfo, "m", pc)); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("pc %#x: output differs from slog's JSON handler:\ngot:  %s\nwant: %s", pc, got.Bytes(), want.Bytes())
		}
	}
}

// TestEncoderOutOfRangeYear covers the one deliberate difference from slog,
// which writes an error string followed by the time, making the line
// invalid JSON; the encoder writes the formatted time as a valid string.
func TestEncoderOutOfRangeYear(t *testing.T) {
	for _, year := range []int{-1, 10000} {
		var buf bytes.Buffer
		ts := time.Date(year, 1, 2, 3, 4, 5, 0, time.UTC)
		slog.New(NewHandler(&buf, Options{})).Info("m", "at", ts)
		rec := decodeOne(t, &buf)
		if want := ts.Format(time.RFC3339Nano); rec["at"] != want {
			t.Errorf("year %d: at = %v, want %q", year, rec["at"], want)
		}
	}
}
