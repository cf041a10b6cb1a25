package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-observability/vigil/internal/storage"
)

type checkFunc func() ([]Finding, error)

func (f checkFunc) Name() string                           { return "test" }
func (f checkFunc) Run(context.Context) ([]Finding, error) { return f() }

func TestDoctorReportMetricAndHandler(t *testing.T) {
	calls := 0
	findings := []Finding{
		{Code: "b_code", Severity: Warning, Subject: "x", Evidence: Evidence{Summary: "w", Samples: []string{"1", "2", "3", "4", "5", "6", "7"}}},
		{Code: "a_code", Severity: Critical, Subject: "y", Evidence: Evidence{Summary: "c"}},
	}
	reg := prometheus.NewRegistry()
	d, err := New(Options{Registerer: reg, Now: func() time.Time { return time.Unix(100, 0) }, Checks: []Check{
		checkFunc(func() ([]Finding, error) { calls++; return findings, nil }),
		checkFunc(func() ([]Finding, error) { return nil, errors.New("store down") }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/doctor", nil))
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	if len(rep.Findings) != 2 || rep.Findings[0].Code != "a_code" || len(rep.Findings[1].Evidence.Samples) != MaxSamples {
		t.Errorf("report %+v: want critical first and samples capped", rep)
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "store down") {
		t.Errorf("errors %v", rep.Errors)
	}
	if got := testutil.ToFloat64(d.gauge.WithLabelValues("a_code", "critical", "y")); got != 1 {
		t.Errorf("vigil_doctor_findings = %v", got)
	}
	// Without refresh the last report is served; with it, the checks run.
	d.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/doctor", nil))
	d.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/doctor?refresh=1", nil))
	if calls != 2 {
		t.Errorf("checks ran %d times, want 2", calls)
	}
	// A finding that went away leaves the series.
	findings = nil
	d.Check(t.Context())
	if n := testutil.CollectAndCount(d.gauge); n != 0 {
		t.Errorf("%d finding series after the problems went away", n)
	}
	var b strings.Builder
	if err := WriteText(&b, rep); err != nil || !strings.Contains(b.String(), "CRITICAL  a_code  y") || !strings.Contains(b.String(), "could not check") {
		t.Errorf("text:\n%s", b.String())
	}
	if !rep.HasCritical() {
		t.Error("HasCritical false")
	}
}

// countingSpans counts the reads of span shapes.
type countingSpans struct {
	*fakeDiagnosis
	reads atomic.Int64
}

func (c *countingSpans) SpanShapes(ctx context.Context, q storage.SpanShapeQuery) ([]storage.SpanShape, error) {
	c.reads.Add(1)
	return c.fakeDiagnosis.SpanShapes(ctx, q)
}

// The trace checks of one run share one read of the span window, and the
// findings are those each check gives on its own.
func TestTraceChecksShareOneRead(t *testing.T) {
	src := &countingSpans{fakeDiagnosis: &fakeDiagnosis{spans: shopSpans(shopOptions{rps: 5, periodic: true, dropContext: map[string]bool{"gateway>catalog": true}})}}
	now := func() time.Time { return testNow }
	d, err := New(Options{Checks: []Check{PropagationCheck{Spans: src, Now: now}, TimingCheck{Spans: src, Now: now}}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rep := d.Check(t.Context())
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads of the span window in one run, want 1", n)
	}
	expectFindings(t, rep.Findings, "broken_propagation gateway → catalog")
	d.Check(t.Context())
	if n := src.reads.Load(); n != 2 {
		t.Errorf("%d reads after two runs, want 2 (nothing kept between runs)", n)
	}
}
