package benchmarks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vigil-observability/vigil/sdk/instrument"
)

func routedMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	return mux
}

func serve(b *testing.B, h http.Handler) {
	req := httptest.NewRequest(http.MethodGet, "/items/42", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}

// BenchmarkMiddleware compares the SDK middleware (spans + RED metrics) with
// otelhttp alone and with otelhttp plus promhttp's duration histogram, all
// with the same sampling tracer provider.
func BenchmarkMiddleware(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
	noMeter := metricnoop.NewMeterProvider()
	b.Run("otelhttp", func(b *testing.B) {
		serve(b, otelhttp.NewHandler(routedMux(), "server", otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(noMeter)))
	})
	b.Run("otelhttp+promhttp", func(b *testing.B) {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "x"}, []string{"code", "method"})
		inner := promhttp.InstrumentHandlerDuration(h, routedMux())
		serve(b, otelhttp.NewHandler(inner, "server", otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(noMeter)))
	})
	b.Run("vigil", func(b *testing.B) {
		m, err := instrument.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		serve(b, instrument.Middleware(m, instrument.HTTPOptions{TracerProvider: tp})(routedMux()))
	})
}
