package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestReadinessGatesAPIs(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_test_total", Help: "x"}))
	s := New(Options{Gatherer: reg, UI: stubUI})

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/-/healthy", 200},
		{"/-/ready", 503},
		{"/api/v1/query?query=up", 503},
		{"/metrics", 200},
		{"/", 200},
		{"/traces/abc", 200}, // the UI is static: it loads while storage opens
		{"/api/logs", 503},
	} {
		if resp, body := get(t, s, tc.path); resp.StatusCode != tc.code {
			t.Errorf("before ready: GET %s = %d (%s), want %d", tc.path, resp.StatusCode, body, tc.code)
		}
	}
	if resp, _ := get(t, s, "/api/v1/query"); resp.Header.Get("Retry-After") == "" {
		t.Error("503 during start-up must carry Retry-After")
	}

	s.Handle("/api/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("api")) }))
	s.SetReady()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/-/ready", 200, "Ready"},
		{"/api/v1/query?query=up", 200, "api"},
		{"/api/nope", 404, "no such endpoint"},
		{"/nope", 200, "ui"},
		{"/metrics", 200, "vigil_test_total"},
	} {
		resp, body := get(t, s, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("after ready: GET %s = %d %q, want %d containing %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}

	s.SetStopping()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/-/ready", 503, "shutting down"},
		{"/-/healthy", 200, "Healthy"},
		{"/api/v1/query?query=up", 200, "api"},
	} {
		resp, body := get(t, s, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("stopping: GET %s = %d %q, want %d containing %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
}

// stubUI stands in for the web UI (internal/ui, tested there).
var stubUI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ui " + r.URL.Path)) })

func TestSecurityHeaders(t *testing.T) {
	s := New(Options{UI: stubUI})
	for _, p := range []string{"/", "/api/nope"} {
		resp, _ := get(t, s, p)
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: missing nosniff or X-Frame-Options: %v", p, resp.Header)
		}
	}
}

// The UI gets GET and HEAD of every path outside the APIs; API paths keep
// their JSON errors, and other methods never reach the UI.
func TestUIRouting(t *testing.T) {
	s := New(Options{UI: stubUI})
	s.SetReady()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/", 200, "ui /"},
		{"GET", "/traces/0af7651916cd43dd8448eb211c80319c", 200, "ui /traces/"},
		{"GET", "/logs?q=timeout", 200, "ui /logs"},
		{"GET", "/assets/index-abc.js", 200, "ui /assets/index-abc.js"},
		{"GET", "/metricsexplorer", 200, "ui /metricsexplorer"},
		{"HEAD", "/services", 200, ""},
		{"GET", "/api", 404, "no such endpoint"},
		{"GET", "/api/unknown", 404, "no such endpoint"},
		{"GET", "/-/unknown", 404, "no such endpoint"},
		{"GET", "/metrics/x", 404, "no such endpoint"},
		{"GET", "/v1/traces", 404, "no such endpoint"},
		// Other systems' APIs, sent to vigil by mistake.
		{"GET", "/loki/api/v1/labels", 404, "no such endpoint: /loki/api/v1/labels; of Loki's API vigil serves the push (POST /loki/api/v1/push), buildinfo and the query routes listed in docs/api.md"},
		{"POST", "/v1/traces", 404, "OTLP/HTTP is received on vigil's OTLP/HTTP address"},
		{"POST", "/loki/api/v1/push", 404, "no such endpoint"},
		{"GET", "/otlp/v1/traces", 404, "no such endpoint"},
		{"GET", "/prometheus/api/v1/query", 404, "no such endpoint"},
		{"GET", "/federate", 404, "no such endpoint"},
		{"GET", "/select/0/prometheus/api/v1/query", 404, "no such endpoint"},
		// The UI's client-side routes keep their page.
		{"GET", "/services/checkout", 200, "ui /services/checkout"},
		{"GET", "/explore", 200, "ui /explore"},
		{"GET", "/silences", 200, "ui /silences"},
		{"GET", "/doctor", 200, "ui /doctor"},
		{"POST", "/traces/abc", 404, "no such endpoint"},
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}

	// Without a UI, every unknown path is an API 404.
	bare := New(Options{})
	bare.SetReady()
	if resp, body := get(t, bare, "/"); resp.StatusCode != 404 || !strings.Contains(body, "no such endpoint") {
		t.Errorf("no UI: GET / = %d %q", resp.StatusCode, body)
	}
}

// A ready check (a clustered node's leader) holds /-/ready at 503 with its
// reason while it fails, and only /-/ready: the APIs keep answering.
func TestReadyCheck(t *testing.T) {
	s := New(Options{UI: stubUI})
	s.Handle("/api/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("api")) }))
	s.SetReady()
	var noLeader atomic.Bool
	noLeader.Store(true)
	s.SetReadyCheck(func() error {
		if noLeader.Load() {
			return errors.New("no cluster leader known")
		}
		return nil
	})
	if resp, body := get(t, s, "/-/ready"); resp.StatusCode != 503 || !strings.Contains(body, "no cluster leader known") {
		t.Errorf("check failing: GET /-/ready = %d %q, want 503 with the reason", resp.StatusCode, body)
	}
	if resp, _ := get(t, s, "/api/v1/query"); resp.StatusCode != 200 {
		t.Errorf("check failing: GET /api/v1/query = %d, want 200", resp.StatusCode)
	}
	noLeader.Store(false)
	if resp, body := get(t, s, "/-/ready"); resp.StatusCode != 200 {
		t.Errorf("check passing: GET /-/ready = %d %q, want 200", resp.StatusCode, body)
	}
}

// An API at the root (HandleRoot) gets what it claims of the paths no
// pattern serves, before the UI; vigil's own API paths and mounted
// patterns never reach it.
func TestHandleRoot(t *testing.T) {
	s := New(Options{UI: stubUI})
	s.Handle("GET /api/logs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("logs")) }))
	s.SetReady()
	// Claims everything not asking for HTML: the path rules are the API's
	// (internal/ingest/elasticsearch tests them); the server's are tested here.
	claims := func(r *http.Request) bool { return !strings.Contains(r.Header.Get("Accept"), "text/html") }
	s.HandleRoot(claims, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("root " + r.URL.Path)) }))
	for _, tc := range []struct {
		method, path, accept string
		code                 int
		body                 string
	}{
		{"GET", "/", "application/json", 200, "root /"},
		{"GET", "/", "text/html,application/xhtml+xml", 200, "ui /"},
		{"POST", "/_bulk", "", 200, "root /_bulk"},
		{"GET", "/logs", "text/html", 200, "ui /logs"},
		{"GET", "/api/logs", "", 200, "logs"},
		{"GET", "/api/other", "", 404, "no such endpoint"},
		{"POST", "/v1/logs", "", 404, "no such endpoint"},
		{"GET", "/metrics/_doc", "", 404, "no such endpoint"},
		{"GET", "/-/_bulk", "", 404, "no such endpoint"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s %s (Accept %q) = %d %q, want %d containing %q", tc.method, tc.path, tc.accept, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}
