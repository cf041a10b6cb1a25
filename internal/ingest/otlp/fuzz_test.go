package otlp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// The fuzz targets drive every decoder path (signal x encoding) through the
// HTTP handler, including the repair fallback and validation, and require
// an answer the protocol allows for arbitrary input: never a panic, never a
// 5xx (the consumer accepts everything).

func fuzzHandler() http.Handler {
	return NewHTTPHandler(Options{
		Traces:  ingest.TracesConsumerFunc(func(context.Context, ptrace.Traces) error { return nil }),
		Logs:    ingest.LogsConsumerFunc(func(context.Context, plog.Logs) error { return nil }),
		Metrics: ingest.MetricsConsumerFunc(func(context.Context, pmetric.Metrics) error { return nil }),
		Limits:  limits.Limits{MaxRequestBytes: 256 << 10, MaxAttributeValueLength: 64, MaxAttributesPerItem: 8},
		Now:     func() time.Time { return testNow },
	})
}

func fuzzExport(f *testing.F, path string, enc wireEncoding, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	h := fuzzHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType(enc))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %d-byte body: %q", w.Code, len(body), w.Body.Bytes())
		}
	})
}

func fixture(f *testing.F, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func richTraces() ptrace.Traces {
	td := makeTraces("a", "b")
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	ev := sp.Events().AppendEmpty()
	ev.SetName("ev")
	ev.Attributes().PutEmptySlice("list").AppendEmpty().SetStr("x")
	ln := sp.Links().AppendEmpty()
	ln.SetTraceID(testTraceID)
	ln.SetSpanID(testSpanID)
	sp.Status().SetMessage("err")
	return td
}

func FuzzHTTPTracesProto(f *testing.F) {
	fuzzExport(f, PathTraces, encProto,
		tracesBody(f, richTraces(), encProto),
		badIDTracesProto(f),
		[]byte{})
}

func FuzzHTTPTracesJSON(f *testing.F) {
	fuzzExport(f, PathTraces, encJSON,
		tracesBody(f, richTraces(), encJSON),
		fixture(f, "traces_bad_ids.json"),
		[]byte(`{}`))
}

func FuzzHTTPLogsProto(f *testing.F) {
	ld := makeLogs("a", "b")
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().SetEmptyMap().PutStr("k", "v")
	fuzzExport(f, PathLogs, encProto,
		logsBody(f, ld, encProto),
		badIDLogsProto(f),
		deepLogsProto(20))
}

func FuzzHTTPLogsJSON(f *testing.F) {
	fuzzExport(f, PathLogs, encJSON,
		logsBody(f, makeLogs("a", "b"), encJSON),
		fixture(f, "logs_bad_ids.json"),
		deepLogsJSON(20))
}

func richMetrics() pmetric.Metrics {
	md := makeMetrics(2)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	h := ms.AppendEmpty()
	h.SetName("latency")
	dp := h.SetEmptyHistogram().DataPoints().AppendEmpty()
	dp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	dp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	ex := dp.Exemplars().AppendEmpty()
	ex.SetTraceID(testTraceID)
	ex.SetSpanID(testSpanID)
	ex.SetDoubleValue(0.5)
	s := ms.AppendEmpty()
	s.SetName("requests")
	s.SetEmptySum().DataPoints().AppendEmpty().SetIntValue(7)
	return md
}

func FuzzHTTPMetricsProto(f *testing.F) {
	fuzzExport(f, PathMetrics, encProto, metricsBody(f, richMetrics(), encProto))
}

func FuzzHTTPMetricsJSON(f *testing.F) {
	fuzzExport(f, PathMetrics, encJSON, metricsBody(f, richMetrics(), encJSON))
}
