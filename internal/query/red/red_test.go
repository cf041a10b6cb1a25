package red

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/vigil-observability/vigil/internal/goldentest"
)

// Series as the span recorder writes them, every 15s for an hour:
// gateway serves 10 requests per 15s, one of them an error, 9 faster than
// 100ms and 1 between 100ms and 400ms; catalog serves 4 per 15s, all OK;
// worker has only internal spans (2 per 15s); gateway calls catalog 4
// times per 15s, and 1 of those every 15s... fails 1 time in 4.
const seriesText = `
load 15s
	traces_span_metrics_calls_total{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"} 0+9x240
	traces_span_metrics_calls_total{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"} 0+1x240
	traces_span_metrics_calls_total{service_name="gateway",span_name="catalog.List",span_kind="SPAN_KIND_CLIENT",status_code="STATUS_CODE_UNSET"} 0+4x240
	traces_span_metrics_duration_seconds_bucket{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",le="0.1"} 0+9x240
	traces_span_metrics_duration_seconds_bucket{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",le="0.4"} 0+9x240
	traces_span_metrics_duration_seconds_bucket{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",le="+Inf"} 0+9x240
	traces_span_metrics_duration_seconds_bucket{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR",le="0.1"} 0+0x240
	traces_span_metrics_duration_seconds_bucket{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR",le="0.4"} 0+1x240
	traces_span_metrics_duration_seconds_bucket{service_name="gateway",span_name="GET /",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR",le="+Inf"} 0+1x240
	traces_span_metrics_calls_total{service_name="catalog",span_name="List",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"} 0+4x240
	traces_span_metrics_duration_seconds_bucket{service_name="catalog",span_name="List",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",le="0.1"} 0+4x240
	traces_span_metrics_duration_seconds_bucket{service_name="catalog",span_name="List",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",le="+Inf"} 0+4x240
	traces_span_metrics_calls_total{service_name="worker",span_name="tick",span_kind="SPAN_KIND_INTERNAL",status_code="STATUS_CODE_UNSET"} 0+2x240
	traces_span_metrics_duration_seconds_bucket{service_name="worker",span_name="tick",span_kind="SPAN_KIND_INTERNAL",status_code="STATUS_CODE_UNSET",le="0.1"} 0+2x240
	traces_span_metrics_duration_seconds_bucket{service_name="worker",span_name="tick",span_kind="SPAN_KIND_INTERNAL",status_code="STATUS_CODE_UNSET",le="+Inf"} 0+2x240
	traces_service_graph_request_total{client="gateway",server="catalog",connection_type=""} 0+4x240
	traces_service_graph_request_failed_total{client="gateway",server="catalog",connection_type=""} 0+1x240
`

func newService(t *testing.T) *Service {
	t.Helper()
	st := promqltest.LoadedStorage(t, seriesText)
	t.Cleanup(func() { _ = st.Close() })
	s, err := New(Options{Queryable: st, Now: func() time.Time { return time.Unix(3600, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rec
}

func compareGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	goldentest.CompareJSON(t, name, body)
}

type servicesAnswer struct {
	Data struct {
		Services []struct {
			Name                       string
			Rate, ErrorRatio, P50, P99 *float64
			Series                     struct{ Rate [][2]*float64 }
		}
	}
}

// The numbers the overview must show follow from the series by hand.
func TestServicesValues(t *testing.T) {
	h := newService(t).Handler()
	rec := get(t, h, "/api/red/services?start=1800&end=3600")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var got servicesAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ rate, errRatio float64 }{
		"catalog": {4.0 / 15, 0},
		"gateway": {10.0 / 15, 0.1}, // the client spans to catalog are not the gateway's requests
		"worker":  {2.0 / 15, 0},    // no entry spans: all of its spans count
	}
	if len(got.Data.Services) != len(want) {
		t.Fatalf("services %+v", got.Data.Services)
	}
	for _, s := range got.Data.Services {
		w := want[s.Name]
		if s.Rate == nil || math.Abs(*s.Rate-w.rate) > 1e-9 || s.ErrorRatio == nil || math.Abs(*s.ErrorRatio-w.errRatio) > 1e-9 {
			t.Errorf("%s: rate %v errorRatio %v, want %v %v", s.Name, deref(s.Rate), deref(s.ErrorRatio), w.rate, w.errRatio)
		}
		if len(s.Series.Rate) < 20 {
			t.Errorf("%s: %d sparkline points", s.Name, len(s.Series.Rate))
		}
	}
	gw := got.Data.Services[1]
	// 9 of 10 requests are under 100ms: the median is in the first bucket,
	// p99 in the second (0.1-0.4s), interpolated linearly.
	if gw.P50 == nil || *gw.P50 > 0.1 || gw.P99 == nil || *gw.P99 <= 0.1 || *gw.P99 > 0.4 {
		t.Errorf("gateway p50 %v p99 %v", deref(gw.P50), deref(gw.P99))
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func TestGolden(t *testing.T) {
	h := newService(t).Handler()
	for _, tc := range []struct{ golden, path string }{
		{"services.golden.json", "/api/red/services?start=3000&end=3600"},
		{"operations.golden.json", "/api/red/operations?service=gateway&start=3000&end=3600"},
		{"operations_unknown.golden.json", "/api/red/operations?service=nope&start=3000&end=3600"},
		{"servicemap.golden.json", "/api/servicemap?start=3000&end=3600"},
		{"empty_range.golden.json", "/api/red/services?start=100000&end=100060"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			rec := get(t, h, tc.path)
			if rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			compareGolden(t, tc.golden, rec.Body.Bytes())
		})
	}
}

func TestDependencies(t *testing.T) {
	deps, err := newService(t).Dependencies(t.Context(), time.Unix(3600, 0), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 1 || deps[0].Parent != "gateway" || deps[0].Child != "catalog" || deps[0].CallCount != 240 {
		t.Errorf("dependencies = %+v, want gateway->catalog 240 calls", deps)
	}
}

func TestBadRequests(t *testing.T) {
	h := newService(t).Handler()
	for _, tc := range []struct{ path, msg string }{
		{"/api/red/services?start=x", "invalid start"},
		{"/api/red/services?start=10&end=5", "before end"},
		{"/api/red/services?start=0&end=4000000", "32 days"},
		{"/api/red/operations", "service is required"},
		{"/api/servicemap?end=soon", "invalid end"},
	} {
		rec := get(t, h, tc.path)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.path, rec.Code, rec.Body, tc.msg)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/servicemap", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}
