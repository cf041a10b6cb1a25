package jaegerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

const fixtureTraceID = "5b8efff798038103d269b633813fc60c"

func loadFixture(t *testing.T) ptrace.Traces {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "trace.otlp.json"))
	if err != nil {
		t.Fatal(err)
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return td
}

func newStore(t *testing.T, tds ...ptrace.Traces) *memory.Store {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	for _, td := range tds {
		if err := st.WriteTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, path, nil))
	return rec
}

func compareGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	goldentest.CompareJSON(t, name, body)
}

func TestGetTraceGolden(t *testing.T) {
	h := NewHandler(Options{Traces: newStore(t, loadFixture(t))})
	rec := get(t, h, http.MethodGet, "/api/traces/"+fixtureTraceID)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	compareGolden(t, "trace.golden.json", rec.Body.Bytes())
}

// The golden file pins the exact bytes; these checks pin the meaning, so a
// careless -update cannot bless a wrong mapping.
func TestGetTraceMapping(t *testing.T) {
	h := NewHandler(Options{Traces: newStore(t, loadFixture(t))})
	rec := get(t, h, http.MethodGet, "/api/traces/"+fixtureTraceID)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var resp struct {
		Data []struct {
			TraceID   string
			Spans     []jsonSpan
			Processes map[string]jsonProcess
		}
		Errors []responseError
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 1 || resp.Errors != nil {
		t.Fatalf("want one trace and no errors, got %+v", resp)
	}
	tr := resp.Data[0]
	if tr.TraceID != fixtureTraceID {
		t.Errorf("traceID = %q", tr.TraceID)
	}
	if len(tr.Processes) != 2 {
		t.Errorf("want 2 processes (frontend written twice with equal resources), got %d: %+v", len(tr.Processes), tr.Processes)
	}
	spans := map[string]jsonSpan{}
	for _, s := range tr.Spans {
		spans[s.OperationName] = s
		if _, ok := tr.Processes[s.ProcessID]; !ok {
			t.Errorf("span %q has unknown processID %q", s.OperationName, s.ProcessID)
		}
	}
	if len(spans) != 5 {
		t.Fatalf("want 5 spans, got %d", len(tr.Spans))
	}
	if tr.Spans[0].OperationName != "GET /checkout" {
		t.Errorf("spans not ordered by start time: first is %q", tr.Spans[0].OperationName)
	}
	if p := tr.Processes[spans["process order"].ProcessID]; p.ServiceName != "backend" {
		t.Errorf("process order runs in %q", p.ServiceName)
	}

	tagOf := func(s jsonSpan, key string) (keyValue, bool) {
		for _, kv := range s.Tags {
			if kv.Key == key {
				return kv, true
			}
		}
		return keyValue{}, false
	}
	root := spans["GET /checkout"]
	if root.StartTime != 1705312800000001 || root.Duration != 250000 {
		t.Errorf("root start/duration = %d/%d µs", root.StartTime, root.Duration)
	}
	if root.Flags != 1 {
		t.Errorf("root flags = %d, want 1 (sampled)", root.Flags)
	}
	if len(root.References) != 0 {
		t.Errorf("root has references %+v", root.References)
	}
	for key, want := range map[string]keyValue{
		"http.response.status_code":  {Type: "int64", Value: float64(200)},
		"sampling.ratio":             {Type: "float64", Value: 0.25},
		"cache.hit":                  {Type: "bool", Value: false},
		"request.digest":             {Type: "binary", Value: "3q2+7w=="},
		"http.request.header.accept": {Type: "string", Value: `["text/html","application/json"]`},
		"user":                       {Type: "string", Value: `{"id":7,"tier":"gold"}`},
		"span.kind":                  {Type: "string", Value: "server"},
		"otel.status_code":           {Type: "string", Value: "OK"},
		"otel.scope.name":            {Type: "string", Value: "io.opentelemetry.http"},
		"otel.scope.version":         {Type: "string", Value: "1.2.3"},
		"w3c.tracestate":             {Type: "string", Value: "vendor=abc,other=1"},
	} {
		got, ok := tagOf(root, key)
		if !ok || got.Type != want.Type || got.Value != want.Value {
			t.Errorf("root tag %s = %+v (found %v), want type %s value %v", key, got, ok, want.Type, want.Value)
		}
	}
	if _, ok := tagOf(root, "error"); ok {
		t.Error("OK span carries an error tag")
	}

	failed := spans["process order"]
	wantRefs := []jsonReference{
		{RefType: "CHILD_OF", TraceID: fixtureTraceID, SpanID: "aaf0c7f2b1e61c2d"},
		{RefType: "FOLLOWS_FROM", TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"},
	}
	if fmt.Sprint(failed.References) != fmt.Sprint(wantRefs) {
		t.Errorf("references = %+v, want %+v", failed.References, wantRefs)
	}
	if kv, _ := tagOf(failed, "error"); kv.Type != "bool" || kv.Value != true {
		t.Errorf("error tag = %+v", kv)
	}
	if kv, _ := tagOf(failed, "otel.status_code"); kv.Value != "ERROR" {
		t.Errorf("otel.status_code = %+v", kv)
	}
	if kv, _ := tagOf(failed, "otel.status_description"); kv.Value != "out of stock" {
		t.Errorf("otel.status_description = %+v", kv)
	}
	if len(failed.Logs) != 1 || failed.Logs[0].Timestamp != 1705312800150000 ||
		len(failed.Logs[0].Fields) != 3 || failed.Logs[0].Fields[0] != (keyValue{Key: "event", Type: "string", Value: "exception"}) {
		t.Errorf("logs = %+v", failed.Logs)
	}

	if _, ok := tagOf(spans["SELECT stock"], "span.kind"); ok {
		t.Error("internal span carries a span.kind tag")
	}
	if logs := spans["SELECT stock"].Logs; len(logs) != 1 || len(logs[0].Fields) != 1 || logs[0].Fields[0].Key != "rows" {
		t.Errorf("unnamed event should have only its attributes, got %+v", logs)
	}
	if kv, _ := tagOf(spans["publish order.failed"], "span.kind"); kv.Value != "producer" {
		t.Errorf("producer span.kind = %+v", kv)
	}
	if kv, _ := tagOf(spans["POST /orders"], "span.kind"); kv.Value != "client" {
		t.Errorf("client span.kind = %+v", kv)
	}
}

// Backends may return resources and spans in any order; the document must
// not depend on it.
func TestGetTraceIndependentOfStorageOrder(t *testing.T) {
	fixture := loadFixture(t)
	reversed := ptrace.NewTraces()
	rss := fixture.ResourceSpans()
	for i := rss.Len() - 1; i >= 0; i-- {
		rs := reversed.ResourceSpans().AppendEmpty()
		rss.At(i).Resource().CopyTo(rs.Resource())
		for _, ss := range rss.At(i).ScopeSpans().All() {
			nss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().CopyTo(nss.Scope())
			for j := ss.Spans().Len() - 1; j >= 0; j-- {
				ss.Spans().At(j).CopyTo(nss.Spans().AppendEmpty())
			}
		}
	}
	a := get(t, NewHandler(Options{Traces: newStore(t, fixture)}), http.MethodGet, "/api/traces/"+fixtureTraceID)
	b := get(t, NewHandler(Options{Traces: newStore(t, reversed)}), http.MethodGet, "/api/traces/"+fixtureTraceID)
	if a.Code != http.StatusOK || a.Body.String() != b.Body.String() {
		t.Errorf("documents differ:\n%s\n%s", a.Body, b.Body)
	}
}

// traceGetterFunc lets a test script storage failures of GetTrace; the
// search methods fail with the error GetTrace returns for the zero id.
type traceGetterFunc func(context.Context, pcommon.TraceID) (ptrace.Traces, error)

func (f traceGetterFunc) GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	return f(ctx, id)
}

func (f traceGetterFunc) FindTraces(ctx context.Context, _ storage.TraceQuery) ([]storage.TraceSummary, error) {
	_, err := f(ctx, pcommon.TraceID{})
	return nil, err
}

func (f traceGetterFunc) Services(ctx context.Context) ([]string, error) {
	_, err := f(ctx, pcommon.TraceID{})
	return nil, err
}

func (f traceGetterFunc) Operations(ctx context.Context, _ string) ([]storage.Operation, error) {
	_, err := f(ctx, pcommon.TraceID{})
	return nil, err
}

func TestGetTraceErrors(t *testing.T) {
	short := ptrace.NewTraces()
	span := short.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetTraceID(pcommon.TraceID{14: 0x0a, 15: 0xbc})
	span.SetSpanID(pcommon.SpanID{7: 1})
	span.SetName("short id")
	store := newStore(t, loadFixture(t), short)

	failing := func(err error) TraceStore {
		return traceGetterFunc(func(context.Context, pcommon.TraceID) (ptrace.Traces, error) {
			return ptrace.NewTraces(), err
		})
	}
	tests := []struct {
		name       string
		traces     TraceStore
		method     string
		id         string
		wantCode   int
		wantBody   string // exact, when set
		wantMsg    string // substring of errors[0].msg, when set
		notInBody  string
		retryAfter bool
	}{
		{name: "found, upper case", traces: store, id: strings.ToUpper(fixtureTraceID), wantCode: 200},
		{name: "short id is left-padded", traces: store, id: "abc", wantCode: 200},
		{name: "short id with zeros", traces: store, id: "00000abc", wantCode: 200},
		{
			name: "not found", traces: store, id: "0af7651916cd43dd8448eb211c80319c", wantCode: 404,
			wantBody: `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}` + "\n",
		},
		{name: "wrapped not found", traces: failing(fmt.Errorf("lookup: %w", storage.ErrTraceNotFound)), id: "1", wantCode: 404, wantMsg: "trace not found"},
		{name: "empty result is not found", traces: failing(nil), id: "1", wantCode: 404, wantMsg: "trace not found"},
		{name: "not hex", traces: store, id: "xyz", wantCode: 400, wantMsg: "not hexadecimal"},
		{name: "too long", traces: store, id: fixtureTraceID + "0", wantCode: 400, wantMsg: "longer than 32"},
		{name: "all zeros", traces: store, id: "0000", wantCode: 400, wantMsg: "all zeros"},
		{
			name: "storage unavailable", traces: failing(fmt.Errorf("duckdb at /var/lib/vigil: %w", storage.ErrUnavailable)),
			id: fixtureTraceID, wantCode: 503, wantMsg: "retry later", notInBody: "/var/lib/vigil", retryAfter: true,
		},
		{name: "storage closed", traces: failing(storage.ErrClosed), id: fixtureTraceID, wantCode: 503, wantMsg: "retry later", retryAfter: true},
		{
			name: "other storage failure", traces: failing(errors.New("binder error: column secret_col")),
			id: fixtureTraceID, wantCode: 500, wantMsg: "internal error", notInBody: "secret_col",
		},
		{name: "wrong method", traces: store, method: http.MethodPost, id: fixtureTraceID, wantCode: 405, wantMsg: "use GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := cmpOr(tt.method, http.MethodGet)
			rec := get(t, NewHandler(Options{Traces: tt.traces}), method, "/api/traces/"+tt.id)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			body := rec.Body.String()
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body\n%s\nwant\n%s", body, tt.wantBody)
			}
			if tt.notInBody != "" && strings.Contains(body, tt.notInBody) {
				t.Errorf("body leaks %q: %s", tt.notInBody, body)
			}
			if got := rec.Header().Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, tt.retryAfter)
			}
			var resp response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("not JSON: %v: %s", err, body)
			}
			if tt.wantCode == 200 {
				if len(resp.Errors) != 0 || resp.Data == nil {
					t.Errorf("success with errors: %s", body)
				}
				return
			}
			if resp.Data != nil || len(resp.Errors) != 1 || resp.Errors[0].Code != tt.wantCode ||
				!strings.Contains(resp.Errors[0].Msg, tt.wantMsg) {
				t.Errorf("error envelope %s, want code %d msg containing %q", body, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestParseTraceID(t *testing.T) {
	tests := []struct {
		in   string
		want pcommon.TraceID
		err  bool
	}{
		{in: fixtureTraceID, want: pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}},
		{in: "1", want: pcommon.TraceID{15: 1}},
		{in: "123", want: pcommon.TraceID{14: 0x01, 15: 0x23}},
		{in: "d269b633813fc60c", want: pcommon.TraceID{8: 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}},
		{in: "AbCdEf", want: pcommon.TraceID{13: 0xab, 0xcd, 0xef}},
		{in: "", err: true},
		{in: "0", err: true},
		{in: "g1", err: true},
		{in: "+1", err: true},
		{in: " 1", err: true},
		{in: strings.Repeat("a", 33), err: true},
	}
	for _, tt := range tests {
		got, err := ParseTraceID(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseTraceID(%q) = %x, %v; want %x, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestConvertEdgeCases(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty() // no service.name
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	id := pcommon.TraceID{15: 9}
	span.SetTraceID(id)
	span.SetSpanID(pcommon.SpanID{7: 9})
	span.SetStartTimestamp(2_000_000)
	span.SetEndTimestamp(1_000_000)
	span.SetFlags(0x300) // context-has-parent bits only: not sampled
	span.Attributes().PutDouble("nan", math.NaN())
	span.Attributes().PutDouble("inf", math.Inf(-1))
	span.Attributes().PutEmpty("empty")
	ev := span.Events().AppendEmpty()
	ev.SetName("named")
	ev.Attributes().PutStr("event", "explicit")

	tr := convertTrace(id, td)
	if len(tr.Spans) != 1 || len(tr.Processes) != 1 {
		t.Fatalf("got %+v", tr)
	}
	s := tr.Spans[0]
	if p := tr.Processes[s.ProcessID]; p.ServiceName != NoServiceName || len(p.Tags) != 0 {
		t.Errorf("process = %+v", p)
	}
	if s.Duration != 0 || len(s.Warnings) != 1 {
		t.Errorf("negative duration: duration %d, warnings %v", s.Duration, s.Warnings)
	}
	if s.Flags != 0 {
		t.Errorf("flags = %d", s.Flags)
	}
	wantTags := []keyValue{
		{Key: "nan", Type: "string", Value: "NaN"},
		{Key: "inf", Type: "string", Value: "-Inf"},
		{Key: "empty", Type: "string", Value: ""},
	}
	if fmt.Sprint(s.Tags) != fmt.Sprint(wantTags) {
		t.Errorf("tags = %+v, want %+v", s.Tags, wantTags)
	}
	if f := s.Logs[0].Fields; len(f) != 1 || f[0].Value != "explicit" {
		t.Errorf("an explicit event attribute must not be duplicated by the name: %+v", f)
	}
	if _, err := json.Marshal(tr); err != nil {
		t.Errorf("edge cases must stay encodable: %v", err)
	}
}

func TestRequestMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHandler(Options{Traces: newStore(t, loadFixture(t)), Registerer: reg})
	get(t, h, http.MethodGet, "/api/traces/"+fixtureTraceID)
	get(t, h, http.MethodGet, "/api/traces/1")
	get(t, h, http.MethodGet, "/api/traces/2")
	want := `
# HELP vigil_query_requests_total HTTP requests answered by vigil's query APIs, by API and status code.
# TYPE vigil_query_requests_total counter
vigil_query_requests_total{api="jaeger",code="200"} 1
vigil_query_requests_total{api="jaeger",code="404"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vigil_query_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestProcessDeduplication(t *testing.T) {
	id := pcommon.TraceID{15: 1}
	td := ptrace.NewTraces()
	addSpan := func(spanID byte, attrs func(pcommon.Map)) {
		rs := td.ResourceSpans().AppendEmpty()
		attrs(rs.Resource().Attributes())
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(id)
		s.SetSpanID(pcommon.SpanID{7: spanID})
		s.SetStartTimestamp(pcommon.Timestamp(spanID))
	}
	addSpan(1, func(m pcommon.Map) { m.PutStr("service.name", "a"); m.PutStr("k", "1"); m.PutStr("z", "x") })
	addSpan(2, func(m pcommon.Map) { m.PutStr("z", "x"); m.PutStr("k", "1"); m.PutStr("service.name", "a") })
	addSpan(3, func(m pcommon.Map) { m.PutStr("service.name", "a"); m.PutInt("k", 1); m.PutStr("z", "x") })
	addSpan(4, func(m pcommon.Map) { m.PutStr("service.name", "b"); m.PutStr("k", "1"); m.PutStr("z", "x") })
	addSpan(5, func(m pcommon.Map) { m.PutStr("service.name", "a") })

	tr := convertTrace(id, td)
	var got []string
	for _, s := range tr.Spans {
		got = append(got, s.ProcessID)
	}
	want := []string{"p1", "p1", "p2", "p3", "p4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("process ids = %v, want %v", got, want)
	}
	if len(tr.Processes) != 4 || tr.Processes["p3"].ServiceName != "b" || len(tr.Processes["p4"].Tags) != 0 {
		t.Errorf("processes = %+v", tr.Processes)
	}
}

// A trace past query.max_trace_spans keeps its earliest spans and says it
// was truncated, on the trace and on its first span; a search shares one
// budget over all the traces it returns.
func TestTraceTruncated(t *testing.T) {
	fixture := loadFixture(t)
	total := fixture.SpanCount()
	for _, tc := range []struct {
		name      string
		maxSpans  int
		wantSpans int
		truncated bool
	}{
		{"under the limit", total, total, false},
		{"over the limit", 2, 2, true},
		{"no limit", 0, total, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHandler(Options{Traces: newStore(t, fixture), MaxTraceSpans: tc.maxSpans})
			rec := get(t, h, http.MethodGet, "/api/traces/"+fixtureTraceID)
			var r struct {
				Data []struct {
					Spans []struct {
						StartTime int64    `json:"startTime"`
						Warnings  []string `json:"warnings"`
					} `json:"spans"`
					Warnings []string `json:"warnings"`
				} `json:"data"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusOK || len(r.Data) != 1 {
				t.Fatalf("HTTP %d %s (%v)", rec.Code, rec.Body, err)
			}
			tr := r.Data[0]
			if len(tr.Spans) != tc.wantSpans {
				t.Errorf("%d spans, want %d", len(tr.Spans), tc.wantSpans)
			}
			marked := len(tr.Warnings) > 0 && strings.Contains(tr.Warnings[0], "truncated") &&
				slices.ContainsFunc(tr.Spans[0].Warnings, func(w string) bool { return strings.Contains(w, "truncated") })
			if marked != tc.truncated {
				t.Errorf("truncation marked %v (trace warnings %q), want %v", marked, tr.Warnings, tc.truncated)
			}
			for i := 1; i < len(tr.Spans); i++ {
				if tr.Spans[i].StartTime < tr.Spans[i-1].StartTime {
					t.Errorf("span %d starts before span %d: the earliest must be kept, in order", i, i-1)
				}
			}
		})
	}
}

// Traces read together (by several traceID parameters, or found by a
// search) share one span budget: past it, the last trace is truncated and
// the rest are left out, so 1,500 large traces cost what one would.
func TestTraceSearchSharesTheBudget(t *testing.T) {
	mk := func(first byte) ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range 5 {
			sp := ss.AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{first})
			sp.SetSpanID(pcommon.SpanID{first, byte(i + 1)})
			sp.SetName("op")
			sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
			sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_000_000_100 + i))
		}
		return td
	}
	store := newStore(t, mk(1), mk(2))
	path := "/api/traces?traceID=01" + strings.Repeat("0", 30) + "&traceID=02" + strings.Repeat("0", 30)
	for _, tc := range []struct {
		maxSpans int
		want     []int // spans per trace returned
	}{
		{0, []int{5, 5}},
		{10, []int{5, 5}},
		{7, []int{5, 2}},
		{5, []int{5}},
	} {
		rec := get(t, NewHandler(Options{Traces: store, MaxTraceSpans: tc.maxSpans}), http.MethodGet, path)
		var r struct {
			Data []struct {
				Spans    []json.RawMessage `json:"spans"`
				Warnings []string          `json:"warnings"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("max %d: HTTP %d %s (%v)", tc.maxSpans, rec.Code, rec.Body, err)
		}
		var got []int
		for _, d := range r.Data {
			got = append(got, len(d.Spans))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("max %d: spans per trace %v, want %v", tc.maxSpans, got, tc.want)
		}
		if n := len(r.Data); n > 0 && got[n-1] < 5 && len(r.Data[n-1].Warnings) == 0 {
			t.Errorf("max %d: the truncated trace carries no warning", tc.maxSpans)
		}
	}
}
