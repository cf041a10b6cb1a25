package otlp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// emptyEntries is a request of n empty top-level entries (ResourceSpans,
// ResourceLogs or ResourceMetrics): two bytes each in protobuf, three in
// JSON, and a hundred-odd bytes each once decoded.
func emptyEntries(enc wireEncoding, jsonField string, n int) []byte {
	if enc == encJSON {
		return []byte(`{"` + jsonField + `":[` + strings.Repeat(`{},`, n-1) + `{}]}`)
	}
	return bytes.Repeat([]byte{0x0a, 0x00}, n)
}

// TestDecodeAmplificationRefused sends small gzipped bodies that decode to
// hundreds of megabytes: each is refused with 413 before decoding, named
// in the answer and counted, and nothing reaches the consumer.
func TestDecodeAmplificationRefused(t *testing.T) {
	signals := []struct {
		path, jsonField, signal string
	}{
		{PathTraces, "resourceSpans", "traces"},
		{PathLogs, "resourceLogs", "logs"},
		{PathMetrics, "resourceMetrics", "metrics"},
	}
	for _, sig := range signals {
		for _, enc := range []wireEncoding{encProto, encJSON} {
			t.Run(sig.signal+" "+enc.String(), func(t *testing.T) {
				rec := &recorder{}
				opts := testOptions(rec)
				opts.Limits.MaxRequestBytes = 8 << 20
				opts.DecodeBudget = decodecost.NewBudget(64 << 20)
				h := NewHTTPHandler(opts)
				body := gzipped(t, emptyEntries(enc, sig.jsonField, 1_000_000))
				req := httptest.NewRequest(http.MethodPost, sig.path, bytes.NewReader(body))
				req.Header.Set("Content-Type", contentType(enc))
				req.Header.Set("Content-Encoding", "gzip")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusRequestEntityTooLarge {
					t.Fatalf("%d-byte gzip body of empty entries: HTTP %d, want 413", len(body), w.Code)
				}
				if msg := decodeStatus(t, enc, w.Body.Bytes()).GetMessage(); !strings.Contains(msg, "decode") {
					t.Errorf("message %q does not say the decoded size is the problem", msg)
				}
				if got := testutil.ToFloat64(opts.Ingest.Rejected.WithLabelValues(sig.signal, limits.ReasonRequestTooLarge)); got != 1 {
					t.Errorf("rejected{request_too_large} = %v, want 1", got)
				}
				if len(rec.traces)+len(rec.logs)+len(rec.metrics) != 0 {
					t.Error("the request reached the consumer")
				}
			})
		}
	}
}

// TestDecodeBudgetSharedAndRetryable: a request that fits the budget but
// not what is left of it now is refused as overloaded (429, retryable),
// and admitted once the budget is free.
func TestDecodeBudgetSharedAndRetryable(t *testing.T) {
	rec := &recorder{}
	opts := testOptions(rec)
	budget := decodecost.NewBudget(8 << 20)
	opts.DecodeBudget = budget
	h := NewHTTPHandler(opts)
	body := tracesBody(t, makeTraces("a", "b"), encProto)
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, PathTraces, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentTypeProto)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	// Another receiver sharing the budget is decoding a large request.
	held, err := budget.Reserve(budget.Size())
	if err != nil {
		t.Fatal(err)
	}
	if w := post(); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("while the budget is taken: HTTP %d Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	held()
	if w := post(); w.Code != http.StatusOK {
		t.Errorf("once the budget is free: HTTP %d, want 200", w.Code)
	}
	if got := rec.spanNames(); len(got) != 2 {
		t.Errorf("stored spans %q, want the two of the admitted request", got)
	}
	// The admitted request gave its share back.
	if release, err := budget.Reserve(budget.Size()); err != nil {
		t.Errorf("budget not returned after the request: %v", err)
	} else {
		release()
	}
}

// TestBodyChargedWhileRead: a body is paid for as it is read, so one that
// does not fit in what is left of the budget is refused (429) before it is
// all in memory.
func TestBodyChargedWhileRead(t *testing.T) {
	rec := &recorder{}
	opts := testOptions(rec)
	opts.Limits.MaxRequestBytes = 16 << 20
	budget := decodecost.NewBudget(8 << 20)
	opts.DecodeBudget = budget
	held, err := budget.Reserve(6 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	body := bytes.Repeat([]byte{0x0a, 0x00}, 4<<20) // 8 MiB
	spy := &countingBody{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, PathTraces, spy)
	req.Header.Set("Content-Type", contentTypeProto)
	w := httptest.NewRecorder()
	NewHTTPHandler(opts).ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests {
		t.Errorf("HTTP %d, want 429", w.Code)
	}
	if spy.n > 3<<20 {
		t.Errorf("read %d bytes of an 8 MiB body with 2 MiB of budget left", spy.n)
	}
}

type countingBody struct {
	r *bytes.Reader
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestPackedBucketsCharged: an exponential histogram's bucket counts are
// packed varints, a byte each on the wire and eight decoded; a body of
// millions of them is refused before decoding.
func TestPackedBucketsCharged(t *testing.T) {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("latency")
	dp := m.SetEmptyExponentialHistogram().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	dp.Positive().BucketCounts().FromRaw(make([]uint64, 4<<20))
	body := metricsBody(t, md, encProto)

	rec := &recorder{}
	opts := testOptions(rec)
	opts.Limits.MaxRequestBytes = 16 << 20
	opts.DecodeBudget = decodecost.NewBudget(24 << 20)
	req := httptest.NewRequest(http.MethodPost, PathMetrics, bytes.NewReader(gzipped(t, body)))
	req.Header.Set("Content-Type", contentTypeProto)
	req.Header.Set("Content-Encoding", "gzip")
	w := httptest.NewRecorder()
	NewHTTPHandler(opts).ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d MiB of bucket counts (%d MiB decoded): HTTP %d, want 413", len(body)>>20, 8*len(body)>>20, w.Code)
	}
	if len(rec.metrics) != 0 {
		t.Error("the request reached the consumer")
	}
}
