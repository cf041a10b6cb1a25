package lokiapi

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/storage"
)

// fixtureBase is when the fixture's first line was logged; the handler's
// clock stands ten minutes later.
var fixtureBase = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// fixture is a shop's logs from base on: JSON lines from two checkout
// hosts, logfmt lines from payments, and a line without a service.
func fixture(base time.Time) []storage.LogRecord {
	var recs []storage.LogRecord
	add := func(offset time.Duration, service string, res map[string]any, sev plog.SeverityNumber, body string, attrs map[string]any) {
		r := storage.LogRecord{
			Timestamp: base.Add(offset), Service: service, ResourceAttributes: res,
			SeverityNumber: sev, Body: body, Attributes: attrs,
		}
		if tid, ok := attrs["trace"].(string); ok {
			if _, err := hex.Decode(r.TraceID[:], []byte(tid)); err != nil {
				panic(err)
			}
			delete(attrs, "trace")
		}
		recs = append(recs, r)
	}
	checkoutA := map[string]any{"service.name": "checkout", "host.name": "a", "deployment.environment.name": "prod"}
	checkoutB := map[string]any{"service.name": "checkout", "host.name": "b", "deployment.environment.name": "prod"}
	payments := map[string]any{"service.name": "payments", "job": "payments"}
	for i := range 6 {
		status := 200
		sev := plog.SeverityNumberInfo
		if i%3 == 2 {
			status, sev = 503, plog.SeverityNumberError
		}
		res := checkoutA
		if i%2 == 1 {
			res = checkoutB
		}
		line := `{"level":"` + strings.ToLower(storage.SeverityOf(sev).String()) + `","msg":"GET /cart","status":` + strconv.Itoa(status) + `,"duration":"` + strconv.Itoa(10*(i+1)) + `ms","user":{"id":"u` + strconv.Itoa(i) + `"}}`
		add(time.Duration(i)*30*time.Second, "checkout", res, sev, line, map[string]any{"trace": "0af7651916cd43dd8448eb211c80319c"})
	}
	for i := range 4 {
		lvl, sev := "info", plog.SeverityNumberInfo
		if i == 3 {
			lvl, sev = "error", plog.SeverityNumberError
		}
		add(time.Duration(i)*time.Minute+10*time.Second, "payments", payments, sev,
			"level="+lvl+` msg="charge card" amount=`+strconv.Itoa(10*(i+1))+" took="+strconv.Itoa(i+1)+"00ms", map[string]any{"tenant": "fake", "level": lvl, "attempt": int64(i % 2), "ratio": 0.5 * float64(i)})
	}
	add(5*time.Minute, "", map[string]any{"job": "cron"}, 0, "nightly job started", nil)
	return recs
}

// newServer serves store with the clock ten minutes after base.
func newServer(t *testing.T, store LogStore, base time.Time) *httptest.Server {
	t.Helper()
	h := NewHandler(Options{Logs: store, Now: func() time.Time { return base.Add(10 * time.Minute) }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newTestServer(t *testing.T) *httptest.Server {
	return newServer(t, newFakeStore(fixture(fixtureBase)...), fixtureBase)
}

func ns(d time.Duration) string { return nsAt(fixtureBase, d) }

func nsAt(base time.Time, d time.Duration) string {
	return strconv.FormatInt(base.Add(d).UnixNano(), 10)
}

// grafanaCall is one request Grafana's Loki data source makes.
type grafanaCall struct {
	name, path string
	params     url.Values
	header     http.Header
}

// grafanaCalls are the calls Grafana's Loki data source makes, in the
// form its backend builds them (nanosecond start and end, step in
// milliseconds, direction always set), over the fixture written at base.
func grafanaCalls(base time.Time) []grafanaCall {
	start, end := nsAt(base, -time.Minute), nsAt(base, 10*time.Minute)
	return []grafanaCall{
		{"health_check", "/loki/api/v1/query", url.Values{"direction": {"backward"}, "query": {"vector(1)+vector(1)"}, "time": {"4000000000"}}, nil},
		{"explore_range", "/loki/api/v1/query_range", url.Values{"direction": {"backward"}, "query": {`{service_name="checkout"}`}, "limit": {"1000"}, "start": {start}, "end": {end}, "step": {"2000ms"}}, nil},
		{"explore_forward_limit", "/loki/api/v1/query_range", url.Values{"direction": {"forward"}, "query": {`{service_name=~"checkout|payments"} |= ""`}, "limit": {"3"}, "start": {start}, "end": {end}, "step": {"2000ms"}}, nil},
		{"logs_volume", "/loki/api/v1/query_range", url.Values{"direction": {"backward"}, "query": {`sum by (level, detected_level) (count_over_time({service_name="checkout"} | drop __error__[1m]))`}, "start": {start}, "end": {end}, "step": {"60000ms"}}, http.Header{"X-Query-Tags": {"Source=logvolhist"}}},
		{"logs_volume_metadata_level", "/loki/api/v1/query_range", url.Values{"direction": {"backward"}, "query": {`sum by (level, detected_level) (count_over_time({service_name="payments"} | drop __error__[1m]))`}, "start": {start}, "end": {end}, "step": {"60000ms"}}, http.Header{"X-Query-Tags": {"Source=logvolhist"}}},
		{"count_by_typed_attributes", "/loki/api/v1/query_range", url.Values{"query": {`sum by (attempt, ratio, service_name) (bytes_over_time({service_name=~".+"} |= "charge" != "amount=20" [10m]))`}, "start": {start}, "end": {end}, "step": {"300000ms"}}, nil},
		{"json_metric", "/loki/api/v1/query_range", url.Values{"direction": {"backward"}, "query": {`sum by (status) (count_over_time({service_name="checkout"} | json | status >= 500 [5m]))`}, "start": {start}, "end": {end}, "step": {"300000ms"}}, nil},
		{"logfmt_filter", "/loki/api/v1/query_range", url.Values{"direction": {"backward"}, "query": {`{job="payments"} |= "charge" | logfmt | took > 250ms | line_format "{{.msg}} {{.amount}}"`}, "limit": {"100"}, "start": {start}, "end": {end}, "step": {"2000ms"}}, nil},
		{"instant_rate", "/loki/api/v1/query", url.Values{"query": {`sum by (service_name) (rate({service_name=~".+"}[10m]))`}, "time": {end}}, nil},
		{"labels", "/loki/api/v1/labels", url.Values{"start": {start}, "end": {end}}, nil},
		{"label_values", "/loki/api/v1/label/service_name/values", url.Values{"start": {start}, "end": {end}}, nil},
		{"label_values_selector", "/loki/api/v1/label/host_name/values", url.Values{"query": {`{service_name="checkout"}`}, "start": {start}, "end": {end}}, nil},
		{"series", "/loki/api/v1/series", url.Values{"match[]": {`{service_name="checkout"}`, `{job=~"pay.*"}`}, "start": {start}, "end": {end}}, nil},
		{"index_stats", "/loki/api/v1/index/stats", url.Values{"query": {`{service_name="checkout"}`}, "start": {start}, "end": {end}}, nil},
		{"index_volume", "/loki/api/v1/index/volume", url.Values{"query": {`{service_name=~".+"}`}, "start": {start}, "end": {end}, "limit": {"10"}}, nil},
		{"index_volume_target", "/loki/api/v1/index/volume", url.Values{"query": {`{service_name="checkout"}`}, "targetLabels": {"host_name"}, "start": {start}, "end": {end}}, nil},
		{"index_volume_range", "/loki/api/v1/index/volume_range", url.Values{"query": {`{service_name=~".+"}`}, "start": {start}, "end": {end}, "step": {"300000ms"}}, nil},
		{"detected_labels", "/loki/api/v1/detected_labels", url.Values{"query": {`{service_name=~".+"}`}, "start": {start}, "end": {end}}, nil},
		{"detected_fields", "/loki/api/v1/detected_fields", url.Values{"query": {`{service_name=~".+"}`}, "start": {start}, "end": {end}}, nil},
	}
}

// call makes c against srv and returns the answer without its stats.
func (c grafanaCall) do(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+c.path+"?"+c.params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return withoutStats(t, body)
}

// TestGrafanaCalls replays Grafana's calls and compares the answers with
// golden files. Query statistics hold timings; they are checked apart.
func TestGrafanaCalls(t *testing.T) {
	srv := newTestServer(t)
	for _, c := range grafanaCalls(fixtureBase) {
		t.Run(c.name, func(t *testing.T) {
			goldentest.CompareJSON(t, "grafana/"+c.name+".json", c.do(t, srv))
		})
	}
}

// withoutStats drops data.stats, after checking that a query answer has
// one with the summary Grafana reads.
func withoutStats(t *testing.T, body []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	data, ok := doc["data"].(map[string]any)
	if !ok {
		return body
	}
	st, ok := data["stats"].(map[string]any)
	if !ok {
		if strings.Contains(string(body), `"stats"`) {
			t.Fatalf("stats outside data: %s", body)
		}
		return body // index/volume answers have none, as in Loki
	}
	if _, ok := st["summary"].(map[string]any)["totalLinesProcessed"]; !ok {
		t.Errorf("stats without summary.totalLinesProcessed: %v", st)
	}
	delete(data, "stats")
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestErrors checks that what the client got wrong is a 400 with a reason
// in plain text, as Loki answers and Grafana shows.
func TestErrors(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		name, path string
		params     url.Values
		want       string
	}{
		{"parse", "/loki/api/v1/query_range", url.Values{"query": {`{service_name="checkout"`}}, "parse error"},
		{"empty selector", "/loki/api/v1/query_range", url.Values{"query": {`{service_name=~".*"}`}}, "empty"},
		{"log query as instant", "/loki/api/v1/query", url.Values{"query": {`{service_name="checkout"}`}}, "instant query"},
		{"limit too large", "/loki/api/v1/query_range", url.Values{"query": {`{service_name="checkout"}`}, "limit": {"5001"}}, "max entries limit"},
		{"bad time", "/loki/api/v1/query_range", url.Values{"query": {`{service_name="checkout"}`}, "start": {"yesterday"}}, "start"},
		{"end before start", "/loki/api/v1/labels", url.Values{"start": {ns(time.Hour)}, "end": {ns(0)}}, "before start"},
		{"bad direction", "/loki/api/v1/query_range", url.Values{"query": {`{service_name="checkout"}`}, "direction": {"sideways"}}, "direction"},
		{"bad step", "/loki/api/v1/query_range", url.Values{"query": {`count_over_time({service_name="checkout"}[1m])`}, "step": {"0"}}, "step"},
		{"too many points", "/loki/api/v1/query_range", url.Values{"query": {`count_over_time({service_name="checkout"}[1m])`}, "step": {"1ms"}, "start": {ns(0)}, "end": {ns(time.Hour)}}, "points"},
		{"volume by labels", "/loki/api/v1/index/volume", url.Values{"query": {`{service_name="checkout"}`}, "aggregateBy": {"labels"}}, "aggregateby"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path + "?" + tc.params.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			if !strings.Contains(strings.ToLower(string(body)), tc.want) {
				t.Errorf("body %q does not mention %q", body, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

// TestPostForm checks that a query sent as a form post, as logcli and
// long queries do, answers as the GET does.
func TestPostForm(t *testing.T) {
	srv := newTestServer(t)
	params := url.Values{"query": {`sum(count_over_time({service_name="checkout"}[10m]))`}, "time": {ns(5 * time.Minute)}}
	get, err := http.Get(srv.URL + "/loki/api/v1/query?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := io.ReadAll(get.Body)
	get.Body.Close()
	post, err := http.PostForm(srv.URL+"/loki/api/v1/query", params)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(post.Body)
	post.Body.Close()
	if post.StatusCode != http.StatusOK || get.StatusCode != http.StatusOK {
		t.Fatalf("GET %d, POST %d: %s", get.StatusCode, post.StatusCode, pb)
	}
	var g, p map[string]any
	_ = json.Unmarshal(withoutStats(t, gb), &g)
	_ = json.Unmarshal(withoutStats(t, pb), &p)
	gs, _ := json.Marshal(g)
	ps, _ := json.Marshal(p)
	if string(gs) != string(ps) {
		t.Errorf("POST answered %s, GET %s", ps, gs)
	}
	if !strings.Contains(string(gs), `"6"`) {
		t.Errorf("checkout logged 6 lines in the 10 minutes before; got %s", gs)
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000":                   time.Unix(1700000000, 0),
		"1700000000123456789":          time.Unix(0, 1700000000123456789),
		"1700000000.5":                 time.Unix(1700000000, 5e8),
		"2026-12-07T10:00:00.25Z":      time.Date(2026, 12, 7, 10, 0, 0, 25e7, time.UTC),
		"2026-12-07T11:00:00+01:00":    time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
		"4000000000":                   time.Unix(4000000000, 0),
		"1.7e9":                        time.Unix(1700000000, 0),
		"-1":                           time.Unix(-1, 0),
		"1700000000000000000000000000": {},
		"2026-12-07":                   {},
		"":                             {},
	} {
		got, err := parseTime(in)
		if want.IsZero() {
			if err == nil {
				t.Errorf("parseTime(%q) = %v, want an error", in, got)
			}
			continue
		}
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
