package otlp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// Rejections name who sent the items, even when validation removed them
// all (and their resource with them).
func TestRejectionSources(t *testing.T) {
	opts := testOptions(&recorder{})
	h := NewHTTPHandler(opts)
	post := func(path string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentTypeProto)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	td := makeTraces("old")
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-30 * 24 * time.Hour)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-30*24*time.Hour + time.Second)))
	post(PathTraces, tracesBody(t, td, encProto))
	post(PathLogs, []byte{0xff})

	for _, tc := range []struct{ signal, reason, want string }{
		{"traces", limits.ReasonTimestampTooOld, "service.name=checkout via 192.0.2.1"},
		{"logs", limits.ReasonUndecodable, "client 192.0.2.1"},
	} {
		got := opts.Ingest.Sources.Recent(tc.signal, tc.reason)
		if len(got) != 1 || got[0].Source != tc.want || got[0].Items != 1 {
			t.Errorf("sources of %s %s = %+v, want %q with 1 item", tc.signal, tc.reason, got, tc.want)
		}
	}
}
