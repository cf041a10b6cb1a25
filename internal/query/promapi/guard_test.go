package promapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// A subquery with billions of steps is refused before the engine allocates
// for it (it would otherwise take the process down); reasonable ones run.
func TestSubqueryStepLimit(t *testing.T) {
	h := newHandler(t, testOptions(t))
	for _, tc := range []struct {
		name, path string
		wantCode   int
		wantBody   string
	}{
		{"huge subquery", "/query?" + url.Values{"query": {"up[100000d:1ms]"}, "time": {tMid}}.Encode(), http.StatusBadRequest, "more than the 1000000 allowed"},
		{"nested, inner huge", "/query?" + url.Values{"query": {"max_over_time(rate(up[5m:1ms])[2h:1m])"}, "time": {tMid}}.Encode(), http.StatusBadRequest, "up[5m:1ms]"},
		{"default step", "/query?" + url.Values{"query": {"max_over_time(up[10000d:])"}, "time": {tMid}}.Encode(), http.StatusBadRequest, "more than"},
		{"a month at 1m", "/query?" + url.Values{"query": {"max_over_time(vigil_test_requests_total[30d:1m])"}, "time": {tMid}}.Encode(), http.StatusOK, `"status":"success"`},
		{"range query adds its span", "/query_range?" + url.Values{"query": {"max_over_time(up[1h:1s])"}, "start": {"1690000000"}, "end": {"1700000000"}, "step": {"86400"}}.Encode(), http.StatusBadRequest, "more than"},
		{"range query, fine", "/query_range?" + url.Values{"query": {"max_over_time(vigil_test_requests_total[10m:1m])"}, "start": {"1700000000"}, "end": {"1700000600"}, "step": {"60"}}.Encode(), http.StatusOK, `"status":"success"`},
		{"duration expression hides the range", "/query?" + url.Values{"query": {"count_over_time(vector(1)[(100000d):1ms])"}, "time": {tMid}}.Encode(), http.StatusBadRequest, "more than the 1000000 allowed"},
		{"step() as the subquery step", "/query_range?" + url.Values{"query": {"count_over_time(vector(1)[30d:step()])"}, "start": {"1700000000"}, "end": {"1700000001"}, "step": {"0.001"}}.Encode(), http.StatusBadRequest, "more than"},
		{"@ end() does not hide it", "/query?" + url.Values{"query": {"count_over_time(vector(1)[100000d:1ms] @ end())"}, "time": {tMid}}.Encode(), http.StatusBadRequest, "more than"},
		{"offset does not hide it", "/query?" + url.Values{"query": {"count_over_time(vector(1)[100000d:1ms] offset 1h)"}, "time": {tMid}}.Encode(), http.StatusBadRequest, "more than"},
		{"times the old guard could not parse", "/query_range?" + url.Values{"query": {"count_over_time(vector(1)[100d:1s])"}, "start": {"999000000000"}, "end": {"1000000100000"}, "step": {"100010"}}.Encode(), http.StatusBadRequest, "out of the range"},
		{"unparsable goes to the API", "/query?" + url.Values{"query": {"up[1d:"}}.Encode(), http.StatusBadRequest, `"errorType":"bad_data"`},
	} {
		code, body := get(t, h, "", tc.path)
		if code != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
			t.Errorf("%s: %s, want HTTP %d containing %q", tc.name, describe(code, body), tc.wantCode, tc.wantBody)
		}
	}
	// However the body is sent (or broken), the values the API will read
	// are the ones checked.
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"query in the URL, body with a broken content type", "application/json; charset=\xff", "junk"},
		{"query in the URL, body not a form", "application/json", `{"query":"1"}`},
		{"query in a multipart body", "multipart/form-data; boundary=xx", "--xx\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nup[100000d:1ms]\r\n--xx--\r\n"},
	} {
		target := PathPrefix + "/query?time=" + tMid
		if !strings.HasPrefix(tc.contentType, "multipart") {
			target += "&query=" + url.QueryEscape("up[100000d:1ms]")
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.contentType)
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "more than the 1000000 allowed") {
			t.Errorf("%s: HTTP %d %s, want the subquery refused", tc.name, rec.Code, rec.Body)
		}
	}
	// POSTed forms are checked too, and still reach the API intact.
	for _, tc := range []struct {
		query    string
		wantCode int
	}{{"up[100000d:1ms]", http.StatusBadRequest}, {"count_over_time(vector(1)[(100000d):1ms])", http.StatusBadRequest}, {"count(vigil_test_requests_total)", http.StatusOK}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, PathPrefix+"/query", strings.NewReader(url.Values{"query": {tc.query}, "time": {tMid}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(rec, req)
		if rec.Code != tc.wantCode {
			t.Errorf("POST %s: HTTP %d %s, want %d", tc.query, rec.Code, rec.Body, tc.wantCode)
		}
	}
}

func TestQueryDepthAndReadMatchers(t *testing.T) {
	h := newHandler(t, testOptions(t))
	deep := strings.Repeat("(", MaxQueryDepth+1) + "1" + strings.Repeat(")", MaxQueryDepth+1)
	fine := strings.Repeat("(", 20) + "1" + strings.Repeat(")", 20)
	for _, tc := range []struct {
		name, path string
		wantCode   int
		wantBody   string
	}{
		{"format_query too deep", "/format_query?" + url.Values{"query": {deep}}.Encode(), http.StatusBadRequest, "nests 201 levels deep"},
		{"query too deep", "/query?" + url.Values{"query": {deep}, "time": {tMid}}.Encode(), http.StatusBadRequest, "more than the 200 allowed"},
		{"series match too deep", "/series?" + url.Values{"match[]": {strings.Repeat("{", 300)}}.Encode(), http.StatusBadRequest, "match[] nests"},
		{"brackets in strings do not count", "/format_query?" + url.Values{"query": {`up{job="` + strings.Repeat("(", 300) + `"}`}}.Encode(), http.StatusOK, `"status":"success"`},
		{"nested a little", "/format_query?" + url.Values{"query": {fine}}.Encode(), http.StatusOK, `"status":"success"`},
	} {
		code, body := get(t, h, "", tc.path)
		if code != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
			t.Errorf("%s: %s, want HTTP %d containing %q", tc.name, describe(code, body), tc.wantCode, tc.wantBody)
		}
	}

	read := func(m *prompb.LabelMatcher) (int, string) {
		raw, err := (&prompb.ReadRequest{Queries: []*prompb.Query{{
			StartTimestampMs: 1700000000000, EndTimestampMs: 1700000600000, Matchers: []*prompb.LabelMatcher{m},
		}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, PathPrefix+"/read", bytes.NewReader(snappy.Encode(nil, raw)))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := read(&prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: "(\xff"}); code != http.StatusBadRequest || !strings.Contains(body, "invalid matcher") {
		t.Errorf("remote read with a broken regexp: HTTP %d %s, want 400 (Prometheus answers 500)", code, body)
	}
	if code, body := read(&prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "vigil_test_requests_total"}); code != http.StatusOK {
		t.Errorf("remote read: HTTP %d %.200s, want 200 (the guard must hand the body on intact)", code, body)
	}
}

// With every query slot taken, a query waits its turn, then is told to come
// back later; queries that need no storage are not held up.
func TestQuerySlots(t *testing.T) {
	opts := testOptions(t)
	slots := querylimit.NewSlots(1, 20*time.Millisecond)
	opts.Engine = querylimit.NewEngine(querylimit.Options{Slots: slots})
	h := newHandler(t, opts)
	_, release, err := slots.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/query?query=1&time=" + tMid, "/series?match[]=up"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, PathPrefix+path, nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "query slots stayed busy") {
			t.Errorf("%s with every slot busy: HTTP %d %s (Retry-After %q), want 503 with Retry-After", path, rec.Code, rec.Body, rec.Header().Get("Retry-After"))
		}
	}
	// A query the engine refuses is refused at once, busy or not.
	if code, body := get(t, h, "", "/query?"+url.Values{"query": {"up[100000d:1ms]"}, "time": {tMid}}.Encode()); code != http.StatusBadRequest {
		t.Errorf("refused query with every slot busy: %s, want 400", describe(code, body))
	}
	if code, body := get(t, h, "", "/format_query?query=up"); code != http.StatusOK {
		t.Errorf("format_query with every slot busy: %s, want 200", describe(code, body))
	}
	release()
	if code, body := get(t, h, "", "/query?query=1&time="+tMid); code != http.StatusOK {
		t.Errorf("query once a slot is free: %s, want 200", describe(code, body))
	}
}

// Too many series for one request is an execution error, as Prometheus
// answers its own sample limit.
func TestQueryMaxSeries(t *testing.T) {
	opts := testOptions(t)
	opts.Engine = querylimit.NewEngine(querylimit.Options{Limits: querylimit.Limits{MaxSeries: 1}})
	h := newHandler(t, opts)
	for _, path := range []string{
		"/query?" + url.Values{"query": {"{__name__=~\".+\"}"}, "time": {tMid}}.Encode(),
		"/series?" + url.Values{"match[]": {"{__name__=~\".+\"}"}}.Encode(),
	} {
		code, body := get(t, h, "", path)
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "too many series") {
			t.Errorf("%s: %s, want 422 too many series", path, describe(code, body))
		}
	}
}
