package doctor

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/util/teststorage"
)

// The server passes the TSDB's head.
var _ HeadStats = (*tsdb.Head)(nil)

// appendSeries writes one sample a minute before now to each series.
func appendSeries(t *testing.T, db *teststorage.TestStorage, now time.Time, series []labels.Labels) {
	t.Helper()
	app := db.Appender(t.Context())
	for _, ls := range series {
		if _, err := app.Append(0, ls, now.Add(-time.Minute).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// series returns n label sets of metric, the i-th with label set to
// value(i), plus the fixed name/value pairs in rest.
func series(metric, label string, n int, value func(int) string, rest ...string) []labels.Labels {
	out := make([]labels.Labels, 0, n)
	for i := range n {
		out = append(out, labels.FromStrings(append([]string{"__name__", metric, label, value(i)}, rest...)...))
	}
	return out
}

// demoHistograms are the demo's RED histograms and span metrics, at their
// real shape: routes × status codes × buckets × instances.
func demoHistograms() []labels.Labels {
	var out []labels.Labels
	les := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	for i, inst := range []string{"127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"} {
		for _, route := range []string{"/products", "/products/{id}", "/orders", "unmatched"} {
			for _, code := range []string{"200", "404", "500", "502"} {
				for _, le := range les {
					out = append(out, labels.FromStrings("__name__", "http_server_request_duration_seconds_bucket", "job", "shop", "instance", inst,
						"method", "GET", "route", route, "status_code", code, "le", le))
				}
			}
		}
		for _, op := range []string{"GET /products", "GET /products/{id}", "POST /orders", "shop.Payments/Charge"} {
			for _, le := range les {
				out = append(out, labels.FromStrings("__name__", "traces_span_metrics_duration_seconds_bucket", "service_name", fmt.Sprint("svc", i),
					"span_name", op, "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET", "le", le))
			}
		}
	}
	return out
}

func TestCardinalityLabels(t *testing.T) {
	tests := []struct {
		name   string
		series []labels.Labels
		want   []string
		// a substring of the first finding's summary and of its fix, and
		// a sample it must show.
		seen, fix, sample string
	}{
		{name: "healthy demo", series: demoHistograms()},
		{
			name:   "raw URL paths",
			series: series("http_requests_total", "path", 150, func(i int) string { return fmt.Sprintf("/users/%d/orders", 1000+i) }, "job", "api", "instance", "a:1"),
			want:   []string{"cardinality_risk http_requests_total{path}"},
			seen:   "the label path of http_requests_total (job api) takes more than 50 distinct values, 51 of those read look like ids",
			fix:    "labeldrop, regex: path}] in the scrape config of api", sample: "/users/1000/orders",
		},
		{
			name:   "UUIDs on a metric that is still small",
			series: series("checkout_sessions_total", "session", 12, func(i int) string { return fmt.Sprintf("%08x-1c2d-4e5f-8a9b-0123456789ab", i) }, "job", "checkout"),
			want:   []string{"cardinality_risk checkout_sessions_total{session}"},
			seen:   "takes 12 distinct values", sample: "00000000-1c2d-4e5f-8a9b-0123456789ab",
		},
		{
			name:   "more values than allowed",
			series: series("cache_requests_total", "key", 60, func(i int) string { return fmt.Sprintf("tenant-%c%c", 'a'+i/26, 'a'+i%26) }, "job", "cache"),
			want:   []string{"cardinality_risk cache_requests_total{key}"},
			seen:   "takes more than 50 distinct values", sample: "tenant-aa",
		},
		{
			name:   "span names with raw paths",
			series: series("traces_span_metrics_calls_total", "span_name", 120, func(i int) string { return fmt.Sprintf("GET /products/%d", i) }, "service_name", "catalog"),
			want:   []string{"cardinality_risk traces_span_metrics_calls_total{span_name}"},
			fix:    "name spans after the route template",
		},
		{
			name:   "many instances are a fleet, not a leak",
			series: series("up", "instance", 200, func(i int) string { return fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250) }, "job", "node"),
		},
		{
			name:   "short numbers outside paths are bounded",
			series: series("http_responses_total", "code", 40, func(i int) string { return fmt.Sprint(100 + i) }, "job", "web"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := teststorage.New(t)
			t.Cleanup(func() { _ = db.Close() })
			now := time.Now()
			appendSeries(t, db, now, append(demoHistograms(), tt.series...))
			c := &CardinalityCheck{Metrics: db, Head: db.Head(), MaxValues: 50, Now: func() time.Time { return now }}
			got, err := c.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f, ok := expectExactly(t, got, tt.want...)
			if !ok {
				return
			}
			if f.Severity != Warning || !strings.Contains(f.Evidence.Summary, tt.seen) || !strings.Contains(f.Fix, tt.fix) ||
				(tt.sample != "" && !slices.Contains(f.Evidence.Samples, tt.sample)) {
				t.Errorf("finding %+v\nwant %q in the summary, %q in the fix, sample %q", f, tt.seen, tt.fix, tt.sample)
			}
		})
	}
}

// scriptedHead replays head sizes, one per run.
type scriptedHead struct {
	runs []headPoint
	i    int
}

func (h *scriptedHead) NumSeries() uint64 { return h.runs[h.i].series }

func (h *scriptedHead) PostingsCardinalityStats(string, int) *index.PostingsStats {
	p := h.runs[h.i]
	var st index.PostingsStats
	for m, n := range p.metrics {
		st.CardinalityMetricsStats = append(st.CardinalityMetricsStats, index.Stat{Name: m, Count: n})
	}
	return &st
}

func TestCardinalityGrowth(t *testing.T) {
	point := func(series uint64, metrics ...any) headPoint {
		p := headPoint{series: series, metrics: map[string]uint64{}}
		for i := 0; i < len(metrics); i += 2 {
			p.metrics[metrics[i].(string)] = uint64(metrics[i+1].(int))
		}
		return p
	}
	tests := []struct {
		name string
		runs []headPoint // one every 5 minutes
		want []string    // findings of the last run
		seen string
	}{
		{"steady size", []headPoint{point(10000, "a", 1000), point(10050, "a", 1020), point(10100, "a", 1050)}, nil, ""},
		{"one metric explodes", []headPoint{point(10000, "a", 1000, "b", 500), point(15000, "a", 5500, "b", 550), point(20000, "a", 10000, "b", 600)},
			[]string{"cardinality_risk a"}, "grew steadily from 10000 to 20000 series in 10m0s (1000 new series a minute)"},
		{"growth spread over metrics", []headPoint{point(10000, "a", 2000, "b", 2000), point(15000, "a", 2500, "b", 2500), point(20000, "a", 3000, "b", 3000)},
			[]string{"cardinality_risk all series"}, "(1000 new series a minute)"},
		{"the ramp after a start is not growth", []headPoint{point(0), point(8000, "a", 1500), point(8100, "a", 1520), point(8150, "a", 1530)}, nil, ""},
		{"nor is a metric appearing at once", []headPoint{point(5000, "a", 10), point(5000, "a", 3000), point(5050, "a", 3010), point(5080, "a", 3020)}, nil, ""},
		{"a metric doubles, the head barely grows", []headPoint{point(100000, "a", 1200), point(100800, "a", 2000), point(101500, "a", 2700)},
			[]string{"cardinality_risk a"}, "more than doubled, from 1200 to 2700"},
		{"head truncation is not growth", []headPoint{point(10000, "a", 1000), point(4000, "a", 500), point(20000, "a", 1000)}, nil, ""},
		{"too short to tell", []headPoint{point(10000, "a", 1000), point(30000, "a", 20000)}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := teststorage.New(t)
			t.Cleanup(func() { _ = db.Close() })
			head := &scriptedHead{runs: tt.runs}
			now := time.Now()
			c := &CardinalityCheck{Metrics: db, Head: head, Now: func() time.Time { return now }}
			var got []Finding
			for i := range tt.runs {
				head.i = i
				var err error
				if got, err = c.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				now = now.Add(5 * time.Minute)
			}
			if f, ok := expectExactly(t, got, tt.want...); ok && !strings.Contains(f.Evidence.Summary, tt.seen) {
				t.Errorf("summary %q, want %q in it", f.Evidence.Summary, tt.seen)
			}
		})
	}
}

func TestIDLike(t *testing.T) {
	for v, want := range map[string]bool{
		"/users/123":                           true,
		"GET /users/123":                       true,
		"/orders/9f86d081884c7d65/items":       true,
		"/search?q=shoes":                      true,
		"0b5c0a3e-7d1f-4c2a-9e8b-3f6a1d2c4b5e": true,
		"4bf92f3577b34da6a3ce929d0e0e4736":     true,
		"1700000000":                           true,
		"jane@example.com":                     true,
		"/products/{id}":                       false,
		"GET /products/{id}":                   false,
		"/v1/users":                            false,
		"shop.Payments/Charge":                 false,
		"127.0.0.1:8081":                       false,
		"0.005":                                false,
		"200":                                  false,
		"deadbeef":                             false,
	} {
		if got := idLike(v); got != want {
			t.Errorf("idLike(%q) = %v, want %v", v, got, want)
		}
	}
}
