package vigil

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startProfiled starts a profiled service named name, sending to addr.
func startProfiled(t *testing.T, name, addr string) *Service {
	t.Helper()
	svc, err := Start(t.Context(), Config{
		ServiceName: name, Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv,
		SelfCheckTimeout: 50 * time.Millisecond,
		// Always sampled, kept in memory: otel-profiling-go labels only
		// sampled spans.
		WrapSpanExporter: func(sdktrace.SpanExporter) sdktrace.SpanExporter {
			return keepOnShutdown{tracetest.NewInMemoryExporter()}
		},
		Profiling: Profiling{Enabled: true, ServerAddress: addr, UploadRate: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func shutdownQuietly(svc *Service) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	// The log exporter has nowhere to send to: its error is expected.
	_ = svc.Shutdown(ctx)
}

// labelsOf returns the pprof labels of ctx.
func labelsOf(ctx context.Context) map[string]string {
	labels := map[string]string{}
	pprof.ForLabels(ctx, func(k, v string) bool { labels[k] = v; return true })
	return labels
}

// Services in one process share its one profiler, started by the first
// and stopped by the last, and label their requests with their names.
func TestProfilingSharedByServicesOfOneProcess(t *testing.T) {
	rec := &ingestRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()

	gateway := startProfiled(t, "gateway", srv.URL)
	payments := startProfiled(t, "payments", srv.URL)
	if n := processProfiler.running(); n != 2 {
		t.Fatalf("%d services share the profiler, want 2", n)
	}

	// HTTP: service_name and span_id together, in the handler's context.
	var httpLabels map[string]string
	web := httptest.NewServer(gateway.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpLabels = labelsOf(r.Context())
	})))
	defer web.Close()
	resp, err := http.Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if httpLabels["service_name"] != "gateway" || len(httpLabels["span_id"]) != 16 {
		t.Errorf("HTTP handler's pprof labels %v, want service_name=gateway and a span_id", httpLabels)
	}

	// gRPC likewise.
	h := &labelledHealth{}
	gs := grpc.NewServer(payments.GRPCServerOptions()...)
	healthpb.RegisterHealthServer(gs, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	if h.labels["service_name"] != "payments" || len(h.labels["span_id"]) != 16 {
		t.Errorf("gRPC handler's pprof labels %v, want service_name=payments and a span_id", h.labels)
	}
	h.mu.Unlock()

	// The first to leave does not stop the profiler; the last does, and
	// the profiler uploads under the name of the service that started it.
	shutdownQuietly(gateway)
	if n := processProfiler.running(); n != 1 {
		t.Fatalf("after one shutdown %d services share the profiler, want 1", n)
	}
	rec.mu.Lock()
	sent := len(rec.names)
	rec.mu.Unlock()
	if sent != 0 {
		t.Errorf("%d uploads after the first shutdown, want none (the profiler still runs)", sent)
	}
	shutdownQuietly(payments)
	if n := processProfiler.running(); n != 0 {
		t.Fatalf("after both shutdowns %d services share the profiler, want 0", n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.names) == 0 {
		t.Fatal("no upload when the last service shut down")
	}
	for _, name := range rec.names {
		if !strings.HasPrefix(name, "gateway") {
			t.Errorf("upload named %q, want the first service's name, gateway", name)
		}
	}
}

// labelledHealth records the pprof labels its Check runs under.
type labelledHealth struct {
	healthpb.UnimplementedHealthServer
	mu     sync.Mutex
	labels map[string]string
}

func (h *labelledHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.labels = labelsOf(ctx)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
