package instrument

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkMiddleware compares Middleware with what it replaces: otelhttp
// alone, and otelhttp around promhttp's duration instrumentation. All use the
// same sampling SDK tracer provider (no exporter) and a no-op meter provider.
func BenchmarkMiddleware(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
	prop := propagation.TraceContext{}
	otelOpts := []otelhttp.Option{
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})

	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	promVec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "baseline", Buckets: DefaultBuckets,
	}, []string{"code", "method"})

	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"otelhttp", otelhttp.NewHandler(mux, "", otelOpts...)},
		{"otelhttp+promhttp", otelhttp.NewHandler(promhttp.InstrumentHandlerDuration(promVec, mux), "", otelOpts...)},
		{"Middleware", Middleware(m, HTTPOptions{TracerProvider: tp, Propagators: prop})(mux)},
	}
	for _, hc := range handlers {
		b.Run(hc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/items/42", nil)
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				hc.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
