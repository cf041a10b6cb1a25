package vigil

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestRequestColouring: an X-Gray request keeps its colour on the server
// span, the spans below it, its log records and the calls it makes, and
// keeps its route.
func TestRequestColouring(t *testing.T) {
	var mu sync.Mutex
	var downstreamBaggage []string
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		downstreamBaggage = append(downstreamBaggage, r.Header.Get("Baggage"))
		mu.Unlock()
	}))
	defer down.Close()

	spans := tracetest.NewInMemoryExporter()
	var logs syncBuffer
	svc, err := Start(t.Context(), Config{
		ServiceName: "gray-test", Endpoint: "127.0.0.1:1", LogOutput: &logs, getenv: noEnv,
		WrapSpanExporter: func(sdktrace.SpanExporter) sdktrace.SpanExporter { return spans },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_ = svc.Shutdown(ctx)
	}()
	client := svc.HTTPClient()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		svc.Logger.InfoContext(r.Context(), "handling")
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, down.URL, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	srv := httptest.NewServer(svc.Middleware(mux))
	defer srv.Close()

	for _, gray := range []string{"canary", ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/orders/7", nil)
		req.Header.Set("Baggage", "tenant=acme")
		if gray != "" {
			req.Header.Set(GrayHeader, gray)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := svc.TracerProvider.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}

	byTrace := map[string][]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byTrace[s.SpanContext.TraceID().String()] = append(byTrace[s.SpanContext.TraceID().String()], s)
	}
	if len(byTrace) != 2 {
		t.Fatalf("got %d traces, want 2", len(byTrace))
	}
	canaryTraces := 0
	for _, ss := range byTrace {
		var colours []string
		var names []string
		for _, s := range ss {
			set := attribute.NewSet(s.Attributes...)
			v, _ := set.Value("vigil.gray")
			colours = append(colours, v.AsString())
			names = append(names, s.Name)
		}
		if !strings.Contains(strings.Join(names, ","), "GET /orders/{id}") {
			t.Errorf("spans %v: the server span lost its route", names)
		}
		if len(ss) != 2 {
			t.Errorf("spans %v, want the server and the client span", names)
		}
		if colours[0] != colours[1] || (colours[0] != "canary" && colours[0] != "") {
			t.Errorf("spans %v are coloured %q, want all alike", names, colours)
		}
		if colours[0] == "canary" {
			canaryTraces++
		}
	}
	if canaryTraces != 1 {
		t.Errorf("%d traces coloured canary, want 1", canaryTraces)
	}

	mu.Lock()
	defer mu.Unlock()
	var coloured, plain int
	for _, b := range downstreamBaggage {
		if !strings.Contains(b, "tenant=acme") {
			t.Errorf("downstream baggage %q lost the caller's member", b)
		}
		if strings.Contains(b, "vigil.gray=canary") {
			coloured++
		} else {
			plain++
		}
	}
	if coloured != 1 || plain != 1 {
		t.Errorf("downstream baggage %q: want one coloured call and one not", downstreamBaggage)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var grayLines int
	for _, l := range lines {
		if strings.Contains(l, `"handling"`) && strings.Contains(l, `"vigil.gray":"canary"`) {
			grayLines++
		}
	}
	if grayLines != 1 {
		t.Errorf("want one log record coloured canary, got %d in:\n%s", grayLines, logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
