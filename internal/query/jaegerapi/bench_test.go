package jaegerapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage/memory"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// BenchmarkHandler times the handler's own share of a trace read and a
// search (conversion to Jaeger's model and the JSON answer) over the
// in-memory store, whose reads cost next to nothing: the part of an API
// answer no store can save. Traces are SpanGen's, 1 to 15 spans each.
func BenchmarkHandler(b *testing.B) {
	st := memory.New()
	b.Cleanup(func() { _ = st.Close() })
	from := time.Now().Add(-time.Hour)
	gen := storagetest.NewSpanGen(1, from)
	var ids []pcommon.TraceID
	for range 20 {
		td := gen.Traces(500)
		if err := st.WriteTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID())
	}
	h := NewHandler(Options{Traces: st, MaxTraceSpans: 4096, MaxTraceBytes: 12 << 20})
	search := "/api/traces?" + url.Values{"service": {"payments"}, "limit": {"20"},
		"start": {strconv.FormatInt(from.Add(-time.Minute).UnixMicro(), 10)}}.Encode()
	for _, c := range []struct {
		name string
		path func(i int) string
	}{
		{"trace by id", func(i int) string { return "/api/traces/" + traceIDString(ids[i%len(ids)]) }},
		{"search limit 20", func(int) string { return search }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var bytes int
			for i := 0; b.Loop(); i++ {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequestWithContext(b.Context(), http.MethodGet, c.path(i), nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%d: %s", rec.Code, rec.Body)
				}
				bytes += rec.Body.Len()
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes/answer")
		})
	}
}
