package instrument

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const serverDuration = "http_server_request_duration_seconds"

func newTestMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "item "+r.PathValue("id"))
	})
	mux.HandleFunc("/any/{x}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /hints", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/legacy/", func(w http.ResponseWriter, r *http.Request) {
		SetRoute(r.Context(), "/legacy/{rest}")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})
	return mux
}

// TestHTTPHop sends a request through Transport to a Middleware-wrapped
// ServeMux over a real connection and checks the trace is continued and the
// metrics use the route template.
func TestHTTPHop(t *testing.T) {
	env := newTestEnv(t)
	srv := httptest.NewServer(Middleware(env.m, env.httpOptions())(newTestMux()))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: Transport(srv.Client().Transport, env.m, env.httpOptions())}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/items/42", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "item 42" {
		t.Fatalf("body = %q", body)
	}

	serverSpan := env.sink.waitEnded(trace.SpanKindServer, "GET /items/{id}")
	clientSpan := env.sink.waitEnded(trace.SpanKindClient, "GET")
	if serverSpan.SpanContext().TraceID() != clientSpan.SpanContext().TraceID() {
		t.Errorf("server trace %s != client trace %s", serverSpan.SpanContext().TraceID(), clientSpan.SpanContext().TraceID())
	}
	if got, want := serverSpan.Parent().SpanID(), clientSpan.SpanContext().SpanID(); got != want {
		t.Errorf("server span parent = %s, want client span %s", got, want)
	}
	if !serverSpan.Parent().IsRemote() {
		t.Error("server span parent should be the remote client span")
	}
	if got := attr(serverSpan, "http.route"); got != "/items/{id}" {
		t.Errorf("http.route = %q", got)
	}

	if n := sampleCount(t, env.reg, serverDuration, map[string]string{
		"method": "GET", "route": "/items/{id}", "status_code": "200",
	}); n != 1 {
		t.Errorf("server series count = %d, want 1", n)
	}
	if n := testutil.CollectAndCount(env.m.httpServerDuration); n != 1 {
		t.Errorf("server histogram has %d series, want 1 (no raw path series)", n)
	}
	peer := srv.Listener.Addr().String()
	if n := sampleCount(t, env.reg, "http_client_request_duration_seconds", map[string]string{
		"method": "GET", "peer": peer, "status_code": "200",
	}); n != 1 {
		t.Errorf("client series {peer=%s} count = %d, want 1", peer, n)
	}
	for _, g := range []prometheus.Gauge{env.m.httpServerInFlight, env.m.httpClientInFlight} {
		if v := testutil.ToFloat64(g); v != 0 {
			t.Errorf("in-flight gauge = %v after requests, want 0", v)
		}
	}
}

// TestMiddlewareLabels drives the middleware directly: ServeHTTP returns only
// after the span ended, so no waiting is needed.
func TestMiddlewareLabels(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		opts       func(*HTTPOptions)
		wantLabels map[string]string
		wantSpan   string
	}{
		{
			name: "pattern", method: "GET", path: "/items/7",
			wantLabels: map[string]string{"method": "GET", "route": "/items/{id}", "status_code": "200"},
			wantSpan:   "GET /items/{id}",
		},
		{
			name: "not found", method: "GET", path: "/no/such/path",
			wantLabels: map[string]string{"method": "GET", "route": RouteUnmatched, "status_code": "404"},
			wantSpan:   "GET",
		},
		{
			name: "unknown method on wildcard route", method: "BREW", path: "/any/pot",
			wantLabels: map[string]string{"method": MethodOther, "route": "/any/{x}", "status_code": "202"},
			wantSpan:   "HTTP /any/{x}",
		},
		{
			name: "lowercase method is not standard", method: "get", path: "/any/pot",
			wantLabels: map[string]string{"method": MethodOther, "route": "/any/{x}", "status_code": "202"},
			wantSpan:   "HTTP /any/{x}",
		},
		{
			name: "method not allowed", method: "DELETE", path: "/items/7",
			wantLabels: map[string]string{"method": "DELETE", "route": RouteUnmatched, "status_code": "405"},
			wantSpan:   "DELETE",
		},
		{
			name: "informational status skipped", method: "POST", path: "/hints",
			wantLabels: map[string]string{"method": "POST", "route": "/hints", "status_code": "201"},
			wantSpan:   "POST /hints",
		},
		{
			name: "SetRoute wins", method: "GET", path: "/legacy/a/b/c",
			wantLabels: map[string]string{"method": "GET", "route": "/legacy/{rest}", "status_code": "204"},
			wantSpan:   "GET /legacy/{rest}",
		},
		{
			name: "explicit option route", method: "GET", path: "/items/9",
			opts:       func(o *HTTPOptions) { o.Route = "/v1/items/{id}" },
			wantLabels: map[string]string{"method": "GET", "route": "/v1/items/{id}", "status_code": "200"},
			wantSpan:   "GET /v1/items/{id}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			opts := env.httpOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			h := Middleware(env.m, opts)(newTestMux())
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tt.method, tt.path, nil))

			if n := sampleCount(t, env.reg, serverDuration, tt.wantLabels); n != 1 {
				t.Errorf("series %v count = %d, want 1", tt.wantLabels, n)
			}
			if n := testutil.CollectAndCount(env.m.httpServerDuration); n != 1 {
				t.Errorf("histogram has %d series, want 1", n)
			}
			ended := env.sink.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d ended spans, want 1", len(ended))
			}
			if got := ended[0].Name(); got != tt.wantSpan {
				t.Errorf("span name = %q, want %q", got, tt.wantSpan)
			}
		})
	}
}

func TestMiddlewarePanic(t *testing.T) {
	env := newTestEnv(t)
	h := Middleware(env.m, env.httpOptions())(newTestMux())

	recovered := func() (v any) {
		defer func() { v = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/boom", nil))
		return nil
	}()
	if recovered != "boom" {
		t.Fatalf("recovered %v, want the handler's panic value re-raised", recovered)
	}

	span := findSpan(env.sink.Ended(), trace.SpanKindServer, "GET /boom")
	if span == nil {
		t.Fatalf("server span not ended; ended spans: %d", len(env.sink.Ended()))
	}
	if span.Status().Code != codes.Error {
		t.Errorf("span status = %v, want Error", span.Status())
	}
	if !hasEvent(span, "exception") {
		t.Error("span has no exception event")
	}
	if n := sampleCount(t, env.reg, serverDuration, map[string]string{
		"method": "GET", "route": "/boom", "status_code": "500",
	}); n != 1 {
		t.Errorf("500 series count = %d, want 1", n)
	}
	if v := testutil.ToFloat64(env.m.httpServerInFlight); v != 0 {
		t.Errorf("in-flight = %v after panic, want 0", v)
	}
}

func TestMiddlewareFilter(t *testing.T) {
	env := newTestEnv(t)
	opts := env.httpOptions()
	opts.Filter = func(r *http.Request) bool { return r.URL.Path != "/any/healthz" }
	h := Middleware(env.m, opts)(newTestMux())

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/any/healthz", nil))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("filtered request not served: %d", rec.Code)
	}
	if n := len(env.sink.Ended()); n != 0 {
		t.Errorf("filtered request produced %d spans", n)
	}
	if n := testutil.CollectAndCount(env.m.httpServerDuration); n != 0 {
		t.Errorf("filtered request produced %d series", n)
	}
}

func TestTransportError(t *testing.T) {
	env := newTestEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more: the dial is refused

	client := &http.Client{Transport: Transport(nil, env.m, env.httpOptions())}
	req, _ := http.NewRequestWithContext(t.Context(), "BREW", "http://"+addr+"/", nil)
	if _, err := client.Do(req); err == nil {
		t.Fatal("request to a closed port succeeded")
	}
	if n := sampleCount(t, env.reg, "http_client_request_duration_seconds", map[string]string{
		"method": MethodOther, "peer": addr, "status_code": StatusError,
	}); n != 1 {
		t.Errorf("error series count = %d, want 1", n)
	}
	span := findSpan(env.sink.Ended(), trace.SpanKindClient, "HTTP")
	if span == nil || span.Status().Code != codes.Error {
		t.Errorf("client span missing or not in error: %v", span)
	}
}

func TestPeerOf(t *testing.T) {
	tests := []struct{ url, want string }{
		{"http://svc.internal:8080/x", "svc.internal:8080"},
		{"http://svc.internal/x", "svc.internal:80"},
		{"https://svc.internal/x?q=1", "svc.internal:443"},
		{"https://[::1]/x", "[::1]:443"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := peerOf(&http.Request{URL: u}); got != tt.want {
				t.Errorf("peerOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewMetricsErrors(t *testing.T) {
	if _, err := NewMetrics(nil); !errors.Is(err, ErrNilRegisterer) {
		t.Errorf("NewMetrics(nil) error = %v, want ErrNilRegisterer", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	_, err := NewMetrics(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second NewMetrics error = %v, want wrapped AlreadyRegisteredError", err)
	}
	// A failed registration must not leave half the collectors behind.
	fresh := prometheus.NewRegistry()
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "grpc_client_requests_in_flight", Help: "clash"})
	fresh.MustRegister(clash)
	if _, err := NewMetrics(fresh); err == nil {
		t.Fatal("NewMetrics succeeded despite a clashing collector")
	}
	mfs, _ := fresh.Gather()
	if len(mfs) != 1 {
		t.Errorf("registry holds %d families after failed NewMetrics, want only the clashing one", len(mfs))
	}
}

func TestStatusLabel(t *testing.T) {
	tests := []struct {
		code int
		want string
	}{{200, "200"}, {599, "599"}, {100, "100"}, {600, "600"}, {42, "42"}}
	for _, tt := range tests {
		if got := statusLabel(tt.code); got != tt.want {
			t.Errorf("statusLabel(%d) = %q, want %q", tt.code, got, tt.want)
		}
	}
}

// TestMiddlewareWriterPassthrough checks the writer wrapper keeps the
// optional interfaces handlers rely on and still sees the implicit status.
func TestMiddlewareWriterPassthrough(t *testing.T) {
	tests := []struct {
		name  string
		write func(http.ResponseWriter) error
	}{
		{"ResponseController flush", func(w http.ResponseWriter) error {
			return http.NewResponseController(w).Flush()
		}},
		{"Flusher assertion", func(w http.ResponseWriter) error {
			f, ok := w.(http.Flusher)
			if !ok {
				return errors.New("writer is not an http.Flusher")
			}
			f.Flush()
			return nil
		}},
		{"io.Copy via ReadFrom", func(w http.ResponseWriter) error {
			_, err := io.Copy(w, strings.NewReader("payload"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			var handlerErr error
			h := Middleware(env.m, HTTPOptions{TracerProvider: env.tp, Route: "/stream"})(
				http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { handlerErr = tt.write(w) }))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stream", nil))
			if handlerErr != nil {
				t.Fatal(handlerErr)
			}
			if rec.Code != http.StatusOK {
				t.Errorf("status = %d", rec.Code)
			}
			if n := sampleCount(t, env.reg, serverDuration, map[string]string{
				"method": "GET", "route": "/stream", "status_code": "200",
			}); n != 1 {
				t.Errorf("series count = %d, want 1", n)
			}
		})
	}
}
