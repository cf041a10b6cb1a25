package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// Elasticsearch's API at the web listener's root: what an agent sends
// there needs ingest whatever the method, what a browser reads there is
// the UI's (read), and the paths of vigil's own routes keep their roles.
func TestClassifyRequest(t *testing.T) {
	for _, tc := range []struct {
		method, path, accept string
		want                 Role
	}{
		{"GET", "/", "", RoleIngest}, // the version check
		{"HEAD", "/", "*/*", RoleIngest},
		{"GET", "/", "application/vnd.elasticsearch+json; compatible-with=8", RoleIngest},
		{"GET", "/", browserAccept, RoleRead}, // the UI
		{"HEAD", "/", "text/html", RoleRead},
		{"POST", "/", browserAccept, RoleIngest}, // answered by Elasticsearch's API (an error): not the UI
		{"POST", "/_bulk", "", RoleIngest},
		{"PUT", "/_bulk", "application/json", RoleIngest},
		{"POST", "/logs-app/_bulk", "", RoleIngest},
		{"POST", "/logs-app/_doc", "", RoleIngest},
		{"PUT", "/logs-app/_create/1", "", RoleIngest},
		{"GET", "/_license", "", RoleIngest},
		{"GET", "/_license", browserAccept, RoleRead},
		{"GET", "/_cluster/health", "", RoleIngest},
		{"PUT", "/_index_template/filebeat", "", RoleIngest},
		{"DELETE", "/_ilm/policy/filebeat", "", RoleIngest},
		{"PUT", "/_data_stream/logs-app-default", "", RoleIngest},
		{"GET", "/services/_doc", browserAccept, RoleRead}, // a UI page
		// vigil's own routes are untouched.
		{"GET", "/-/healthy", "", Open},
		{"GET", "/-/_bulk", "", RoleAdmin},
		{"POST", "/debug/_doc/1", "", RoleAdmin},
		{"POST", "/api/v1/write", "", RoleIngest},
		{"GET", "/api/v1/query", "", RoleRead},
		{"POST", "/api/v2/silences", "", RoleAdmin},
		{"GET", "/metrics", "", RoleRead},
		{"GET", "/logs", "", RoleRead},
		{"PUT", "/logs-app", "", RoleAdmin}, // creating an index: under /elasticsearch only
		{"POST", "/elasticsearch/_bulk", "", RoleIngest},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		if got := ClassifyRequest(req); got != tc.want {
			t.Errorf("ClassifyRequest(%s %s, Accept %q) = %s, want %s", tc.method, tc.path, tc.accept, got, tc.want)
		}
	}
}

func TestWrapElasticsearchRoot(t *testing.T) {
	h := testAuthenticator(t).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tc := range []struct {
		method, path, accept, token string
		want                        int
	}{
		{"GET", "/", "", "tok-ingest", http.StatusTeapot},
		{"GET", "/", "", "tok-read", http.StatusForbidden},
		{"GET", "/", browserAccept, "tok-read", http.StatusTeapot},
		{"GET", "/", browserAccept, "tok-ingest", http.StatusForbidden},
		{"POST", "/_bulk", "", "tok-ingest", http.StatusTeapot},
		{"POST", "/_bulk", "", "tok-read", http.StatusForbidden},
		{"POST", "/_bulk", "", "", http.StatusUnauthorized},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (Accept %q, token %q): %d, want %d", tc.method, tc.path, tc.accept, tc.token, rec.Code, tc.want)
		}
	}
}
