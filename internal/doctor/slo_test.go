package doctor

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/teststorage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/slo"
	"github.com/vigil-observability/vigil/internal/spanmetrics"
)

// sloWorld is an hour and ten minutes of an HTTP API's request counters
// and latency histogram (buckets 0.1, 0.25, 0.5, 1), and of the span
// metrics of payments' POST /charge server spans, recorded by vigil's span
// metrics recorder.
func sloWorld(t *testing.T) (*teststorage.TestStorage, time.Time) {
	t.Helper()
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().Truncate(time.Minute).Add(-70 * time.Minute)
	rec, err := spanmetrics.New(spanmetrics.Options{Appendable: st, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	api := func(name string, kv ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", name, "job", "api"}, kv...)...)
	}
	for i := 1; i <= 70; i++ {
		app := st.Appender(t.Context())
		ts := now.UnixMilli()
		n := float64(i * 10)
		samples := []struct {
			l labels.Labels
			v float64
		}{
			{api("http_requests_total", "code", "200"), n},
			{api("http_request_duration_seconds_count"), n},
			{api("http_request_duration_seconds_bucket", "le", "0.1"), n / 2},
			{api("http_request_duration_seconds_bucket", "le", "0.25"), n * 0.8},
			{api("http_request_duration_seconds_bucket", "le", "0.5"), n * 0.9},
			{api("http_request_duration_seconds_bucket", "le", "1"), n},
			{api("http_request_duration_seconds_bucket", "le", "+Inf"), n},
		}
		for _, s := range samples {
			if _, err := app.Append(0, s.l, ts, s.v); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}

		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "payments")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for j := range 10 {
			sp := spans.AppendEmpty()
			sp.SetName("POST /charge")
			sp.SetKind(ptrace.SpanKindServer)
			d := 100 * time.Millisecond
			if j == 0 {
				d = time.Second
			}
			end := pcommon.NewTimestampFromTime(now)
			sp.SetStartTimestamp(end - pcommon.Timestamp(d))
			sp.SetEndTimestamp(end)
		}
		rec.RecordSpans(td)
		now = now.Add(time.Minute)
		if err := rec.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return st, now
}

func TestSLOCheck(t *testing.T) {
	st, now := sloWorld(t)
	engine := querylimit.NewEngine(querylimit.Options{})
	spec := func(sli string) []slo.Spec {
		t.Helper()
		specs, err := slo.Parse([]byte("version: prometheus/v1\nservice: api\nslos:\n- name: s\n  objective: 99\n  alerting: {name: A}\n  sli:\n" + sli))
		if err != nil {
			t.Fatal(err)
		}
		return specs
	}
	const (
		total    = `      total_query: sum(rate(http_requests_total{job="api"}[{{.window}}]))` + "\n"
		latTotal = `      total_query: sum(rate(http_request_duration_seconds_count{job="api"}[{{.window}}]))` + "\n"
	)
	for _, tc := range []struct {
		name  string
		specs []slo.Spec
		// want are the findings with data; offline those without.
		want, offline []string
		// summary is a piece of the first finding's summary.
		summary string
	}{
		{
			name: "healthy events SLI",
			specs: spec("    events:\n" + total +
				`      error_query: sum(rate(http_requests_total{job="api",code=~"5.."}[{{.window}}])) or vector(0)` + "\n"),
		},
		{
			name: "healthy latency events SLI on a bucket bound",
			specs: spec("    events:\n" + latTotal +
				`      error_query: sum(rate(http_request_duration_seconds_count{job="api"}[{{.window}}])) - sum(rate(http_request_duration_seconds_bucket{job="api",le="0.25"}[{{.window}}]))` + "\n"),
		},
		{
			name:  "healthy span SLIs",
			specs: spec("    spans: {service: payments, operation: POST /charge, latency_threshold: 400ms}\n"),
		},
		{
			name: "latency threshold between two buckets",
			specs: spec("    events:\n" + latTotal +
				`      error_query: sum(rate(http_request_duration_seconds_count{job="api"}[{{.window}}])) - sum(rate(http_request_duration_seconds_bucket{job="api",le="0.3"}[{{.window}}]))` + "\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			summary: `no such bucket; the nearest bounds are "0.25" or "0.5"`,
		},
		{
			name: "le written differently from the series",
			specs: spec("    events:\n" + latTotal +
				`      error_query: sum(rate(http_request_duration_seconds_count{job="api"}[{{.window}}])) - sum(rate(http_request_duration_seconds_bucket{job="api",le="0.50"}[{{.window}}]))` + "\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			summary: `writes that bucket as le="0.5"`,
		},
		{
			name: "le on vigil's span histogram that is not one of its bounds",
			specs: spec("    events:\n" +
				`      total_query: sum(rate(traces_span_metrics_duration_seconds_count{service_name="payments"}[{{.window}}]))` + "\n" +
				`      error_query: sum(rate(traces_span_metrics_duration_seconds_count{service_name="payments"}[{{.window}}])) - sum(rate(traces_span_metrics_duration_seconds_bucket{service_name="payments",le="0.3"}[{{.window}}]))` + "\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			offline: []string{"slo_unmeasurable warning api/s"},
			summary: `the nearest bounds are "0.2" or "0.4"`,
		},
		{
			name: "span latency threshold that is not a bound",
			specs: func() []slo.Spec {
				// Validation refuses it; a spec built in code is not validated.
				s := spec("    spans: {service: payments, latency_threshold: 400ms}\n")
				s[0].SLOs[0].SLI.Spans.LatencyThreshold = slo.Duration(300 * time.Millisecond)
				return s
			}(),
			want:    []string{"slo_unmeasurable warning api/s"},
			offline: []string{"slo_unmeasurable warning api/s"},
			summary: "the nearest bounds are 200ms or 400ms",
		},
		{
			name:    "span SLI over a service that sends no spans",
			specs:   spec("    spans: {service: paymnts}\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			summary: `no SERVER or CONSUMER spans of service "paymnts" arrived`,
		},
		{
			name: "error query without a series while nothing fails",
			specs: spec("    events:\n" + total +
				`      error_query: sum(rate(http_requests_total{job="api",code=~"5.."}[{{.window}}]))` + "\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			summary: "the error query returned nothing",
		},
		{
			name: "error and total with different labels",
			specs: spec("    events:\n" + total +
				`      error_query: sum by (code) (rate(http_requests_total{job="api",code!="500"}[{{.window}}]))` + "\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			summary: "their ratio returned nothing",
		},
		{
			name:    "raw SLI over a metric that does not exist",
			specs:   spec("    raw:\n      error_ratio_query: sum(rate(http_errors_total[{{.window}}])) / sum(rate(http_requests_total[{{.window}}]))\n"),
			want:    []string{"slo_unmeasurable warning api/s"},
			summary: "the error ratio query returned nothing",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, offline := range []bool{false, true} {
				c := SLOCheck{SLOs: func() []slo.Spec { return tc.specs }, Metrics: st, Engine: engine, Now: func() time.Time { return now }}
				want := tc.want
				if offline {
					c.Metrics = nil
					want = tc.offline
				}
				got, err := c.Run(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				// Online and offline are a scenario each.
				expectFindings(t, got, withoutSeverity(want)...)
				if k := findingKeys(got); !slices.Equal(k, want) {
					t.Fatalf("offline %v: findings %q, want %q (severities included)\n%+v", offline, k, want, got)
				}
				if len(got) > 0 && !strings.Contains(got[0].Evidence.Summary, tc.summary) {
					t.Errorf("offline %v: summary %q lacks %q", offline, got[0].Evidence.Summary, tc.summary)
				}
				for _, f := range got {
					if f.Cause == "" || f.Fix == "" {
						t.Errorf("finding without cause or fix: %+v", f)
					}
				}
			}
		})
	}
}

// Querying metrics takes the server's engine; without one the check says
// so rather than building its own on every run.
func TestSLOCheckNeedsAnEngineForMetrics(t *testing.T) {
	st, now := sloWorld(t)
	c := SLOCheck{SLOs: func() []slo.Spec { return nil }, Metrics: st, Now: func() time.Time { return now }}
	if _, err := c.Run(t.Context()); !errors.Is(err, ErrNoEngine) {
		t.Errorf("Run with Metrics and no Engine: %v, want ErrNoEngine", err)
	}
}

func TestNearestBounds(t *testing.T) {
	bounds := []float64{0.1, 0.25, 0.5, 1}
	for _, tc := range []struct {
		x, below, above float64
		text            string
	}{
		{0.3, 0.25, 0.5, `"0.25" or "0.5"`},
		{0.05, -1, 0.1, `"0.1"`},
		{2, 1, -1, `"1"`},
	} {
		below, above := nearestBounds(tc.x, bounds)
		if (tc.below >= 0 && below != tc.below) || (tc.above >= 0 && above != tc.above) {
			t.Errorf("nearestBounds(%v) = %v, %v", tc.x, below, above)
		}
		if got := boundsOr(below, above, leText); got != tc.text {
			t.Errorf("boundsOr(%v) = %q, want %q", tc.x, got, tc.text)
		}
	}
}
