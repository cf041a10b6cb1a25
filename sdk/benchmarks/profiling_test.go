package benchmarks

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	vigil "github.com/vigil-observability/vigil/sdk"
)

// BenchmarkProfilingOverhead is a request's worth of CPU work (a span and
// 64 KiB hashed) with the SDK's continuous profiling off and on (CPU,
// alloc and inuse space, goroutines, uploaded every second to a sink that
// stands in for vigil): the difference is what profiling costs a busy
// service. Compare the two with -count and benchstat.
func BenchmarkProfilingOverhead(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer sink.Close()
	data := make([]byte, 64<<10)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			svc, err := vigil.Start(context.Background(), vigil.Config{
				ServiceName: "bench", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, SelfCheckTimeout: time.Millisecond,
				Profiling: vigil.Profiling{Enabled: on, ServerAddress: sink.URL, UploadRate: time.Second},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = svc.Shutdown(ctx)
			}()
			tracer := otel.Tracer("bench")
			// Past the first upload, so that its cost is in the loop.
			time.Sleep(1100 * time.Millisecond)
			b.ResetTimer()
			for b.Loop() {
				_, span := tracer.Start(context.Background(), "work")
				sum := sha256.Sum256(data)
				data[0] = sum[0]
				span.End()
			}
		})
	}
}

// BenchmarkProfilingMiddleware is the SDK's HTTP middleware around a
// handler that does nothing, with profiling off and on: the difference is
// what profiling adds to every request whatever its handler does (the
// span's pprof labels from otel-profiling-go, the service_name label,
// SIGPROF at 100 Hz), in ns, where TestProfilingOverhead gives the share
// of a whole service's CPU.
func BenchmarkProfilingMiddleware(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer sink.Close()
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			svc, err := vigil.Start(context.Background(), vigil.Config{
				ServiceName: "bench", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, SelfCheckTimeout: time.Millisecond,
				WrapSpanExporter: func(sdktrace.SpanExporter) sdktrace.SpanExporter { return discardSpans{} },
				Profiling:        vigil.Profiling{Enabled: on, ServerAddress: sink.URL},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = svc.Shutdown(ctx)
			}()
			mux := http.NewServeMux()
			mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
			h := svc.Middleware(mux)
			req := httptest.NewRequest(http.MethodGet, "/orders/42", nil)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
