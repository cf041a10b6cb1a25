package promapi

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// sample is one fixed data point of testdata/samples.txt.
type sample struct {
	series labels.Labels
	t      int64 // milliseconds
	v      float64
}

// loadSamples reads testdata/samples.txt: "<series> <timestamp ms> <value>"
// per line, # comments allowed.
func loadSamples(t testing.TB) []sample {
	t.Helper()
	f, err := os.Open("testdata/samples.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := parser.NewParser(parser.Options{})
	var out []sample
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			t.Fatalf("samples.txt:%d: want <series> <ts> <value>", n)
		}
		series := strings.Join(fields[:len(fields)-2], " ")
		lbls, err := p.ParseMetric(series)
		if err != nil {
			t.Fatalf("samples.txt:%d: %v", n, err)
		}
		ts, err := strconv.ParseInt(fields[len(fields)-2], 10, 64)
		if err != nil {
			t.Fatalf("samples.txt:%d: %v", n, err)
		}
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("samples.txt:%d: %v", n, err)
		}
		out = append(out, sample{series: lbls, t: ts, v: v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("samples.txt holds no samples")
	}
	return out
}

// openLoadedTSDB opens a TSDB in a temporary directory holding the fixed
// samples; its metrics go to reg (may be nil).
func openLoadedTSDB(t testing.TB, reg prometheus.Registerer) *tsdb.DB {
	t.Helper()
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{Registerer: reg})
	app := db.Appender(t.Context())
	for _, s := range loadSamples(t) {
		if _, err := app.Append(0, s.series, s.t, s.v); err != nil {
			t.Fatalf("append %s@%d: %v", s.series, s.t, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return db
}

// Fixed evaluation times, in seconds, within the sample range
// [1700000000, 1700000600].
const (
	tStart = "1700000000"
	tMid   = "1700000300"
	tEnd   = "1700000600"
)

// apiRequest is one GET request against /api/v1, compared either with a
// golden file or with a real Prometheus.
type apiRequest struct {
	name string // golden file name (testdata/<name>.json)
	path string // under /api/v1, with the query string
	// tiesUnordered: the answer lists counts whose ties come in no fixed
	// order (only /status/tsdb); compare after ordering them.
	tiesUnordered bool
	// status is the expected HTTP status; zero means 200.
	status int
	// compat marks requests whose answers must equal a real Prometheus
	// holding the same samples, byte for byte unless diff says otherwise.
	compat bool
	// diff names a documented difference between the Prometheus library
	// vigil embeds (v0.315, i.e. Prometheus 3.x) and the Debian server
	// (2.42) for this request; the comparison then tolerates exactly that.
	diff versionDiff
}

// versionDiff is a known behaviour change between Prometheus 2.42 and the
// Prometheus 3.x library; see compareCompat.
type versionDiff int

const (
	sameBytes versionDiff = iota
	// floatLastBits: newer PromQL computes rate()'s extrapolation with a
	// different operation order, so results may differ in the last bits.
	floatLastBits
	// errorTextCase: newer Prometheus starts this error text lower-case.
	errorTextCase
	// unsortedSingleMatch: newer Prometheus no longer sorts /series output
	// when there is a single match[] (it skips the sort for speed), so the
	// same series come in storage order.
	unsortedSingleMatch
)

func q(query, time string) string {
	return "/query?query=" + escape(query) + "&time=" + time
}

func qr(query, start, end, step string) string {
	return "/query_range?query=" + escape(query) + "&start=" + start + "&end=" + end + "&step=" + step
}

func escape(s string) string { return url.QueryEscape(s) }

// queryRequests are the read requests of the API over the fixed samples.
var queryRequests = []apiRequest{
	{name: "query_vector", path: q("vigil_test_requests_total", tMid), compat: true},
	{name: "query_sum_rate", path: q("sum by (code) (rate(vigil_test_requests_total[2m]))", tMid), compat: true},
	{name: "query_gauge_arith", path: q("vigil_test_temperature_celsius * 2", tMid), compat: true},
	{name: "query_lookback", path: q("vigil_test_temperature_celsius", tEnd), compat: true},
	{name: "query_odd_values", path: q("vigil_test_odd_values", "1700000180"), compat: true},
	{name: "query_matrix_selector", path: q("vigil_test_odd_values[3m]", "1700000400"), compat: true},
	{name: "query_scalar", path: q("1 + 1", tMid), compat: true},
	{name: "query_string", path: q(`"hello"`, tMid), compat: true},
	{name: "query_empty", path: q("no_such_metric", tMid), compat: true},
	{name: "query_range_rate", path: qr("rate(vigil_test_requests_total[1m])", tStart, tEnd, "60"), compat: true, diff: floatLastBits},
	{name: "query_range_gauge", path: qr(`vigil_test_temperature_celsius{room="lab"}`, tStart, tEnd, "120"), compat: true},
	{name: "query_range_odd", path: qr("vigil_test_odd_values", tStart, tEnd, "90"), compat: true},
	{name: "query_bad_param", path: "/query?query=up&time=notatime", status: http.StatusBadRequest, compat: true, diff: errorTextCase},
	{name: "series_job", path: "/series?match[]=" + escape(`{job="vigiltest"}`) + "&start=" + tStart + "&end=" + tEnd, compat: true, diff: unsortedSingleMatch},
	{name: "series_two_matchers", path: "/series?match[]=" + escape(`vigil_test_odd_values`) + "&match[]=" + escape(`{room="lab"}`) + "&start=" + tStart + "&end=" + tEnd, compat: true},
	{name: "labels_job", path: "/labels?match[]=" + escape(`{job="vigiltest"}`) + "&start=" + tStart + "&end=" + tEnd, compat: true},
	{name: "label_values_name", path: "/label/__name__/values?match[]=" + escape(`{job="vigiltest"}`) + "&start=" + tStart + "&end=" + tEnd, compat: true},
	{name: "label_values_instance", path: "/label/instance/values?match[]=" + escape(`{job="vigiltest"}`) + "&start=" + tStart + "&end=" + tEnd, compat: true},
	{name: "label_values_none", path: "/label/no_such_label/values?match[]=" + escape(`{job="vigiltest"}`) + "&start=" + tStart + "&end=" + tEnd, compat: true},
	{name: "metadata", path: "/metadata", compat: true},
	{name: "metadata_bad_limit", path: "/metadata?limit=x", status: http.StatusBadRequest, compat: true},
}

// get issues a GET to an http.Handler (baseURL == "") or to a server.
func get(t *testing.T, h http.Handler, baseURL, path string) (int, []byte) {
	t.Helper()
	if baseURL == "" {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, PathPrefix+path, nil))
		return rec.Code, rec.Body.Bytes()
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, baseURL+PathPrefix+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, body
}

func describe(code int, body []byte) string {
	return fmt.Sprintf("HTTP %d %s", code, body)
}
