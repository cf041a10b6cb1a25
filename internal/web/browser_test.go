package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestAllowedHost(t *testing.T) {
	b, err := NewBrowsers(BrowserOptions{CheckHost: true, AllowedHosts: []string{"vigil.example.com", ".corp.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	hostname, _ := os.Hostname()
	for _, tc := range []struct {
		listen, host string
		want         bool
	}{
		{"localhost:7070", "localhost:7070", true},
		{"localhost:7070", "LOCALHOST.:7070", true},
		{"localhost:7070", "app.localhost:7070", true},
		{"localhost:7070", "127.0.0.1:7070", true},
		{"localhost:7070", "[::1]:7070", true},
		{"0.0.0.0:7070", "192.168.1.20:7070", true},
		{"localhost:7070", "", true}, // HTTP/1.0
		{"vigil-box:7070", "vigil-box:7070", true},
		{"localhost:7070", hostname + ":7070", true},
		{"localhost:7070", "vigil.example.com:7070", true},
		{"localhost:7070", "corp.internal", true},
		{"localhost:7070", "a.b.corp.internal:7070", true},
		// DNS rebinding: names that resolve to vigil only because someone
		// made them.
		{"localhost:7070", "evil.example:7070", false},
		{"localhost:7070", "localhost.evil.example:7070", false},
		{"localhost:7070", "evilcorp.internal:7070", false},
		{"localhost:7070", "vigil.example.com.evil.example", false},
		{"0.0.0.0:4318", "rebind.network:4318", false},
	} {
		if got := b.AllowedHost(tc.listen, tc.host); got != tc.want {
			t.Errorf("AllowedHost(%q, %q) = %v, want %v", tc.listen, tc.host, got, tc.want)
		}
	}

	off, _ := NewBrowsers(BrowserOptions{CheckHost: false})
	anyHost, _ := NewBrowsers(BrowserOptions{CheckHost: true, AllowedHosts: []string{"*"}})
	if !off.AllowedHost("localhost:7070", "evil.example") || !anyHost.AllowedHost("localhost:7070", "evil.example") {
		t.Error("the check off, or allowed_hosts [*], must allow any name")
	}
}

func TestBrowserOptionsValidation(t *testing.T) {
	for _, o := range []BrowserOptions{
		{CORSOrigin: "https://(grafana"},
		{AllowedHosts: []string{"http://vigil.example.com"}},
		{AllowedHosts: []string{"vigil.example.com:7070"}},
		{AllowedHosts: []string{""}},
		{AllowedHosts: []string{"*.example.com"}},
	} {
		if _, err := NewBrowsers(o); err == nil {
			t.Errorf("NewBrowsers(%+v) accepted", o)
		}
	}
}

func TestHostCheckAnswer(t *testing.T) {
	b, _ := NewBrowsers(BrowserOptions{CheckHost: true})
	reached := false
	h := b.Wrap("localhost:7070", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	r := httptest.NewRequest(http.MethodPost, "http://evil.example:7070/api/v2/silences", strings.NewReader("{}"))
	r.Header.Set("Origin", "http://evil.example:7070")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || reached || !strings.Contains(w.Body.String(), "web.allowed_hosts") {
		t.Errorf("rebound request: %d %s (reached %v), want 403 naming web.allowed_hosts", w.Code, w.Body, reached)
	}
}

// alertmanagerLike sets CORS headers of its own, as the Alertmanager API
// does (every origin), to check that the policy replaces them.
var alertmanagerLike = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	w.Header().Set("Content-Type", "application/json")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	_, _ = w.Write([]byte("{}"))
})

// A handler that writes nothing still gets the policy's headers, not its own.
func TestCORSPolicyEmptyAnswer(t *testing.T) {
	b, _ := NewBrowsers(BrowserOptions{})
	h := b.Wrap("localhost:7070", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
	}))
	r := httptest.NewRequest(http.MethodGet, "http://localhost:7070/api/v2/status", nil)
	r.Header.Set("Origin", "https://evil.example")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Result().Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin %q leaked from a handler that wrote nothing", got)
	}
}

func TestCORSPolicy(t *testing.T) {
	const grafana = "https://grafana.example.com"
	b, err := NewBrowsers(BrowserOptions{CORSOrigin: `https://grafana\.example\.com`, CheckHost: true, ReadOnly: queriesRead})
	if err != nil {
		t.Fatal(err)
	}
	none, _ := NewBrowsers(BrowserOptions{CheckHost: true})
	for _, tc := range []struct {
		name      string
		b         *Browsers
		method    string
		path      string
		headers   map[string]string
		code      int
		allowOrig string // the Access-Control-Allow-Origin wanted; "" none
	}{
		{"allowed origin reads", b, "GET", "/api/v2/alerts", map[string]string{"Origin": grafana}, 200, grafana},
		{"origin outside the expression", b, "GET", "/api/v2/alerts", map[string]string{"Origin": "https://evil.example"}, 200, ""},
		{"anchored: no prefix match", b, "GET", "/api/v2/alerts", map[string]string{"Origin": grafana + ".evil.example"}, 200, ""},
		{"default allows no origin", none, "GET", "/api/v2/alerts", map[string]string{"Origin": grafana}, 200, ""},
		{"no Origin, no CORS", b, "GET", "/api/v2/alerts", nil, 200, "*"}, // not a cross-origin request: left as the handler answers
		{"preflight, allowed", b, "OPTIONS", "/api/v1/query", map[string]string{"Origin": grafana, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, x-grafana-org-id"}, 204, grafana},
		{"preflight from a public page to a private address", b, "OPTIONS", "/api/v1/query", map[string]string{"Origin": grafana, "Access-Control-Request-Method": "GET", "Access-Control-Request-Private-Network": "true"}, 204, grafana},
		{"preflight, other origin", b, "OPTIONS", "/api/v1/query", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, 403, ""},
		{"preflight, default", none, "OPTIONS", "/api/v1/query", map[string]string{"Origin": grafana, "Access-Control-Request-Method": "GET"}, 403, ""},
		{"preflight for a write", b, "OPTIONS", "/api/v2/silences", map[string]string{"Origin": grafana, "Access-Control-Request-Method": "DELETE"}, 403, ""},
		{"preflight for OTLP from a web page", b, "OPTIONS", "/v1/traces", map[string]string{"Origin": grafana, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, 204, grafana},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://localhost:7070"+tc.path, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			tc.b.Wrap("localhost:7070", alertmanagerLike).ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != tc.allowOrig {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.allowOrig)
			}
			if tc.allowOrig == "" && w.Header().Get("Access-Control-Allow-Methods") != "" {
				t.Errorf("the handler's own CORS headers leaked: %v", w.Header())
			}
			if w.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Error("never Allow-Credentials: a page elsewhere must not borrow a browser's stored login")
			}
			if got, want := w.Header().Get("Access-Control-Allow-Private-Network"), map[bool]string{true: "true"}[tc.headers["Access-Control-Request-Private-Network"] != "" && tc.code == 204]; got != want {
				t.Errorf("Allow-Private-Network %q, want %q", got, want)
			}
			if tc.code == 204 && w.Header().Get("Access-Control-Allow-Headers") != tc.headers["Access-Control-Request-Headers"] {
				t.Errorf("Allow-Headers %q", w.Header().Get("Access-Control-Allow-Headers"))
			}
		})
	}
}

// queriesRead stands for auth.Classify's read class: safe methods and the
// Prometheus API's POST queries.
func queriesRead(method, path string) bool {
	return safeMethod(method) || method == http.MethodPost && path == "/api/v1/query"
}

// A page of an allowed origin may post queries (Grafana in browser mode
// does), but not change state.
func TestTrustedOriginReadsOnly(t *testing.T) {
	b, _ := NewBrowsers(BrowserOptions{CORSOrigin: `https://grafana\.example\.com`, ReadOnly: queriesRead})
	h := b.CrossOriginProtect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tc := range []struct {
		origin, path string
		want         int
	}{
		{"https://grafana.example.com", "/api/v1/query", 200},
		{"https://grafana.example.com", "/api/v2/silences", 403},
		{"https://evil.example", "/api/v1/query", 403},
	} {
		r := httptest.NewRequest(http.MethodPost, "http://localhost:7070"+tc.path, nil)
		r.Header.Set("Origin", tc.origin)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("POST %s from %s: %d, want %d", tc.path, tc.origin, w.Code, tc.want)
		}
	}
}
