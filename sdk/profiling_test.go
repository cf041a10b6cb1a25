package vigil

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strconv"
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
	// from and until are each upload's range (ns since the epoch), units
	// its units ("samples" for CPU).
	from, until []int64
	units       []string
}

// profileRange is one upload's range.
type profileRange struct{ from, until time.Time }

func (r profileRange) String() string {
	return r.from.Format(time.StampMilli) + ".." + r.until.Format(time.StampMilli)
}

// cpu returns the ranges of the CPU profiles received so far.
func (r *ingestRecorder) cpu() []profileRange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []profileRange
	for i, u := range r.units {
		if u == "samples" {
			out = append(out, profileRange{time.Unix(0, r.from[i]), time.Unix(0, r.until[i])})
		}
	}
	return out
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
	q := req.URL.Query()
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	until, _ := strconv.ParseInt(q.Get("until"), 10, 64)
	r.names = append(r.names, q.Get("name"))
	r.sizes = append(r.sizes, size)
	r.from = append(r.from, from)
	r.until = append(r.until, until)
	r.units = append(r.units, q.Get("units"))
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

// Profiling forces a collection before a memory profile only when asked:
// a forced collection marks the whole live heap at every upload.
func TestProfilingForcesGCOnlyWhenAsked(t *testing.T) {
	rec := &ingestRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("ForceGC=%v", force), func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			svc, err := Start(t.Context(), Config{
				ServiceName: "gc", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv,
				SelfCheckTimeout: 50 * time.Millisecond,
				Profiling:        Profiling{Enabled: true, ServerAddress: srv.URL, UploadRate: 300 * time.Millisecond, ForceGC: force},
			})
			if err != nil {
				t.Fatal(err)
			}
			// Idle: no collection runs on its own, so each upload would
			// force one.
			time.Sleep(2 * time.Second)
			runtime.ReadMemStats(&after)
			shutdownQuietly(svc)
			forced := after.NumForcedGC - before.NumForcedGC
			if force && forced == 0 {
				t.Error("no collection forced in six uploads with ForceGC")
			}
			if !force && forced != 0 {
				t.Errorf("%d collections forced without ForceGC", forced)
			}
		})
	}
}
