package red

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

// The service graph series as the recorder writes them, every 15s for an
// hour: gateway calls catalog 4 times per 15s and 1 of those fails.
const graphSeries = `
load 15s
	traces_service_graph_request_total{client="gateway",server="catalog",connection_type=""} 0+4x240
	traces_service_graph_request_failed_total{client="gateway",server="catalog",connection_type=""} 0+1x240
`

// shopSpans makes an hour of spans, every 15s from the epoch: gateway
// serves 10 requests (9 of 50ms, 1 failing after 200ms) and calls catalog 4
// times; catalog serves 4 requests of 20ms; worker has only internal spans
// (2 of 5ms).
func shopSpans() ptrace.Traces {
	td := ptrace.NewTraces()
	add := func(svc, name string, kind ptrace.SpanKind, n int, dur time.Duration, errs int) {
		ss := td.ResourceSpans().AppendEmpty()
		ss.Resource().Attributes().PutStr("service.name", svc)
		spans := ss.ScopeSpans().AppendEmpty().Spans()
		for step := range 240 {
			at := time.Unix(int64(step*15), 0)
			for i := range n {
				sp := spans.AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{0: byte(step), 1: byte(step >> 8), 2: byte(i), 3: 1})
				sp.SetSpanID(pcommon.SpanID{0: byte(i + 1)})
				sp.SetName(name)
				sp.SetKind(kind)
				d := dur
				if i < errs {
					sp.Status().SetCode(ptrace.StatusCodeError)
					d = 4 * dur
				}
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(d)))
			}
		}
	}
	add("gateway", "GET /", ptrace.SpanKindServer, 10, 50*time.Millisecond, 1)
	add("gateway", "catalog.List", ptrace.SpanKindClient, 4, 25*time.Millisecond, 0)
	add("catalog", "List", ptrace.SpanKindServer, 4, 20*time.Millisecond, 0)
	add("worker", "tick", ptrace.SpanKindInternal, 2, 5*time.Millisecond, 0)
	return td
}

func newService(t *testing.T) *Service {
	t.Helper()
	st := promqltest.LoadedStorage(t, graphSeries)
	t.Cleanup(func() { _ = st.Close() })
	spans := memory.New()
	t.Cleanup(func() { _ = spans.Close() })
	if err := spans.WriteTraces(t.Context(), shopSpans()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Spans: spans, Queryable: st, Engine: querylimit.NewEngine(querylimit.Options{}), Now: func() time.Time { return time.Unix(3600, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The engine is shared with the Prometheus API, whose timeout is minutes;
// the service graph keeps its own, shorter one.
func TestTimeoutWithinTheSharedEngine(t *testing.T) {
	st := promqltest.LoadedStorage(t, graphSeries)
	t.Cleanup(func() { _ = st.Close() })
	engine := querylimit.NewEngine(querylimit.Options{Limits: querylimit.Limits{Timeout: time.Hour}})
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New without Engine did not panic")
			}
		}()
		_, _ = New(Options{Spans: memory.New(), Queryable: st})
	}()
	s, err := New(Options{Spans: memory.New(), Queryable: st, Engine: engine, Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Dependencies(t.Context(), time.Unix(3600, 0), time.Hour)
	var timeout promql.ErrQueryTimeout
	if !errors.As(err, &timeout) {
		t.Errorf("Dependencies with a 1ns timeout: %v, want the engine's timeout error", err)
	}
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
	// 9 of 10 requests take 50ms, the failing tenth 200ms.
	if gw.P50 == nil || *gw.P50 != 0.05 || gw.P99 == nil || *gw.P99 != 0.2 {
		t.Errorf("gateway p50 %v p99 %v, want 0.05 and 0.2", deref(gw.P50), deref(gw.P99))
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

// Spans and service graph series exist only for the last hour of a two-hour
// range (vigil started an hour ago): rates are over that hour, where the
// data is, not halved by the hour before anything was sent.
func TestRatesOverDataThatExists(t *testing.T) {
	h := newService(t).Handler()
	rec := get(t, h, "/api/red/services?start=-3600&end=3600")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var svcs struct {
		Data struct {
			Covered  float64
			Services []struct {
				Name string
				Rate float64
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &svcs); err != nil {
		t.Fatal(err)
	}
	if svcs.Data.Covered != 3600 {
		t.Errorf("covered = %gs, want 3600s", svcs.Data.Covered)
	}
	want := map[string]float64{"catalog": 4.0 / 15, "gateway": 10.0 / 15, "worker": 2.0 / 15}
	for _, s := range svcs.Data.Services {
		if math.Abs(s.Rate-want[s.Name]) > 1e-9 {
			t.Errorf("%s: rate %g, want %g", s.Name, s.Rate, want[s.Name])
		}
	}

	rec = get(t, h, "/api/servicemap?start=-3600&end=3600")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var m struct {
		Data struct {
			Covered float64
			Edges   []struct {
				Source, Target string
				Rate           float64
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Data.Edges) != 1 || math.Abs(m.Data.Edges[0].Rate-4.0/15) > 1e-3 || m.Data.Covered != 3600 {
		t.Errorf("service map covered %gs, edges %+v, want gateway->catalog at %g/s over 3600s", m.Data.Covered, m.Data.Edges, 4.0/15)
	}
}
