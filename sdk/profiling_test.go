package vigil

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// ingestRecorder stands in for vigil's POST /ingest.
type ingestRecorder struct {
	mu    sync.Mutex
	names []string
	sizes []int
}

func (r *ingestRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if req.URL.Path != "/ingest" || err != nil {
		http.Error(w, "not an ingest request", http.StatusBadRequest)
		return
	}
	mr := multipart.NewReader(req.Body, params["boundary"])
	size := 0
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(part)
		if part.FormName() == "profile" {
			size = len(b)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, req.URL.Query().Get("name"))
	r.sizes = append(r.sizes, size)
}

func TestProfilingSendsProfilesAndLinksSpans(t *testing.T) {
	rec := &ingestRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	spans := tracetest.NewInMemoryExporter()
	svc, err := Start(t.Context(), Config{
		ServiceName: "profiled", ServiceVersion: "1.2.3", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv,
		SelfCheckTimeout: 50 * time.Millisecond,
		WrapSpanExporter: func(sdktrace.SpanExporter) sdktrace.SpanExporter { return keepOnShutdown{spans} },
		Profiling:        Profiling{Enabled: true, ServerAddress: srv.URL, UploadRate: time.Minute, Tags: map[string]string{"env": "test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := otel.Tracer("test").Start(context.Background(), "work")
	labels := map[string]string{}
	pprof.ForLabels(ctx, func(k, v string) bool { labels[k] = v; return true })
	span.End()
	spanID := span.SpanContext().SpanID().String()
	if labels["span_id"] != spanID {
		t.Errorf("pprof labels inside the span: %v, want span_id=%s", labels, spanID)
	}
	// The log exporter has nowhere to send to: its error is expected.
	sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = svc.Shutdown(sctx)

	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans exported, want 1", len(got))
	}
	var profileID string
	for _, a := range got[0].Attributes {
		if a.Key == "pyroscope.profile.id" {
			profileID = a.Value.AsString()
		}
	}
	if profileID != spanID {
		t.Errorf("span attribute pyroscope.profile.id = %q, want its span id %s", profileID, spanID)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Stopping sends at least the CPU profile of the interval cut short.
	if len(rec.names) == 0 {
		t.Fatal("no upload on shutdown")
	}
	for i, name := range rec.names {
		if !strings.HasPrefix(name, "profiled{") || !strings.Contains(name, "env=test") || !strings.Contains(name, "service_version=1.2.3") {
			t.Errorf("upload named %q, want profiled{...env=test...service_version=1.2.3...}", name)
		}
		if rec.sizes[i] == 0 {
			t.Errorf("upload %q without a profile", name)
		}
	}
}

// keepOnShutdown keeps the exported spans past the provider's shutdown,
// which would clear an InMemoryExporter.
type keepOnShutdown struct{ *tracetest.InMemoryExporter }

func (keepOnShutdown) Shutdown(context.Context) error { return nil }

func TestProfilingNeedsAnAddress(t *testing.T) {
	_, err := Start(t.Context(), Config{
		ServiceName: "profiled", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv,
		SelfCheckTimeout: 50 * time.Millisecond, Profiling: Profiling{Enabled: true},
	})
	if err == nil || !strings.Contains(err.Error(), "ServerAddress") {
		t.Fatalf("Start without Profiling.ServerAddress: %v, want an error naming it", err)
	}
}
