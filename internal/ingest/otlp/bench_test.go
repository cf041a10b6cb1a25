package otlp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/ingest"
)

func benchTraces(n int) ptrace.Traces {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("GET /api/items/%d", i%10)
	}
	td := makeTraces(names...)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range spans.Len() {
		a := spans.At(i).Attributes()
		a.PutStr("http.route", "/api/items/{id}")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
	}
	return td
}

func BenchmarkHTTPExportTraces(b *testing.B) {
	discard := ingest.TracesConsumerFunc(func(context.Context, ptrace.Traces) error { return nil })
	for _, enc := range []wireEncoding{encProto, encJSON} {
		b.Run(enc.String(), func(b *testing.B) {
			td := benchTraces(500)
			body := tracesBody(b, td, enc)
			opts := testOptions(&recorder{})
			opts.Traces = discard
			h := NewHTTPHandler(opts)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, PathTraces, bytes.NewReader(body))
				req.Header.Set("Content-Type", contentType(enc))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
			b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

func BenchmarkCheckNestingProto(b *testing.B) {
	body := tracesBody(b, benchTraces(500), encProto)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := checkNesting(body, encProto, tracesRequestSchema, nil); err != nil {
			b.Fatal(err)
		}
	}
}
