package elasticsearch

import (
	"net/http"
	"testing"
)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

func TestRootRequest(t *testing.T) {
	for _, tc := range []struct {
		method, path, accept string
		want                 bool
	}{
		// What agents and clients call at a bare host and port.
		{"GET", "/", "", true},
		{"HEAD", "/", "*/*", true},
		{"GET", "/", "application/json", true},
		{"GET", "/", "application/vnd.elasticsearch+json; compatible-with=8", true},
		{"POST", "/_bulk", "", true},
		{"PUT", "/_bulk", "", true},
		{"POST", "/logs-app/_bulk", "", true},
		{"POST", "/logs-app/_doc", "", true},
		{"PUT", "/logs-app/_doc/1", "", true},
		{"PUT", "/logs-app/_create/1", "", true},
		{"GET", "/_license", "", true},
		{"GET", "/_xpack", "", true},
		{"GET", "/_cluster/health", "", true},
		{"PUT", "/_index_template/filebeat-8.15.0", "", true},
		{"GET", "/_ilm/policy/filebeat", "", true},
		{"PUT", "/_data_stream/logs-generic-default", "", true},
		{"GET", "//_license", "", true}, // as the mux cleans it
		// A browser gets the UI, at the root and at any path of it.
		{"GET", "/", browserAccept, false},
		{"HEAD", "/", "text/html", false},
		{"GET", "/", "TEXT/HTML; charset=utf-8", false},
		{"GET", "/services/_doc", browserAccept, false}, // a service named _doc
		{"GET", "/_license", browserAccept, false},
		{"POST", "/_bulk", browserAccept, true}, // only reads are the UI's
		{"GET", "/", "text/html;q=0, application/json", true},
		// vigil's own paths and the UI's pages are not Elasticsearch's.
		{"GET", "/logs", "", false},
		{"GET", "/services/checkout", "", false},
		{"GET", "/assets/index-abc.js", "", false},
		{"POST", "/api/v1/write", "", false},
		{"GET", "/metrics", "", false},
		{"POST", "/loki/api/v1/push", "", false},
		{"POST", "/internal/alerting/silences", "", false},
		{"PUT", "/logs-app", "", false},          // creating an index: under PathPrefix only
		{"POST", "/logs-app/_bulk/x", "", false}, // no such shape
		{"POST", "/logs-app/_create", "", false},
		{"GET", "/logs-app/_mapping", "", false},
	} {
		h := http.Header{}
		if tc.accept != "" {
			h.Set("Accept", tc.accept)
		}
		if got := RootRequest(tc.method, tc.path, h); got != tc.want {
			t.Errorf("RootRequest(%s %s, Accept %q) = %v, want %v", tc.method, tc.path, tc.accept, got, tc.want)
		}
	}
}
