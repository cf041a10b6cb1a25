package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

var built = fstest.MapFS{
	"index.html":              {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc123.js"></script><div id="root"></div>`)},
	"assets/index-abc123.js":  {Data: []byte(strings.Repeat("console.log('vigil');\n", 200))},
	"assets/index-abc123.css": {Data: []byte("body{margin:0}")},
	"favicon.svg":             {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	".keep":                   {Data: nil},
}

func do(t *testing.T, h http.Handler, method, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestServesFilesAndRoutes(t *testing.T) {
	h := New(built)
	for _, tc := range []struct {
		path, want, ctype, cache string
		code                     int
	}{
		{"/", `<div id="root">`, "text/html", "no-cache", 200},
		{"/index.html", `<div id="root">`, "text/html", "no-cache", 200},
		// Client-side routes get index.html, whatever they look like.
		{"/traces/5b8efff798038103d269b633813fc60c", `<div id="root">`, "text/html", "no-cache", 200},
		{"/services/orders.v2?from=now-1h", `<div id="root">`, "text/html", "no-cache", 200},
		{"/logs", `<div id="root">`, "text/html", "no-cache", 200},
		{"/assets/index-abc123.js", "console.log", "text/javascript", "public, max-age=31536000, immutable", 200},
		{"/assets/index-abc123.css", "margin:0", "text/css", "public, max-age=31536000, immutable", 200},
		{"/favicon.svg", "<svg", "image/svg+xml", "no-cache", 200},
		// A missing hashed asset is a 404, never index.html served as script.
		{"/assets/index-old999.js", "no such asset", "text/plain", "no-cache", 404},
		// Dot files are not served; the route falls back to the app.
		{"/.keep", `<div id="root">`, "text/html", "no-cache", 200},
		{"/assets/../index.html", `<div id="root">`, "text/html", "no-cache", 200},
	} {
		resp, body := do(t, h, http.MethodGet, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %.60q, want %d containing %q", tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.ctype)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != tc.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, cc, tc.cache)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
	}
}

func TestCSPForbidsInlineCode(t *testing.T) {
	for _, directive := range []string{"script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, directive) {
			t.Errorf("CSP lacks %q", directive)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %s", ContentSecurityPolicy)
	}
}

func TestConditionalAndCompressed(t *testing.T) {
	h := New(built)
	resp, _ := do(t, h, http.MethodGet, "/assets/index-abc123.js")
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if resp, _ := do(t, h, http.MethodGet, "/assets/index-abc123.js", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}

	resp, body := do(t, h, http.MethodGet, "/assets/index-abc123.js", "Accept-Encoding", "br, gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip not negotiated: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if string(plain) != string(built["assets/index-abc123.js"].Data) {
		t.Error("gzip body does not decode to the file")
	}
	if resp, _ := do(t, h, http.MethodGet, "/assets/index-abc123.js", "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 must not get gzip")
	}
}

func TestMethods(t *testing.T) {
	h := New(built)
	resp, body := do(t, h, http.MethodHead, "/traces/abc")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD = %d %q (Content-Length %q)", resp.StatusCode, body, resp.Header.Get("Content-Length"))
	}
	resp, _ = do(t, h, http.MethodPost, "/")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST = %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestNotBuilt(t *testing.T) {
	h := New(fstest.MapFS{".keep": {}})
	for _, p := range []string{"/", "/traces/abc"} {
		resp, body := do(t, h, http.MethodGet, p)
		if resp.StatusCode != 200 || !strings.Contains(body, "UI not built: run make ui") {
			t.Errorf("GET %s without a build = %d %q", p, resp.StatusCode, body)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s without a build: no CSP", p)
		}
	}
}

// The embedded build, whichever it is (full or only .keep), serves /.
func TestEmbedded(t *testing.T) {
	resp, body := do(t, Handler(), http.MethodGet, "/")
	if resp.StatusCode != 200 || !strings.Contains(body, "<html") && !strings.Contains(body, "<!doctype html>") {
		t.Errorf("GET / = %d %.80q", resp.StatusCode, body)
	}
}

// Alerts' generator URLs open ExploreLink: the app must serve it, and the
// explorer must read the expression back exactly from the query string.
func TestExploreLink(t *testing.T) {
	expr := `sum by (code) (rate(http_requests_total{code=~"5..", path="/a&b"}[5m])) > 0.5`
	link := ExploreLink(expr)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/explore" || u.Query().Get("query") != expr {
		t.Errorf("ExploreLink = %s: path %q, query %q; want /explore with %q", link, u.Path, u.Query().Get("query"), expr)
	}
	if resp, body := do(t, New(built), http.MethodGet, link); resp.StatusCode != http.StatusOK || !strings.Contains(body, `<div id="root">`) {
		t.Errorf("GET %s = %d, want the app", link, resp.StatusCode)
	}
	// The route and its parameter are the app's (web/src).
	for file, want := range map[string]string{
		"../../web/src/App.tsx":                   `path="/explore" component={MetricsExplorer}`,
		"../../web/src/pages/MetricsExplorer.tsx": `q.get('query')`,
	} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), want) {
			t.Errorf("%s no longer has %s: ExploreLink must follow the app", file, want)
		}
	}
}
