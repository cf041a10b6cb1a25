package logging

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// memoryExporter keeps exported OTel log records in memory.
type memoryExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (e *memoryExporter) Export(_ context.Context, rs []sdklog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range rs {
		e.records = append(e.records, r.Clone())
	}
	return nil
}
func (e *memoryExporter) Shutdown(context.Context) error   { return nil }
func (e *memoryExporter) ForceFlush(context.Context) error { return nil }

// otelAttrs flattens an OTel record's attributes (maps become dotted keys).
func otelAttrs(r sdklog.Record) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, kv attribute.KeyValue)
	walk = func(prefix string, kv attribute.KeyValue) {
		if kv.Value.Type() == attribute.MAP {
			for _, m := range kv.Value.AsMap() {
				walk(prefix+string(kv.Key)+".", m)
			}
			return
		}
		out[prefix+string(kv.Key)] = kv.Value.String()
	}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		walk("", kv)
		return true
	})
	return out
}

// TestExportThroughOTelBridge wires the real otelslog bridge to an SDK logger
// provider, as the lead does in production.
func TestExportThroughOTelBridge(t *testing.T) {
	exp := &memoryExporter{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	bridge := otelslog.NewHandler("vigil-test", otelslog.WithLoggerProvider(lp))

	clock := newFakeClock()
	var buf bytes.Buffer
	h := NewHandler(&buf, Options{
		Service:  "svc",
		Export:   bridge,
		Sampling: &Sampling{First: 1, Tick: time.Second, Now: clock.Now},
	})
	ctx, sc := spanContext(t)
	logger := slog.New(h).With("api_key", "k").WithGroup("req")
	logger.InfoContext(ctx, "served", "authorization", "Bearer x", "path", "/pay")
	logger.InfoContext(ctx, "served", "path", "/dropped-by-sampling")
	logger.ErrorContext(ctx, "failed", "card", "4111111111111111")

	exp.mu.Lock()
	got := exp.records
	exp.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("exported %d records, want 2 (sampling applies to export)", len(got))
	}
	if n := len(decodeLines(t, &buf)); n != 2 {
		t.Fatalf("wrote %d JSON records, want 2", n)
	}
	tests := []struct {
		msg       string
		severity  otellog.Severity
		wantAttrs map[string]any
	}{
		{msg: "served", severity: otellog.SeverityInfo,
			wantAttrs: map[string]any{"api_key": Redacted, "req.authorization": Redacted, "req.path": "/pay"}},
		{msg: "failed", severity: otellog.SeverityError,
			wantAttrs: map[string]any{"api_key": Redacted, "req.card": Redacted}},
	}
	for i, tt := range tests {
		r := got[i]
		if r.Body().AsString() != tt.msg || r.Severity() != tt.severity {
			t.Errorf("record %d: body %q severity %v, want %q %v", i, r.Body().AsString(), r.Severity(), tt.msg, tt.severity)
		}
		if r.TraceID() != sc.TraceID() || r.SpanID() != sc.SpanID() {
			t.Errorf("record %d: trace %v span %v, want the span's ids from the context", i, r.TraceID(), r.SpanID())
		}
		attrs := otelAttrs(r)
		for k, want := range tt.wantAttrs {
			if attrs[k] != want {
				t.Errorf("record %d: %s = %v, want %v (all: %v)", i, k, attrs[k], want, attrs)
			}
		}
		// The bridge sets ids natively; the JSON-only fields are not duplicated.
		for _, k := range []string{TraceIDKey, SpanIDKey, ServiceKey} {
			if _, ok := attrs[k]; ok {
				t.Errorf("record %d: export got JSON-only attribute %s", i, k)
			}
		}
	}
}

type ctxKey struct{}

func TestExportReceivesRedactedRecordsAndContext(t *testing.T) {
	rec := newRecordingHandler()
	rec.level = slog.LevelWarn // the export's own Enabled is honoured
	var buf bytes.Buffer
	h := NewHandler(&buf, Options{Export: rec, RedactKeys: []string{"ssn"}})
	ctx := context.WithValue(t.Context(), ctxKey{}, "original")

	logger := slog.New(h).With("token", "t", "user", "u").WithGroup("g")
	logger.InfoContext(ctx, "below export level", "ssn", "1")
	logger.WarnContext(ctx, "exported", "ssn", "1", "n", 2, slog.Group("inner", slog.String("cookie", "c")))

	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("export received %d records, want 1", len(got))
	}
	if got[0].ctx.Value(ctxKey{}) != "original" {
		t.Error("export did not receive the caller's context")
	}
	want := map[string]any{"token": Redacted, "user": "u", "g.ssn": Redacted, "g.n": int64(2), "g.inner.cookie": Redacted}
	for k, v := range want {
		if got[0].attrs[k] != v {
			t.Errorf("%s = %#v, want %#v (all %v)", k, got[0].attrs[k], v, got[0].attrs)
		}
	}
	if len(got[0].attrs) != len(want) {
		t.Errorf("export attrs = %v, want exactly %v", got[0].attrs, want)
	}
	// The JSON output still got both records.
	if n := len(decodeLines(t, &buf)); n != 2 {
		t.Errorf("JSON records = %d, want 2", n)
	}
}
