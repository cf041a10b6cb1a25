package otlp

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// The tests in this file use the official OpenTelemetry Go SDK exporters as
// clients against real listeners on 127.0.0.1: what they send, vigil must
// accept without the exporter seeing an error.

const e2eService = "e2e-checkout"

// e2eServers starts the HTTP and gRPC receivers around rec and returns
// their addresses.
func e2eServers(t *testing.T, rec *recorder) (httpAddr, grpcAddr string) {
	t.Helper()
	opts := Options{Traces: rec, Logs: rec, Metrics: rec, Ingest: selfobs.NewIngestMetrics(nil)}

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: NewHTTPHandler(opts), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(hl) }()
	t.Cleanup(func() { _ = hs.Close() })

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := NewGRPCServer(opts)
	go func() { _ = gs.Serve(gl) }()
	t.Cleanup(gs.Stop)
	return hl.Addr().String(), gl.Addr().String()
}

func e2eResource(t *testing.T) *resource.Resource {
	return resource.NewSchemaless(attribute.String("service.name", e2eService), attribute.String("deployment.environment", "test"))
}

type traceExporter interface {
	ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error
	Shutdown(context.Context) error
}

func TestEndToEndSDKTraceExporters(t *testing.T) {
	rec := &recorder{}
	httpAddr, grpcAddr := e2eServers(t, rec)
	ctx := t.Context()
	exporters := []struct {
		name string
		new  func() (traceExporter, error)
	}{
		{"otlptracehttp", func() (traceExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		}},
		{"otlptracehttp gzip", func() (traceExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		}},
		{"otlptracegrpc", func() (traceExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		}},
		{"otlptracegrpc gzip", func() (traceExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithCompressor("gzip"),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		}},
	}
	for _, ex := range exporters {
		t.Run(ex.name, func(t *testing.T) {
			before := len(rec.spanNames())
			spans := recordSpans(t, ex.name)
			exp, err := ex.new()
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.ExportSpans(ctx, spans); err != nil {
				t.Fatalf("exporter saw an error: %v", err)
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if got := len(rec.spanNames()) - before; got != 2 {
				t.Fatalf("%d spans arrived, want 2", got)
			}
			parent, child := findSpan(t, rec, ex.name+" parent"), findSpan(t, rec, ex.name+" child")
			if v, ok := parent.span.Attributes().Get("http.route"); !ok || v.Str() != "/cart" {
				t.Errorf("http.route = %v", parent.span.Attributes().AsRaw())
			}
			if v, ok := parent.span.Attributes().Get("http.response.status_code"); !ok || v.Int() != 200 {
				t.Errorf("status code attribute = %v", parent.span.Attributes().AsRaw())
			}
			if svc, _ := parent.resource.Attributes().Get("service.name"); svc.Str() != e2eService {
				t.Errorf("service.name = %q", svc.Str())
			}
			if parent.scope.Name() != "e2e-lib" {
				t.Errorf("scope = %q", parent.scope.Name())
			}
			if child.span.ParentSpanID() != parent.span.SpanID() || child.span.TraceID() != parent.span.TraceID() {
				t.Errorf("child is not linked to its parent")
			}
			if parent.span.Kind() != ptrace.SpanKindServer {
				t.Errorf("kind = %v", parent.span.Kind())
			}
			if ev := child.span.Events(); ev.Len() != 1 || ev.At(0).Name() != "cache miss" {
				t.Errorf("child events lost")
			}
		})
	}
}

// recordSpans produces two finished SDK spans, "<prefix> parent" and
// "<prefix> child".
func recordSpans(t *testing.T, prefix string) []sdktrace.ReadOnlySpan {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithResource(e2eResource(t)))
	tr := tp.Tracer("e2e-lib")
	ctx, parent := tr.Start(t.Context(), prefix+" parent", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.route", "/cart"), attribute.Int("http.response.status_code", 200)))
	_, child := tr.Start(ctx, prefix+" child")
	child.AddEvent("cache miss", trace.WithAttributes(attribute.String("key", "cart:42")))
	child.End()
	parent.End()
	return sr.Ended()
}

type foundSpan struct {
	resource pcommon.Resource
	scope    pcommon.InstrumentationScope
	span     ptrace.Span
}

func findSpan(t *testing.T, rec *recorder, name string) foundSpan {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, td := range rec.traces {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					if sp.Name() == name {
						return foundSpan{rs.Resource(), ss.Scope(), sp}
					}
				}
			}
		}
	}
	t.Fatalf("span %q not received", name)
	return foundSpan{}
}

// collectingProcessor keeps the records the SDK emits so the test can hand
// them to an exporter itself and see its error.
type collectingProcessor struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (p *collectingProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (p *collectingProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = append(p.records, r.Clone())
	return nil
}
func (p *collectingProcessor) Shutdown(context.Context) error   { return nil }
func (p *collectingProcessor) ForceFlush(context.Context) error { return nil }

type logExporter interface {
	Export(context.Context, []sdklog.Record) error
	Shutdown(context.Context) error
}

func TestEndToEndSDKLogExporters(t *testing.T) {
	rec := &recorder{}
	httpAddr, grpcAddr := e2eServers(t, rec)
	ctx := t.Context()
	exporters := []struct {
		name string
		new  func() (logExporter, error)
	}{
		{"otlploghttp", func() (logExporter, error) {
			return otlploghttp.New(ctx, otlploghttp.WithEndpoint(httpAddr), otlploghttp.WithInsecure(),
				otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
		}},
		{"otlploghttp gzip", func() (logExporter, error) {
			return otlploghttp.New(ctx, otlploghttp.WithEndpoint(httpAddr), otlploghttp.WithInsecure(),
				otlploghttp.WithCompression(otlploghttp.GzipCompression),
				otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
		}},
		{"otlploggrpc", func() (logExporter, error) {
			return otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(grpcAddr), otlploggrpc.WithInsecure(),
				otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}))
		}},
		{"otlploggrpc gzip", func() (logExporter, error) {
			return otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(grpcAddr), otlploggrpc.WithInsecure(),
				otlploggrpc.WithCompressor("gzip"),
				otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}))
		}},
	}
	for _, ex := range exporters {
		t.Run(ex.name, func(t *testing.T) {
			proc := &collectingProcessor{}
			lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc), sdklog.WithResource(e2eResource(t)))
			logger := lp.Logger("e2e-lib")
			var r otellog.Record
			r.SetTimestamp(time.Now())
			r.SetSeverity(otellog.SeverityWarn)
			r.SetSeverityText("WARN")
			r.SetBody(attribute.StringValue(ex.name + " payment retried"))
			r.AddAttributes(attribute.String("order.id", "A-42"), attribute.Int("attempt", 2))
			logger.Emit(ctx, r)
			var noTime otellog.Record // the SDK sets only the observed time
			noTime.SetBody(attribute.StringValue(ex.name + " no timestamp"))
			logger.Emit(ctx, noTime)

			exp, err := ex.new()
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.Export(ctx, proc.records); err != nil {
				t.Fatalf("exporter saw an error: %v", err)
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			lr, res, scope := findLog(t, rec, ex.name+" payment retried")
			if lr.SeverityNumber() != plog.SeverityNumberWarn || lr.SeverityText() != "WARN" {
				t.Errorf("severity %v %q", lr.SeverityNumber(), lr.SeverityText())
			}
			if v, ok := lr.Attributes().Get("order.id"); !ok || v.Str() != "A-42" {
				t.Errorf("attributes = %v", lr.Attributes().AsRaw())
			}
			if v, ok := lr.Attributes().Get("attempt"); !ok || v.Int() != 2 {
				t.Errorf("attributes = %v", lr.Attributes().AsRaw())
			}
			if svc, _ := res.Attributes().Get("service.name"); svc.Str() != e2eService {
				t.Errorf("service.name = %q", svc.Str())
			}
			if scope.Name() != "e2e-lib" {
				t.Errorf("scope = %q", scope.Name())
			}
			findLog(t, rec, ex.name+" no timestamp")
		})
	}
}

func findLog(t *testing.T, rec *recorder, body string) (plog.LogRecord, pcommon.Resource, pcommon.InstrumentationScope) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ld := range rec.logs {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if lr.Body().AsString() == body {
						return lr, rl.Resource(), sl.Scope()
					}
				}
			}
		}
	}
	t.Fatalf("log record %q not received", body)
	return plog.LogRecord{}, pcommon.Resource{}, pcommon.InstrumentationScope{}
}

// TestEndToEndSDKSeesRefusal checks the other half of the contract: when
// the data is not stored, the SDK exporter gets an error (to retry), not a
// success.
func TestEndToEndSDKSeesRefusal(t *testing.T) {
	rec := &recorder{err: ingest.ErrOverloaded}
	httpAddr, grpcAddr := e2eServers(t, rec)
	ctx := t.Context()
	spans := recordSpans(t, "refused")

	he, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	if err := he.ExportSpans(ctx, spans); err == nil {
		t.Error("otlptracehttp reported success for data that was not stored")
	}
	ge, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ge.ExportSpans(ctx, spans); err == nil {
		t.Error("otlptracegrpc reported success for data that was not stored")
	}
	_ = he.Shutdown(ctx)
	_ = ge.Shutdown(ctx)
}
