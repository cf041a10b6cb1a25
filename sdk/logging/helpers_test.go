package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// decodeLines parses one JSON object per line of buf.
func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("output line is not JSON: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// decodeOne parses buf, which must hold exactly one record.
func decodeOne(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	recs := decodeLines(t, buf)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1:\n%s", len(recs), buf.String())
	}
	return recs[0]
}

// lookup follows a dotted path through nested JSON objects.
func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// spanContext starts a recording span from a real SDK tracer provider and
// returns a context carrying it.
func spanContext(t testing.TB) (context.Context, trace.SpanContext) {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("logging-test").Start(context.Background(), "op")
	t.Cleanup(func() { span.End() })
	if !span.IsRecording() {
		t.Fatal("span is not recording")
	}
	return ctx, span.SpanContext()
}

// recordingHandler is a slog.Handler that keeps what it is given, flattening
// WithGroup/WithAttrs into dotted keys, to check what the export side sees.
type recordingHandler struct {
	mu      *sync.Mutex
	records *[]recorded
	prefix  string
	attrs   []slog.Attr
	level   slog.Level
}

type recorded struct {
	ctx   context.Context
	level slog.Level
	msg   string
	attrs map[string]any
}

func newRecordingHandler() *recordingHandler {
	return &recordingHandler{mu: new(sync.Mutex), records: new([]recorded), level: slog.LevelDebug}
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	flat := map[string]any{}
	for _, a := range h.attrs {
		flatten(flat, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		flatten(flat, h.prefix, a)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, recorded{ctx: ctx, level: r.Level, msg: r.Message, attrs: flat})
	return nil
}

func (h *recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		h2.attrs = append(h2.attrs, slog.Attr{Key: h.prefix + a.Key, Value: a.Value})
	}
	return &h2
}

func (h *recordingHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func (h *recordingHandler) got() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.records)
}

func flatten(dst map[string]any, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, m := range v.Group() {
			flatten(dst, prefix+a.Key+".", m)
		}
		return
	}
	dst[prefix+a.Key] = v.Any()
}
