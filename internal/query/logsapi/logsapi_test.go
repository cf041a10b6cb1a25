package logsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

// fixtureNow is "now" for tests of the default range: 10:40 is in its
// future, 09:00 more than an hour in its past.
var fixtureNow = time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)

func newStore(t *testing.T) *memory.Store {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "logs.otlp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(raw)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	if err := st.WriteLogs(t.Context(), ld); err != nil {
		t.Fatal(err)
	}
	return st
}

func newHandler(logs LogFinder) http.Handler {
	return NewHandler(Options{Logs: logs, Now: func() time.Time { return fixtureNow }})
}

func get(t *testing.T, h http.Handler, query string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/logs?"+query, nil))
	return rec
}

func TestFindLogsGolden(t *testing.T) {
	rec := get(t, newHandler(newStore(t)), "start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	compareGolden(t, "logs.golden.json", rec.Body.Bytes())
}

func compareGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	goldentest.CompareJSON(t, name, body)
}

type decoded struct {
	Data []struct {
		Timestamp  string         `json:"timestamp"`
		Severity   string         `json:"severity"`
		Body       string         `json:"body"`
		Service    string         `json:"service"`
		TraceID    string         `json:"trace_id"`
		SpanID     string         `json:"span_id"`
		Attributes map[string]any `json:"attributes"`
	} `json:"data"`
}

func bodies(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var d decoded
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Data == nil {
		t.Fatalf("data must be an array, never null: %s", rec.Body)
	}
	out := []string{}
	for _, r := range d.Data {
		out = append(out, r.Body)
	}
	return out
}

func TestFindLogsFilters(t *testing.T) {
	const (
		received = "order 991 received"
		failed   = "Payment FAILED for order 991"
		old      = "old warning"
		stock    = `{"left":0,"sku":991}`
		done     = "stock check done"
		ahead    = "record from a clock running ahead"
	)
	day := "&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z"
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"whole day, newest first", day, []string{ahead, done, stock, failed, received, old}},
		{"default range is the last hour, open-ended", "", []string{ahead, done, stock, failed, received}},
		{"end alone reaches an hour back", "end=2024-01-15T09:59:00Z", []string{old}},
		{"start alone is open-ended", "start=2024-01-15T10:10:00Z", []string{ahead, done, stock}},
		{"start inclusive, end exclusive", "start=2024-01-15T10:05:00Z&end=2024-01-15T10:20:00Z", []string{stock, failed}},
		{"unix seconds", "start=1705313100&end=1705314000", []string{stock, failed}},
		{"fractional unix seconds", "start=1705312800.123456789&end=1705312800.12345679", []string{received}},
		{"fractional seconds exclude earlier", "start=1705312800.12345679" + "&end=1705313000", []string{}},
		{"unix milliseconds", "start=1705313100000&end=1705314000000", []string{stock, failed}},
		{"RFC 3339 with offset", "start=2024-01-15T11:05:00%2B01:00&end=2024-01-15T11:20:00%2B01:00", []string{stock, failed}},
		{"trace id", "trace_id=5b8efff798038103d269b633813fc60c" + day, []string{failed, received}},
		{"short trace id, upper case", "trace_id=D269B633813FC60C" + day, []string{}},
		{"service", "service=inventory" + day, []string{ahead, done, stock}},
		{"unknown service", "service=nope" + day, []string{}},
		{"text, case-insensitive", "q=failed" + day, []string{failed}},
		{"text in JSON body", "q=SKU" + day, []string{stock}},
		{"filters combine", "service=checkout&q=991" + day, []string{failed, received}},
		{"limit keeps the newest", "limit=2" + day, []string{ahead, done}},
		{"limit max", "limit=1000" + day, []string{ahead, done, stock, failed, received, old}},
	}
	h := newHandler(newStore(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bodies(t, get(t, h, tt.query)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestFindLogsRecordShape(t *testing.T) {
	rec := get(t, newHandler(newStore(t)), "start=1705300000&end=1705400000")
	var d decoded
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	byBody := map[string]int{}
	for i, r := range d.Data {
		byBody[r.Body] = i
	}
	r := d.Data[byBody["order 991 received"]]
	if r.Timestamp != "2024-01-15T10:00:00.123456789Z" || r.Severity != "Information" || r.Service != "checkout" ||
		r.TraceID != "5b8efff798038103d269b633813fc60c" || r.SpanID != "eee19b7ec3c1b174" {
		t.Errorf("record = %+v", r)
	}
	wantAttrs := map[string]any{
		"order.id": float64(991), "amount": 12.5, "vip": true, "tags": []any{"a", float64(2)},
		"customer": map[string]any{"id": "c-7"}, "raw": "AQID",
	}
	if fmt.Sprint(r.Attributes) != fmt.Sprint(wantAttrs) {
		t.Errorf("attributes = %v, want %v", r.Attributes, wantAttrs)
	}
	for body, want := range map[string]string{
		"Payment FAILED for order 991":      "ERROR",
		"old warning":                       "WARN",
		`{"left":0,"sku":991}`:              "DEBUG2",
		"stock check done":                  "",
		"record from a clock running ahead": "CRIT",
	} {
		if got := d.Data[byBody[body]].Severity; got != want {
			t.Errorf("severity of %q = %q, want %q", body, got, want)
		}
	}
	noTime := d.Data[byBody[`{"left":0,"sku":991}`]]
	if noTime.Timestamp != "2024-01-15T10:10:00Z" || noTime.TraceID != "" || noTime.SpanID != "" || noTime.Attributes == nil {
		t.Errorf("record without time, ids or attributes = %+v", noTime)
	}
}

// logFinderFunc lets a test script what storage yields.
type logFinderFunc func(context.Context, storage.LogQuery) iter.Seq2[storage.LogRecord, error]

func (f logFinderFunc) FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
	return f(ctx, q)
}

// LogHistogram fails with the error the first FindLogs result carries, so
// the storage-failure cases cover both endpoints.
func (f logFinderFunc) LogHistogram(ctx context.Context, q storage.LogQuery, _ time.Duration) ([]storage.LogBucket, error) {
	for _, err := range f(ctx, q) {
		return nil, err
	}
	return nil, nil
}

// yielding returns a finder that yields n records and then err, if any.
func yielding(n int, err error) LogFinder {
	return logFinderFunc(func(context.Context, storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
		return func(yield func(storage.LogRecord, error) bool) {
			for i := range n {
				if !yield(storage.LogRecord{Body: fmt.Sprint(i), Timestamp: fixtureNow}, nil) {
					return
				}
			}
			if err != nil {
				yield(storage.LogRecord{}, err)
			}
		}
	})
}

func TestWrongMethod(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler(newStore(t)).ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/logs", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Body.String() != `{"error":"method not allowed; use GET"}`+"\n" ||
		rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("status %d, Allow %q, body %s", rec.Code, rec.Header().Get("Allow"), rec.Body)
	}
}

func TestFindLogsErrors(t *testing.T) {
	store := newStore(t)
	tests := []struct {
		name       string
		logs       LogFinder
		query      string
		wantCode   int
		wantMsg    string
		notInBody  string
		retryAfter bool
	}{
		{name: "limit zero", logs: store, query: "limit=0", wantCode: 400, wantMsg: "at least 1"},
		{name: "limit negative", logs: store, query: "limit=-5", wantCode: 400, wantMsg: "at least 1"},
		{name: "limit too large", logs: store, query: "limit=1001", wantCode: 400, wantMsg: "at most 1000"},
		{name: "limit not a number", logs: store, query: "limit=ten", wantCode: 400, wantMsg: "not an integer"},
		{name: "bad start", logs: store, query: "start=yesterday", wantCode: 400, wantMsg: "invalid start"},
		{name: "bad end", logs: store, query: "end=2024-13-01T00:00:00Z", wantCode: 400, wantMsg: "invalid end"},
		{name: "start after end", logs: store, query: "start=1705314000&end=1705313000", wantCode: 400, wantMsg: "must be before end"},
		{name: "start equals end", logs: store, query: "start=1705314000&end=1705314000", wantCode: 400, wantMsg: "must be before end"},
		{name: "start after default end", logs: store, query: "end=1705314000&start=1705400000", wantCode: 400, wantMsg: "must be before end"},
		{name: "bad trace id", logs: store, query: "trace_id=not-hex", wantCode: 400, wantMsg: "invalid trace_id"},
		{name: "zero trace id", logs: store, query: "trace_id=000", wantCode: 400, wantMsg: "all zeros"},
		{name: "long trace id", logs: store, query: "trace_id=" + strings.Repeat("a", 33), wantCode: 400, wantMsg: "longer than 32"},
		{name: "too many attribute filters", logs: store, query: manyAttrs(65), wantCode: 400, wantMsg: "at most 64"},
		{name: "repeated parameter", logs: store, query: "service=a&service=b", wantCode: 400, wantMsg: `"service" given 2 times`},
		{
			name: "storage unavailable", logs: yielding(0, fmt.Errorf("duckdb /var/lib/vigil/logs.db: %w", storage.ErrUnavailable)),
			wantCode: 503, wantMsg: "retry later", notInBody: "/var/lib", retryAfter: true,
		},
		{name: "storage closed", logs: yielding(0, storage.ErrClosed), wantCode: 503, wantMsg: "retry later", retryAfter: true},
		{
			name: "failure after some records", logs: yielding(3, errors.New("IO error reading column secret_col")),
			wantCode: 500, wantMsg: "internal error", notInBody: "secret_col",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, newHandler(tt.logs), tt.query)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			var e map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("not JSON: %v: %s", err, rec.Body)
			}
			msg, _ := e["error"].(string)
			if len(e) != 1 || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("body %s, want only an error containing %q", rec.Body, tt.wantMsg)
			}
			if tt.notInBody != "" && strings.Contains(rec.Body.String(), tt.notInBody) {
				t.Errorf("body leaks %q", tt.notInBody)
			}
			if got := rec.Header().Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, tt.retryAfter)
			}
		})
	}
}

func TestFindLogsPassesQuery(t *testing.T) {
	var got storage.LogQuery
	h := newHandler(logFinderFunc(func(_ context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
		got = q
		return yielding(0, nil).FindLogs(t.Context(), q)
	}))
	if rec := get(t, h, "trace_id=abc&service=svc&q=Boom+%22card+declined%22+x&limit=7&start=1705312800"+
		"&severity=warn,ERROR&severity=fatal&attr.http.route=/cart&cursor=c1"); rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	want := storage.LogQuery{
		TraceID:    pcommon.TraceID{14: 0x0a, 15: 0xbc},
		Service:    "svc",
		Terms:      []string{"Boom", "card declined", "x"},
		Severities: []storage.Severity{storage.SeverityWarn, storage.SeverityError, storage.SeverityFatal},
		Attributes: map[string]string{"http.route": "/cart"},
		Start:      time.Unix(1705312800, 0).UTC(),
		Limit:      7,
		After:      "c1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("query = %+v\nwant %+v", got, want)
	}
	if get(t, h, ""); got.Limit != DefaultLimit || !got.Start.Equal(fixtureNow.Add(-time.Hour)) || !got.End.IsZero() {
		t.Errorf("defaults = %+v", got)
	}
}

func TestFindLogsCapsBackendIgnoringLimit(t *testing.T) {
	got := bodies(t, get(t, newHandler(yielding(50, nil)), "limit=5"))
	if len(got) != 5 {
		t.Errorf("got %d records, want 5", len(got))
	}
}

func TestUnencodableAttributes(t *testing.T) {
	finder := logFinderFunc(func(context.Context, storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
		return func(yield func(storage.LogRecord, error) bool) {
			yield(storage.LogRecord{Timestamp: fixtureNow, Attributes: map[string]any{
				"nan":    math.NaN(),
				"nested": map[string]any{"inf": []any{math.Inf(1)}},
			}}, nil)
		}
	})
	rec := get(t, newHandler(finder), "")
	want := `{"data":[{"timestamp":"2024-01-15T10:30:00Z","severity":"","severity_number":0,"body":"","service":"","trace_id":"","span_id":"","attributes":{"nan":"NaN","nested":{"inf":["+Inf"]}},"resource":{},"scope":""}]}` + "\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("status %d body\n%s\nwant\n%s", rec.Code, rec.Body, want)
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		text string
		num  plog.SeverityNumber
		want string
	}{
		{"warning", plog.SeverityNumberError, "warning"},
		{"", plog.SeverityNumberUnspecified, ""},
		{"", plog.SeverityNumberTrace, "TRACE"},
		{"", plog.SeverityNumberTrace4, "TRACE4"},
		{"", plog.SeverityNumberDebug, "DEBUG"},
		{"", plog.SeverityNumberInfo, "INFO"},
		{"", plog.SeverityNumberInfo3, "INFO3"},
		{"", plog.SeverityNumberWarn, "WARN"},
		{"", plog.SeverityNumberError2, "ERROR2"},
		{"", plog.SeverityNumberFatal, "FATAL"},
		{"", plog.SeverityNumberFatal4, "FATAL4"},
		{"", plog.SeverityNumber(25), ""},
		{"", plog.SeverityNumber(-1), ""},
	}
	for _, tt := range tests {
		if got := severity(tt.text, tt.num); got != tt.want {
			t.Errorf("severity(%q, %d) = %q, want %q", tt.text, tt.num, got, tt.want)
		}
	}
}

func TestRequestMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHandler(Options{Logs: newStore(t), Registerer: reg})
	get(t, h, "")
	get(t, h, "limit=0")
	want := `
# HELP vigil_query_requests_total HTTP requests answered by vigil's query APIs, by API and status code.
# TYPE vigil_query_requests_total counter
vigil_query_requests_total{api="logs",code="200"} 1
vigil_query_requests_total{api="logs",code="400"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vigil_query_requests_total"); err != nil {
		t.Error(err)
	}
}

// Encoded parameters must survive the round trip through the URL.
func TestQueryEscaping(t *testing.T) {
	got := bodies(t, get(t, newHandler(newStore(t)), url.Values{
		"q": {"payment failed"}, "start": {"2024-01-15T00:00:00Z"},
	}.Encode()))
	if !slices.Equal(got, []string{"Payment FAILED for order 991"}) {
		t.Errorf("got %q", got)
	}
}

// manyAttrs is a query string of n distinct attr. filters.
func manyAttrs(n int) string {
	v := url.Values{}
	for i := range n {
		v.Set(fmt.Sprintf("attr.k%d", i), "v")
	}
	return v.Encode()
}
