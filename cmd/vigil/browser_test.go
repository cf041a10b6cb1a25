package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/auth"
)

// browserRequest sends one request as a browser would address it: Host and
// Origin as given (Host "" keeps the URL's).
func browserRequest(t *testing.T, method, u, host string, headers map[string]string, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s (headers %v): %v", method, u, headers, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp, string(b)
}

// oddHeaders are request headers with values a library may mis-parse.
var oddHeaders = map[string]string{
	"Origin":            "null",
	"Accept":            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=x, */*;q=",
	"Accept-Encoding":   "gzip;q=abc, br;q=-1, *",
	"Accept-Language":   "\xff",
	"If-None-Match":     "*",
	"If-Modified-Since": "yesterday",
	"Range":             "bytes=-1,0-,99999999999999999999-",
	"Cookie":            "=; ;==",
	"Referer":           "::not a url",
	"X-Forwarded-For":   "not-an-ip, ::1",
	"Content-Type":      "multipart/form-data",
	"Authorization":     "Basic !!!",
}

// TestBrowserOriginEveryRoute sends Origin, allowed by web.cors_origin and
// not, and CORS preflights, to every route the server lists, the endpoints
// behind the API prefixes and OTLP/HTTP: no answer is a crash or a 5xx,
// and every one carries the CORS headers of the one policy (the allowed
// origin echoed, any other origin nothing, whatever the library behind
// the route would have sent).
func TestBrowserOriginEveryRoute(t *testing.T) {
	const grafana, evil = "https://grafana.example", "https://evil.example"
	cfg := writeConfig(t, "web:\n  cors_origin: 'https://grafana\\.example'\n")
	s := startServer(t, t.TempDir(), "--config", cfg, "--enable-admin")
	var listing struct{ Data []string }
	if code := s.getJSON(t, "/-/routes", &listing); code != http.StatusOK || len(listing.Data) < 20 {
		t.Fatalf("GET /-/routes: %d, %d routes", code, len(listing.Data))
	}
	type target struct{ base, method, path string }
	var targets []target
	for _, pattern := range listing.Data {
		if strings.HasPrefix(pattern, "GET /debug/pprof/") && pattern != "GET /debug/pprof/" {
			continue // profiles run for seconds by design; the standard library's handlers
		}
		methods, path := routeRequests(pattern)
		for _, p := range append([]string{path}, fuzzSubroutes[path]...) {
			for _, m := range methods {
				targets = append(targets, target{s.httpURL, m, p})
			}
		}
	}
	for _, p := range []string{"/v1/traces", "/v1/logs", "/v1/metrics", "/v1/unknown"} {
		targets = append(targets, target{s.otlpHTTPURL, http.MethodPost, p}, target{s.otlpHTTPURL, http.MethodGet, p})
	}

	checked := 0
	for _, tg := range targets {
		u := tg.base + tg.path
		what := tg.method + " " + u
		for _, origin := range []string{grafana, evil} {
			resp, body := browserRequest(t, tg.method, u, "", map[string]string{"Origin": origin}, nil)
			retryable := resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
			if resp.StatusCode >= 500 && !retryable {
				t.Errorf("%s from %s: HTTP %d: %.200s", what, origin, resp.StatusCode, body)
			}
			want := map[string]string{grafana: grafana, evil: ""}[origin]
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("%s from %s: Access-Control-Allow-Origin %q, want %q", what, origin, got, want)
			}
			if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s: Access-Control-Allow-Credentials sent", what)
			}

			// The preflight a browser sends first for anything but a
			// simple request.
			pre, body := browserRequest(t, http.MethodOptions, u, "", map[string]string{
				"Origin": origin, "Access-Control-Request-Method": tg.method, "Access-Control-Request-Headers": "authorization",
			}, nil)
			otlpWrite := tg.base == s.otlpHTTPURL && tg.method == http.MethodPost && tg.path != "/v1/unknown"
			allowed := origin == grafana && (auth.ReadOnly(tg.method, tg.path) || otlpWrite)
			wantCode, wantOrigin := http.StatusForbidden, ""
			if allowed {
				wantCode, wantOrigin = http.StatusNoContent, grafana
			}
			if pre.StatusCode != wantCode || pre.Header.Get("Access-Control-Allow-Origin") != wantOrigin {
				t.Errorf("preflight of %s from %s: %d, Allow-Origin %q; want %d, %q (%.200s)",
					what, origin, pre.StatusCode, pre.Header.Get("Access-Control-Allow-Origin"), wantCode, wantOrigin, body)
			}
			checked += 2
		}
		// Other headers that libraries parse on their own (content
		// negotiation, compression, caching, ranges), with odd values.
		resp, body := browserRequest(t, tg.method, u, "", oddHeaders, nil)
		if resp.StatusCode >= 500 && !(resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "") {
			t.Errorf("%s with odd headers: HTTP %d: %.200s", what, resp.StatusCode, body)
		}
		select {
		case err := <-s.done:
			t.Fatalf("vigil exited at %s: %v", what, err)
		default:
		}
	}
	t.Logf("%d route/method pairs, %d requests with Origin", len(targets), checked*2)
	if n := strings.Count(s.logs.String(), "panic"); n > 0 {
		t.Errorf("%d panics in the server's log", n)
	}

	// Grafana in browser mode: a query posted as a form from its origin is
	// answered, and readable by its page.
	resp, body := browserRequest(t, http.MethodPost, s.httpURL+"/api/v1/query", "", map[string]string{
		"Origin": grafana, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded",
	}, []byte("query=1%2B1"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"2"`) || resp.Header.Get("Access-Control-Allow-Origin") != grafana {
		t.Errorf("Grafana's POST query: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// TestDNSRebindingRefused: without authentication, a request addressed to
// a name vigil does not answer to (a page on evil.example whose name was
// made to resolve to 127.0.0.1) is refused on the HTTP and the OTLP/HTTP
// listener, before it can create a silence; loopback names, IP addresses
// and the names in web.allowed_hosts are served.
func TestDNSRebindingRefused(t *testing.T) {
	cfg := writeConfig(t, "web:\n  allowed_hosts: [vigil.example]\n")
	s := startServer(t, t.TempDir(), "--config", cfg)
	port := s.httpURL[strings.LastIndex(s.httpURL, ":")+1:]
	now := time.Now().UTC()
	silence, _ := json.Marshal(map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "Rebound", "isRegex": false}},
		"startsAt": now, "endsAt": now.Add(time.Hour), "createdBy": "evil", "comment": "rebinding",
	})
	evilHost := "evil.example:" + port
	resp, body := browserRequest(t, http.MethodPost, s.httpURL+"/api/v2/silences", evilHost, map[string]string{
		"Origin": "http://" + evilHost, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json",
	}, silence)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "web.allowed_hosts") {
		t.Errorf("silence posted through a rebound name: %d %s, want 403 naming web.allowed_hosts", resp.StatusCode, body)
	}
	var silences []any
	if code := s.getJSON(t, "/api/v2/silences", &silences); code != http.StatusOK || len(silences) != 0 {
		t.Errorf("silences after the refused post: %d %v, want none", code, silences)
	}

	query := "/api/v1/query?query=" + url.QueryEscape("1")
	for _, tc := range []struct {
		host string
		want int
	}{
		{evilHost, http.StatusForbidden},
		{"evil.example", http.StatusForbidden},
		{"localhost:" + port, http.StatusOK},
		{"127.0.0.1:" + port, http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"vigil.example:" + port, http.StatusOK},
	} {
		if resp, body := browserRequest(t, http.MethodGet, s.httpURL+query, tc.host, nil, nil); resp.StatusCode != tc.want {
			t.Errorf("query with Host %s: %d %.200s, want %d", tc.host, resp.StatusCode, body, tc.want)
		}
	}
	otlpPort := s.otlpHTTPURL[strings.LastIndex(s.otlpHTTPURL, ":")+1:]
	for _, tc := range []struct {
		host    string
		refused bool
	}{
		{"evil.example:" + otlpPort, true},
		{"localhost:" + otlpPort, false},
	} {
		resp, body := browserRequest(t, http.MethodPost, s.otlpHTTPURL+"/v1/traces", tc.host,
			map[string]string{"Content-Type": "application/json"}, []byte(`{"resourceSpans":[]}`))
		if refused := resp.StatusCode == http.StatusForbidden; refused != tc.refused {
			t.Errorf("OTLP/HTTP with Host %s: %d %.200s, refused %v, want %v", tc.host, resp.StatusCode, body, refused, tc.refused)
		}
	}
	// The same silence, addressed to vigil's own name, is accepted: the
	// refusal above was the Host check's.
	resp, body = browserRequest(t, http.MethodPost, s.httpURL+"/api/v2/silences", "localhost:"+port, map[string]string{
		"Origin": "http://localhost:" + port, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json",
	}, silence)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("silence from vigil's own origin: %d %s", resp.StatusCode, body)
	}
}

// TestUnknownAPIPathsAnswerJSON404: a client of another API (Loki's tail,
// which vigil does not serve, here) pointed at vigil gets a JSON 404, not
// the UI's page with 200; the UI's own routes still get the page.
func TestUnknownAPIPathsAnswerJSON404(t *testing.T) {
	s := startServer(t, t.TempDir())
	for _, p := range []string{"/loki/api/v1/tail", "/api/v1/no_such_endpoint", "/api/no_such_api", "/otlp/v1/traces"} {
		resp, body := browserRequest(t, http.MethodGet, s.httpURL+p, "", nil, nil)
		var e struct{ Status, Error string }
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal([]byte(body), &e) != nil || e.Status != "error" {
			t.Errorf("GET %s: %d %s %.200q, want a JSON 404", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	resp, _ := browserRequest(t, http.MethodGet, s.httpURL+"/services/checkout", "", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("UI route: %d %s, want the page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
