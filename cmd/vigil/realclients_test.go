package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otelErrors collects what the OpenTelemetry SDK reports through its global
// error handler, where exporters send failures they cannot return.
type otelErrors struct {
	mu   sync.Mutex
	errs []error
}

func (h *otelErrors) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

// TestOpenTelemetrySDKExporters sends traces and logs with the official Go
// SDK exporters, over gRPC and HTTP, and reads them back.
func TestOpenTelemetrySDKExporters(t *testing.T) {
	s := startServer(t, t.TempDir())
	handler := &otelErrors{}
	otel.SetErrorHandler(handler)
	ctx := t.Context()

	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			service := "e2e-sdk-" + proto
			res := resource.NewSchemaless(attribute.String("service.name", service))
			var (
				spanExp sdktrace.SpanExporter
				logExp  sdklog.Exporter
				err     error
			)
			if proto == "grpc" {
				spanExp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.grpcA), otlptracegrpc.WithInsecure())
				if err == nil {
					logExp, err = otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(s.grpcA), otlploggrpc.WithInsecure())
				}
			} else {
				host := strings.TrimPrefix(s.otlpHTTPURL, "http://")
				spanExp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(host), otlptracehttp.WithInsecure())
				if err == nil {
					logExp, err = otlploghttp.New(ctx, otlploghttp.WithEndpoint(host), otlploghttp.WithInsecure())
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spanExp), sdktrace.WithResource(res))
			lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(logExp)), sdklog.WithResource(res))

			spanCtx, parent := tp.Tracer("e2e").Start(ctx, "checkout")
			_, child := tp.Tracer("e2e").Start(spanCtx, "charge card")
			child.SetAttributes(attribute.Int("order.items", 3), attribute.Bool("retry", false))
			child.End()
			var rec otellog.Record
			rec.SetBody(attribute.StringValue("payment accepted for order 42"))
			rec.SetSeverity(otellog.SeverityInfo)
			rec.SetSeverityText("INFO")
			rec.AddAttributes(attribute.String("payment.method", "card"))
			lp.Logger("e2e").Emit(spanCtx, rec)
			parent.End()
			traceID := parent.SpanContext().TraceID().String()

			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("trace exporter: %v", err)
			}
			if err := lp.Shutdown(ctx); err != nil {
				t.Fatalf("log exporter: %v", err)
			}

			var tr struct {
				Data []struct {
					Spans []struct {
						OperationName string `json:"operationName"`
						ProcessID     string `json:"processID"`
						Tags          []struct {
							Key   string `json:"key"`
							Value any    `json:"value"`
						} `json:"tags"`
					} `json:"spans"`
					Processes map[string]struct {
						ServiceName string `json:"serviceName"`
					} `json:"processes"`
				} `json:"data"`
			}
			if code := s.getJSON(t, "/api/traces/"+traceID, &tr); code != http.StatusOK {
				t.Fatalf("GET trace %s: HTTP %d", traceID, code)
			}
			ops := map[string]bool{}
			for _, sp := range tr.Data[0].Spans {
				ops[sp.OperationName] = true
				if got := tr.Data[0].Processes[sp.ProcessID].ServiceName; got != service {
					t.Errorf("span %s: service %q, want %q", sp.OperationName, got, service)
				}
			}
			if len(ops) != 2 || !ops["checkout"] || !ops["charge card"] {
				t.Errorf("operations = %v, want checkout and charge card", ops)
			}

			var lr struct {
				Data []struct {
					Body       string         `json:"body"`
					Service    string         `json:"service"`
					TraceID    string         `json:"trace_id"`
					Severity   string         `json:"severity"`
					Attributes map[string]any `json:"attributes"`
				} `json:"data"`
			}
			if code := s.getJSON(t, "/api/logs?"+url.Values{"service": {service}}.Encode(), &lr); code != http.StatusOK {
				t.Fatalf("GET logs: HTTP %d", code)
			}
			if len(lr.Data) != 1 {
				t.Fatalf("%d log records, want 1: %+v", len(lr.Data), lr.Data)
			}
			got := lr.Data[0]
			if got.Body != "payment accepted for order 42" || got.TraceID != traceID || got.Severity != "INFO" || got.Attributes["payment.method"] != "card" {
				t.Errorf("log record = %+v, want the emitted record with trace id %s", got, traceID)
			}
		})
	}
	handler.mu.Lock()
	defer handler.mu.Unlock()
	if len(handler.errs) > 0 {
		t.Errorf("the OpenTelemetry SDK reported errors: %v", handler.errs)
	}
}

// TestPrometheusRemoteWrite runs Debian's prometheus, scraping itself and
// remote-writing to vigil, and queries those series, and the metadata
// Prometheus sends beside them, through vigil's API.
func TestPrometheusRemoteWrite(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("this test runs the real Prometheus as a remote_write client: apt-get install prometheus")
	}
	s := startServer(t, t.TempDir())
	dir := t.TempDir()
	promAddr := testport.Addr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 1s
`, promAddr, s.httpURL)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	prom := exec.CommandContext(ctx, promBin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	out := &syncBuffer{}
	prom.Stdout, prom.Stderr = out, out
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	}()

	waitFor(t, "prometheus's own series to arrive in vigil", 2*time.Minute, func() bool {
		up := s.promQuery(t, `up{job="prometheus"}`)
		info := s.promQuery(t, `prometheus_build_info{job="prometheus"}`)
		return len(up) == 1 && up[0].Value[1] == "1" && len(info) == 1
	})
	waitFor(t, "prometheus's metric metadata to arrive in vigil", time.Minute, func() bool {
		md, _ := s.metadata(t, "metric=prometheus_build_info")
		e := md["prometheus_build_info"]
		return len(e) == 1 && e[0].Type == "gauge" && strings.Contains(e[0].Help, "build")
	})
	if all, _ := s.metadata(t, ""); len(all) < 100 {
		t.Errorf("metadata lists %d families, want the hundreds Prometheus exports", len(all))
	}
	if n := lineCount(out.String(), "Failed to send batch"); n > 0 {
		t.Errorf("prometheus reported %d failed remote_write batches", n)
	}
}
