package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
	s := New(Options{Gatherer: reg})

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/-/healthy", 200},
		{"/-/ready", 503},
		{"/api/v1/query?query=up", 503},
		{"/metrics", 200},
		{"/", 200},
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
		{"/nope", 404, "no such endpoint"},
		{"/metrics", 200, "vigil_test_total"},
	} {
		resp, body := get(t, s, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("after ready: GET %s = %d %q, want %d containing %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := New(Options{})
	resp, _ := get(t, s, "/")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("missing nosniff")
	}
}
