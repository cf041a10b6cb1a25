package logging

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestTraceAndServiceFields(t *testing.T) {
	spanCtx, sc := spanContext(t)
	remote := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x01}, SpanID: trace.SpanID{0x02}, Remote: true,
	}))
	invalid := trace.ContextWithSpanContext(context.Background(), trace.SpanContext{})

	tests := []struct {
		name        string
		ctx         context.Context
		service     string
		wantTrace   string
		wantSpan    string
		wantService string
	}{
		{name: "recording span", ctx: spanCtx, service: "checkout",
			wantTrace: sc.TraceID().String(), wantSpan: sc.SpanID().String(), wantService: "checkout"},
		{name: "remote span context", ctx: remote,
			wantTrace: "01000000000000000000000000000000", wantSpan: "0200000000000000"},
		{name: "no span", ctx: context.Background(), service: "checkout", wantService: "checkout"},
		{name: "invalid span context", ctx: invalid},
		{name: "nil context", ctx: nil, service: "svc", wantService: "svc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := NewHandler(&buf, Options{Service: tt.service})
			//nolint:staticcheck // a nil context must not crash the handler
			if err := h.Handle(tt.ctx, slog.NewRecord(time.Now(), slog.LevelInfo, "hello", 0)); err != nil {
				t.Fatal(err)
			}
			rec := decodeOne(t, &buf)
			for key, want := range map[string]string{TraceIDKey: tt.wantTrace, SpanIDKey: tt.wantSpan, ServiceKey: tt.wantService} {
				got, ok := rec[key]
				if want == "" {
					if ok {
						t.Errorf("%s = %v, want absent", key, got)
					}
					continue
				}
				if got != want {
					t.Errorf("%s = %v, want %q", key, got, want)
				}
			}
		})
	}
}

// TestTraceIDsStayTopLevel checks that ids are not buried in open groups,
// where a log backend would not find them.
func TestTraceIDsStayTopLevel(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	logger := slog.New(NewHandler(&buf, Options{Service: "svc"})).WithGroup("http").With("method", "GET").WithGroup("req")
	logger.InfoContext(ctx, "served", "status", 200)
	rec := decodeOne(t, &buf)
	if rec[TraceIDKey] != sc.TraceID().String() || rec[SpanIDKey] != sc.SpanID().String() {
		t.Errorf("trace ids not at top level: %v", rec)
	}
	if got, _ := lookup(rec, "http.method"); got != "GET" {
		t.Errorf("http.method = %v", got)
	}
	if got, _ := lookup(rec, "http.req.status"); got != float64(200) {
		t.Errorf("http.req.status = %v", got)
	}
}

// TestGolden pins the JSON shape of a record with every kind of added field.
func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(&buf, Options{Service: "checkout"})
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	}))
	logger := slog.New(h).With("component", "payments").WithGroup("order")
	r := slog.NewRecord(time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC), slog.LevelWarn, "payment declined", 0)
	r.AddAttrs(slog.String("id", "2024061500001234"), slog.String("card", "4111 1111 1111 1111"),
		slog.Group("customer", slog.String("email", "a@example.com"), slog.String("password", "hunter2")),
		slog.Int("amount_cents", 1299))
	if err := logger.Handler().Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, "record.golden.json", buf.Bytes())
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\ngot:  %s\nwant: %s", path, got, want)
	}
}

func TestLevel(t *testing.T) {
	lv := new(slog.LevelVar)
	tests := []struct {
		name  string
		level slog.Leveler
		set   slog.Level // applied to lv before checking
		check slog.Level
		want  bool
	}{
		{name: "default info rejects debug", check: slog.LevelDebug, want: false},
		{name: "default info accepts info", check: slog.LevelInfo, want: true},
		{name: "warn rejects info", level: slog.LevelWarn, check: slog.LevelInfo, want: false},
		{name: "warn accepts error", level: slog.LevelWarn, check: slog.LevelError, want: true},
		{name: "level var lowered to debug", level: lv, set: slog.LevelDebug, check: slog.LevelDebug, want: true},
		{name: "level var raised to error", level: lv, set: slog.LevelError, check: slog.LevelWarn, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lv.Set(tt.set)
			var buf bytes.Buffer
			logger := slog.New(NewHandler(&buf, Options{Level: tt.level}))
			if got := logger.Enabled(t.Context(), tt.check); got != tt.want {
				t.Errorf("Enabled(%v) = %v, want %v", tt.check, got, tt.want)
			}
			logger.Log(t.Context(), tt.check, "m")
			if logged := buf.Len() > 0; logged != tt.want {
				t.Errorf("logged = %v, want %v", logged, tt.want)
			}
		})
	}
}

func TestZapLevelNames(t *testing.T) {
	for level, want := range map[slog.Level]string{
		LevelDPanic: "DPANIC", LevelPanic: "PANIC", LevelFatal: "FATAL",
		slog.LevelError: "ERROR", slog.LevelError + 1: "ERROR+1",
	} {
		var buf bytes.Buffer
		slog.New(NewHandler(&buf, Options{})).Log(t.Context(), level, "m")
		if got := decodeOne(t, &buf)[slog.LevelKey]; got != want {
			t.Errorf("level %d rendered %v, want %s", level, got, want)
		}
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestHandleReturnsWriteError(t *testing.T) {
	h := NewHandler(failingWriter{}, Options{})
	err := h.Handle(t.Context(), slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0))
	if !errors.Is(err, errWrite) {
		t.Errorf("Handle error = %v, want %v", err, errWrite)
	}
}

// TestConcurrentUse logs from several goroutines through derived handlers;
// every line must still be one valid JSON object and sampling counts must
// add up. Run with -race to check the synchronisation as well.
func TestConcurrentUse(t *testing.T) {
	var buf syncBuffer
	h := NewHandler(&buf, Options{
		Service:  "svc",
		Sampling: &Sampling{First: 10, Thereafter: 5, Tick: time.Hour},
	})
	const goroutines, perG = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			logger := slog.New(h).With("g", g, "token", "t")
			for i := range perG {
				logger.Info("tick", "i", i, "password", "p")
			}
		})
	}
	wg.Wait()
	recs := decodeLines(t, &buf.buf)
	if total := uint64(len(recs)) + h.Dropped(); total != goroutines*perG {
		t.Errorf("logged %d + dropped %d = %d, want %d", len(recs), h.Dropped(), total, goroutines*perG)
	}
	for _, r := range recs {
		if r["token"] != Redacted || r["password"] != Redacted {
			t.Fatalf("unredacted record under concurrency: %v", r)
		}
	}
	// With one window for the whole run, exactly 10 + (1600-10)/5 survive.
	if want := 10 + (goroutines*perG-10)/5; len(recs) != want {
		t.Errorf("kept %d records, want %d", len(recs), want)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
