package promapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
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
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/scrape"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"

	vigilscrape "github.com/vigil-observability/vigil/internal/ingest/scrape"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	vigilstorage "github.com/vigil-observability/vigil/internal/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The scrape manager vigil runs is what the target endpoints read.
var _ Targets = (*vigilscrape.Manager)(nil)

// fakeTargets holds fixed scrape targets so that /targets has stable output.
type fakeTargets struct {
	active, dropped map[string][]*scrape.Target
	cfg             *config.ScrapeConfig
}

func newFakeTargets() *fakeTargets {
	sc := config.DefaultScrapeConfig
	sc.JobName = "node"
	sc.ScrapeInterval = model.Duration(15 * time.Second)
	sc.ScrapeTimeout = model.Duration(10 * time.Second)
	sc.MetricsPath = "/metrics"
	sc.Scheme = "http"
	active := scrape.NewTarget(
		labels.FromStrings(
			model.AddressLabel, "node-1:9100",
			model.SchemeLabel, "http",
			model.MetricsPathLabel, "/metrics",
			model.ScrapeIntervalLabel, "15s",
			model.ScrapeTimeoutLabel, "10s",
			model.JobLabel, "node",
			model.InstanceLabel, "node-1:9100",
			"env", "test",
		),
		&sc,
		model.LabelSet{model.AddressLabel: "node-1:9100"},
		model.LabelSet{"env": "test"},
	)
	dropped := scrape.NewTarget(
		labels.EmptyLabels(),
		&sc,
		model.LabelSet{model.AddressLabel: "node-2:9100"},
		model.LabelSet{"env": "dropped"},
	)
	return &fakeTargets{
		active:  map[string][]*scrape.Target{"node": {active}},
		dropped: map[string][]*scrape.Target{"node": {dropped}},
		cfg:     &sc,
	}
}

func (f *fakeTargets) TargetsActive() map[string][]*scrape.Target  { return f.active }
func (f *fakeTargets) TargetsDropped() map[string][]*scrape.Target { return f.dropped }
func (f *fakeTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{"node": 1} }
func (f *fakeTargets) ScrapePools() []string                       { return []string{"node"} }
func (f *fakeTargets) ScrapePoolConfig(pool string) (*config.ScrapeConfig, error) {
	if pool != "node" {
		return nil, errors.New("scrape pool not found")
	}
	return f.cfg, nil
}

func testOptions(t testing.TB) Options {
	// One registry for the TSDB and the API, as in vigil: /status/tsdb
	// reads the head chunk count from the TSDB's metrics via the Gatherer,
	// which defaults to this Registerer.
	reg := prometheus.NewRegistry()
	db := openLoadedTSDB(t, reg)
	return Options{
		Registerer:    reg,
		Queryable:     db,
		TSDB:          vigilstorage.TSDBCapabilities(db).Admin,
		Targets:       newFakeTargets(),
		Engine:        querylimit.NewEngine(querylimit.Options{}),
		Flags:         map[string]string{"storage.tsdb.path": "data/"},
		ListenAddress: "127.0.0.1:9090",
		ExternalURL:   &url.URL{Scheme: "https", Host: "vigil.example.com"},
		Version:       "0.1.0",
		Revision:      "abc123",
		Branch:        "main",
		BuildUser:     "builder@host",
		BuildDate:     "20250101-00:00:00",
		GoVersion:     "go1.26.8",
	}
}

// newHandler builds the handler of opts, on an engine of default settings
// and a local external URL when opts has none.
func newHandler(t testing.TB, opts Options) http.Handler {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = querylimit.NewEngine(querylimit.Options{})
	}
	if opts.ExternalURL == nil {
		opts.ExternalURL = &url.URL{Scheme: "http", Host: "localhost:7070"}
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// statusRequests are answered from Options rather than storage, so they
// cannot be compared with another Prometheus.
var statusRequests = []apiRequest{
	{name: "buildinfo", path: "/status/buildinfo"},
	{name: "flags", path: "/status/flags"},
	{name: "targets", path: "/targets"},
	{name: "targets_dropped", path: "/targets?state=dropped"},
	{name: "targets_metadata", path: "/targets/metadata?match_target=" + escape(`{job="node"}`)},
	{name: "scrape_pools", path: "/scrape_pools"},
	// limit=20 so that no entry is cut: the TSDB orders equal counts
	// arbitrarily, so with a cut the kept entries would vary between runs.
	{name: "tsdb_status", path: "/status/tsdb?limit=20", tiesUnordered: true},
	{name: "walreplay", path: "/status/walreplay"},
	{name: "rules", path: "/rules"},
	{name: "alerts", path: "/alerts"},
	{name: "alertmanagers", path: "/alertmanagers"},
}

// TestGolden checks each endpoint's JSON against testdata/<name>.json. The
// query goldens are also what TestMatchesPrometheus checks against a real
// Prometheus, so they are not merely self-blessed.
func TestGolden(t *testing.T) {
	h := newHandler(t, testOptions(t))
	for _, r := range slices.Concat(queryRequests, statusRequests) {
		t.Run(r.name, func(t *testing.T) {
			code, body := get(t, h, "", r.path)
			want := r.status
			if want == 0 {
				want = http.StatusOK
			}
			if code != want {
				t.Fatalf("GET %s: %s, want HTTP %d", r.path, describe(code, body), want)
			}
			golden := filepath.Join("testdata", r.name+".json")
			if *update {
				if err := os.WriteFile(golden, body, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantBody, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if r.tiesUnordered {
				body, wantBody = sortTSDBStatTies(t, body), sortTSDBStatTies(t, wantBody)
			}
			if !bytes.Equal(body, wantBody) {
				t.Errorf("GET %s:\n got: %s\nwant: %s", r.path, body, wantBody)
			}
		})
	}
}

func TestEngineSettingsReachTheAPI(t *testing.T) {
	tests := []struct {
		name     string
		engine   querylimit.Options
		path     string
		wantCode int
		wantBody string
	}{
		{
			name:     "default lookback sees a sample 30s old",
			path:     q("vigil_test_odd_values", "1700000630"),
			wantCode: http.StatusOK,
			wantBody: `"kind":"big"`,
		},
		{
			name:     "a 10s lookback does not",
			engine:   querylimit.Options{EngineOpts: promql.EngineOpts{LookbackDelta: 10 * time.Second}},
			path:     q("vigil_test_odd_values", "1700000630"),
			wantCode: http.StatusOK,
			wantBody: `"result":[]`,
		},
		{
			name:     "max samples",
			engine:   querylimit.Options{Limits: querylimit.Limits{MaxSamples: 10}},
			path:     q("vigil_test_requests_total[10m]", tEnd),
			wantCode: http.StatusUnprocessableEntity,
			wantBody: "too many samples",
		},
		{
			name:     "subquery without step uses the evaluation interval",
			path:     q("count_over_time(vigil_test_odd_values{kind=\"big\"}[5m:])", tEnd),
			wantCode: http.StatusOK,
			// Default evaluation_interval 1m: steps at 1700000340..600, 5 points.
			wantBody: `"value":[1700000600,"5"]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.Engine = querylimit.NewEngine(tt.engine)
			code, body := get(t, newHandler(t, opts), "", tt.path)
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("GET %s: %s, want HTTP %d containing %s", tt.path, describe(code, body), tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestDisabledEndpointsAndReadiness(t *testing.T) {
	ready := false
	opts := testOptions(t)
	h := newHandler(t, opts)
	if _, err := New(opts); !errors.Is(err, ErrRegistration) {
		t.Errorf("second New with the same Registerer: %v, want ErrRegistration", err)
	}
	opts.Ready = func() bool { return ready }
	opts.Registerer, opts.Gatherer = prometheus.NewRegistry(), nil
	gated := newHandler(t, opts)

	post := func(h http.Handler, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, PathPrefix+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	tests := []struct {
		name     string
		do       func() (int, string)
		wantCode int
		wantBody string
	}{
		{"remote write receiver off", func() (int, string) { return post(h, "/write", "x") }, http.StatusNotFound, "remote write receiver needs to be enabled"},
		{"otlp receiver off", func() (int, string) { return post(h, "/otlp/v1/metrics", "x") }, http.StatusNotFound, "vigil receives OTLP on its OTLP/HTTP address"},
		// Prometheus answers 500 ("search API disabled").
		{"search off", func() (int, string) { return post(h, "/search/label_names", "") }, http.StatusNotFound, `"errorType":"not_found"`},
		// The router's own 404 is plain text.
		{"unknown endpoint", func() (int, string) { code, body := get(t, h, "", "/no_such_endpoint"); return code, string(body) }, http.StatusNotFound, `{"error":"no such endpoint: /api/v1/no_such_endpoint","errorType":"not_found","status":"error"}`},
		// Prometheus answers 500 (errorType "unavailable"); nothing failed.
		{"admin off", func() (int, string) { return post(h, "/admin/tsdb/snapshot", "") }, http.StatusNotFound, `admin endpoints are off: start vigil with --enable-admin`},
		{"query by POST form", func() (int, string) {
			return post(h, "/query", "query=count(vigil_test_requests_total)&time="+tMid)
		}, http.StatusOK, `"value":[1700000300,"2"]`},
		{"not ready", func() (int, string) {
			code, body := get(t, gated, "", q("1", tMid))
			return code, string(body)
		}, http.StatusServiceUnavailable, "Service Unavailable"},
		{"ready again", func() (int, string) {
			ready = true
			code, body := get(t, gated, "", q("1", tMid))
			return code, string(body)
		}, http.StatusOK, `"resultType":"scalar"`},
	}
	for _, tt := range tests {
		code, body := tt.do()
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: HTTP %d %s, want HTTP %d containing %q", tt.name, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

// A request with an Origin header (any browser's, Grafana's in browser
// mode) reaches Prometheus's CORS code on every endpoint; without an origin
// expression it dereferenced nil and dropped the connection.
func TestOriginHeader(t *testing.T) {
	for _, tc := range []struct {
		corsOrigin, origin, wantAllow string
	}{
		{"", "http://x", ""},
		{`https://grafana\.example`, "https://grafana.example", "https://grafana.example"},
		{`https://grafana\.example`, "https://grafana.example.evil", ""},
	} {
		opts := testOptions(t)
		opts.CORSOrigin = tc.corsOrigin
		h := newHandler(t, opts)
		for _, path := range []string{q("1", tMid), "/labels", "/status/buildinfo", "/search/label_names", "/no_such_endpoint"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, PathPrefix+path, nil)
			req.Header.Set("Origin", tc.origin)
			h.ServeHTTP(rec, req) // panicked before
			if rec.Code >= 500 {
				t.Errorf("GET %s with Origin %s: %d %s", path, tc.origin, rec.Code, rec.Body)
			}
			if path == q("1", tMid) && rec.Header().Get("Access-Control-Allow-Origin") != tc.wantAllow {
				t.Errorf("cors_origin %q, Origin %s: Allow-Origin %q, want %q", tc.corsOrigin, tc.origin, rec.Header().Get("Access-Control-Allow-Origin"), tc.wantAllow)
			}
		}
	}
	opts := testOptions(t)
	opts.CORSOrigin = "(unclosed"
	if _, err := New(opts); err == nil {
		t.Error("an invalid CORS origin expression was accepted")
	}
}

func TestOptionalDependenciesAbsent(t *testing.T) {
	db := openLoadedTSDB(t, nil)
	for name, opts := range map[string]Options{
		"no queryable":    {},
		"no engine":       {Queryable: db},
		"no external URL": {Queryable: db, Engine: querylimit.NewEngine(querylimit.Options{})},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with %s did not panic", name)
				}
			}()
			_, _ = New(opts)
		}()
	}
	h := newHandler(t, Options{Queryable: db})

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/targets", http.StatusOK, `{"status":"success","data":{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}}`},
		{"/scrape_pools", http.StatusOK, `{"status":"success","data":{"scrapePools":[]}}`},
		// The engine's settings under Prometheus's flag names, even with
		// no Flags given.
		{"/status/flags", http.StatusOK, `"query.max-samples":"50000000","query.max-series":"0","query.max-trace-spans":"100000","query.timeout":"2m"`},
		{"/status/tsdb", http.StatusInternalServerError, ErrNoTSDB.Error()},
		// Prometheus itself panics on a nil ExemplarQueryable.
		{"/query_exemplars?query=vigil_test_requests_total", http.StatusOK, `{"status":"success","data":[]}`},
		{"/status/config", http.StatusOK, `scrape_interval: 1m`},
		{q("vigil_test_requests_total", tMid), http.StatusOK, `"code":"500"`},
	}
	for _, tt := range tests {
		code, body := get(t, h, "", tt.path)
		if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("GET %s: %s, want HTTP %d containing %s", tt.path, describe(code, body), tt.wantCode, tt.wantBody)
		}
	}
}

// sortTSDBStatTies re-encodes a /status/tsdb answer with each top list in
// a fixed order (count descending, then name). The TSDB sorts by count
// only, leaving ties in map order.
func sortTSDBStatTies(t *testing.T, body []byte) []byte {
	t.Helper()
	var resp struct {
		Status string           `json:"status"`
		Data   apiv1.TSDBStatus `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	for _, list := range [][]apiv1.TSDBStat{
		resp.Data.SeriesCountByMetricName, resp.Data.LabelValueCountByLabelName,
		resp.Data.MemoryInBytesByLabelName, resp.Data.SeriesCountByLabelValuePair,
	} {
		slices.SortFunc(list, func(a, b apiv1.TSDBStat) int {
			if c := cmp.Compare(b.Value, a.Value); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	out, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// With admin enabled the TSDB admin endpoints work as in Prometheus:
// deleting a series removes it from queries, a snapshot lands in TSDBDir.
func TestAdminEndpointsEnabled(t *testing.T) {
	opts := testOptions(t)
	opts.EnableAdmin, opts.TSDBDir = true, t.TempDir()
	h := newHandler(t, opts)
	do := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, PathPrefix+path, nil)
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := get(t, h, "", q("count(vigil_test_requests_total)", tMid)); code != http.StatusOK || !strings.Contains(string(body), `"2"]`) {
		t.Fatalf("before delete: %s", describe(code, body))
	}
	if code, body := do("/admin/tsdb/delete_series?match[]=vigil_test_requests_total"); code != http.StatusNoContent {
		t.Fatalf("delete_series: HTTP %d %s", code, body)
	}
	if code, body := get(t, h, "", q("count(vigil_test_requests_total)", tMid)); code != http.StatusOK || !strings.Contains(string(body), `"result":[]`) {
		t.Errorf("after delete: %s, want no series", describe(code, body))
	}
	code, body := do("/admin/tsdb/snapshot")
	if code != http.StatusOK || !strings.Contains(body, `"name":`) {
		t.Fatalf("snapshot: HTTP %d %s", code, body)
	}
	if entries, err := os.ReadDir(filepath.Join(opts.TSDBDir, "snapshots")); err != nil || len(entries) != 1 {
		t.Errorf("snapshots dir: %v, %v; want one snapshot", entries, err)
	}
}
