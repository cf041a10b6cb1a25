package otlp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// readSpy records whether a request body was read at all.
type readSpy struct {
	r    *bytes.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) { s.read = true; return s.r.Read(p) }

func TestAdmissionRefusesBeforeReadingTheBody(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	blocking := ingest.TracesConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	im := selfobs.NewIngestMetrics(nil)
	r := newReceiver(Options{Traces: blocking, Ingest: im, MaxConcurrentRequests: 1, Now: func() time.Time { return testNow }})
	h := r.httpHandler()
	body := tracesBody(t, makeTraces("a"), encProto)

	first := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, PathTraces, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentTypeProto)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		first <- w.Code
	}()
	<-entered // the only slot is held

	spy := &readSpy{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, PathTraces, spy)
	req.Header.Set("Content-Type", contentTypeProto)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second request: HTTP %d Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if spy.read {
		t.Error("a refused request's body was read; admission must come first to bound memory")
	}

	// gRPC shares the receiver's slots when built from the same receiver.
	conn, _ := serveGRPC(t, r.grpcServer())
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(makeTraces("a"))); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC while full: %v, want UNAVAILABLE", err)
	}
	if got := testutil.ToFloat64(im.Rejected.WithLabelValues("traces", limits.ReasonOverloaded)); got != 2 {
		t.Errorf("rejected{overloaded} = %v, want 2 (one per refused request)", got)
	}

	close(release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("admitted request: HTTP %d", code)
	}
	// The slot is free again.
	req = httptest.NewRequest(http.MethodPost, PathTraces, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentTypeProto)
	w = httptest.NewRecorder()
	go func() { <-entered }()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("after release: HTTP %d, want 200", w.Code)
	}
}

type pressureFlag struct{ on bool }

func (p *pressureFlag) Pressure() bool { return p.on }

func TestAdmissionRefusesUnderMemoryPressure(t *testing.T) {
	var stored int
	consumer := ingest.TracesConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
		stored += td.SpanCount()
		return nil
	})
	mem := &pressureFlag{on: true}
	im := selfobs.NewIngestMetrics(nil)
	r := newReceiver(Options{Traces: consumer, Ingest: im, Memory: mem, Now: func() time.Time { return testNow }})
	body := tracesBody(t, makeTraces("a"), encProto)
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, PathTraces, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentTypeProto)
		w := httptest.NewRecorder()
		r.httpHandler().ServeHTTP(w, req)
		return w
	}
	if w := post(); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("under memory pressure: HTTP %d Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	conn, _ := serveGRPC(t, r.grpcServer())
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(makeTraces("a"))); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC under memory pressure: %v, want UNAVAILABLE", err)
	}
	if stored != 0 {
		t.Errorf("%d spans stored while refusing", stored)
	}
	mem.on = false
	if w := post(); w.Code != http.StatusOK {
		t.Fatalf("after pressure: HTTP %d, want 200", w.Code)
	}
	if stored == 0 {
		t.Error("nothing stored once pressure was over")
	}
}
