package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCrossOriginProtect(t *testing.T) {
	var reached int
	h := CrossOriginProtect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusOK)
	}))
	const host = "vigil.internal:7070"
	tests := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		want    int
	}{
		// Browsers: the UI itself, and another site's page.
		{"UI creates a silence", "POST", "/api/v2/silences", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + host}, 200},
		{"UI expires a silence", "DELETE", "/api/v2/silence/abc", map[string]string{"Origin": "http://" + host}, 200},
		{"address bar", "POST", "/-/reload", map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"other site, modern browser", "POST", "/api/v2/silences", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403},
		{"sibling subdomain", "POST", "/-/reload", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://grafana.internal:3000"}, 403},
		{"other site, Origin only", "DELETE", "/api/v2/silence/abc", map[string]string{"Origin": "https://evil.example"}, 403},
		{"other port is another origin", "POST", "/-/reload", map[string]string{"Origin": "http://vigil.internal:8080"}, 403},
		{"other site, Referer only", "POST", "/-/reload", map[string]string{"Referer": "https://evil.example/page"}, 403},
		{"same site, Referer only", "POST", "/-/reload", map[string]string{"Referer": "http://" + host + "/alerts"}, 200},
		{"unparsable Referer", "POST", "/-/reload", map[string]string{"Referer": "::not a url"}, 403},
		// Reading is never refused: cross-origin reads are the browser's
		// same-origin policy's business.
		{"other site reads", "GET", "/api/v2/silences", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 200},
		{"other site HEAD", "HEAD", "/-/ready", map[string]string{"Referer": "https://evil.example/"}, 200},
		// Clients that are not browsers send none of these headers.
		{"amtool", "POST", "/api/v2/silences", map[string]string{"Content-Type": "application/json"}, 200},
		{"remote_write", "POST", "/api/v1/write", map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}, 200},
		{"OTLP", "POST", "/v1/traces", map[string]string{"Content-Type": "application/x-protobuf"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached = 0
			r := httptest.NewRequest(tt.method, "http://"+host+tt.path, strings.NewReader("{}"))
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.want == 200]; reached != want {
				t.Errorf("handler reached %d times, want %d", reached, want)
			}
			if tt.want == 403 && !strings.Contains(w.Body.String(), "cross-origin request refused") {
				t.Errorf("body %q", w.Body)
			}
		})
	}
}

// TestCrossOriginProtectGoClients sends what Go HTTP clients (Prometheus's
// remote_write, amtool) send, over a real connection, through a Server.
func TestCrossOriginProtectGoClients(t *testing.T) {
	s := New(Options{})
	var bodies [][]byte
	s.Handle("POST /api/v1/write", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, b)
		w.WriteHeader(http.StatusNoContent)
	}))
	s.SetReady()
	srv := httptest.NewServer(CrossOriginProtect(s))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/api/v1/write", "application/x-protobuf", bytes.NewReader([]byte("payload")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(bodies) != 1 {
		t.Fatalf("remote_write-like POST: %d, %d bodies", resp.StatusCode, len(bodies))
	}

	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/write", bytes.NewReader([]byte("payload")))
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(bodies) != 1 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("cross-origin POST: %d, %d bodies, %q", resp.StatusCode, len(bodies), resp.Header.Get("Content-Type"))
	}
}
