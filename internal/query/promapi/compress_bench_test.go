package promapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSmallQuery answers an instant selector of a few series through
// the whole API handler, with gzip accepted as Go's HTTP client sends it:
// the path of the benchmark's "one host's gauges" query, where a new gzip
// writer per answer was most of the cost.
func BenchmarkSmallQuery(b *testing.B) {
	benchQuery(b, q("vigil_test_requests_total", tMid))
}

// BenchmarkLargeQuery answers a range query whose answer is compressed.
func BenchmarkLargeQuery(b *testing.B) {
	benchQuery(b, qr("vigil_test_odd_values", tStart, tEnd, "10"))
}

func benchQuery(b *testing.B, path string) {
	h := newHandler(b, testOptions(b))
	req := httptest.NewRequest(http.MethodGet, PathPrefix+path, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	}
}
