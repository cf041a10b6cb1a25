package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"

	vstorage "github.com/vigil-observability/vigil/internal/storage"
)

// metricEpoch is the fixed time the metric fixtures start at, recent enough
// for any backend's retention.
func metricEpoch() time.Time { return time.Now().Add(-time.Hour).Truncate(time.Minute) }

// RunMetricStore is the conformance suite for metrics backends. Each subtest
// opens a fresh store; open must register its cleanup with t.
func RunMetricStore(t *testing.T, open func(t *testing.T) vstorage.MetricStore) {
	t.Run("PromQLOverAppendedSeries", func(t *testing.T) { testPromQL(t, open(t)) })
	t.Run("RollbackDiscards", func(t *testing.T) { testRollback(t, open(t)) })
	t.Run("LabelNamesAndValues", func(t *testing.T) { testLabels(t, open(t)) })
	t.Run("NativeHistograms", func(t *testing.T) { testHistograms(t, open(t)) })
	t.Run("ConcurrentAppenders", func(t *testing.T) { testConcurrentAppenders(t, open(t)) })
}

// appendSeries appends one float per minute for n minutes from start for
// every series, value = series index * 10 + minute, and commits.
func appendSeries(t *testing.T, s vstorage.MetricStore, start time.Time, minutes int, series ...labels.Labels) {
	t.Helper()
	app := s.AppenderV2(t.Context())
	for m := range minutes {
		ts := start.Add(time.Duration(m) * time.Minute).UnixMilli()
		for i, ls := range series {
			if _, err := app.Append(0, ls, 0, ts, float64(i*10+m), nil, nil, storage.AOptions{}); err != nil {
				t.Fatalf("append %s: %v", ls, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func instantQuery(t *testing.T, s vstorage.MetricStore, q string, at time.Time) promql.Vector {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewInstantQuery(t.Context(), s, nil, q, at)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	defer qry.Close()
	res := qry.Exec(t.Context())
	if res.Err != nil {
		t.Fatalf("query %q: %v", q, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	slices.SortFunc(v, func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) })
	return v
}

func testPromQL(t *testing.T, s vstorage.MetricStore) {
	start := metricEpoch()
	series := []labels.Labels{
		labels.FromStrings("__name__", "http_requests_total", "job", "shop", "code", "200"),
		labels.FromStrings("__name__", "http_requests_total", "job", "shop", "code", "500"),
		labels.FromStrings("__name__", "http_requests_total", "job", "auth", "code", "200"),
	}
	appendSeries(t, s, start, 10, series...)
	at := start.Add(9 * time.Minute)
	for _, tc := range []struct {
		query string
		want  []string // "labels => value"
	}{
		{`http_requests_total{job="shop"}`, []string{
			`{__name__="http_requests_total", code="200", job="shop"} => 9`,
			`{__name__="http_requests_total", code="500", job="shop"} => 19`,
		}},
		{`sum by (job) (http_requests_total)`, []string{`{job="auth"} => 29`, `{job="shop"} => 28`}},
		{`http_requests_total{code!="200"}`, []string{`{__name__="http_requests_total", code="500", job="shop"} => 19`}},
		{`count(http_requests_total{job=~"sh.*"})`, []string{`{} => 2`}},
		{`count(http_requests_total{job!~"sh.*"})`, []string{`{} => 1`}},
		// One per minute over five minutes: 1/60 per second.
		{`rate(http_requests_total{job="auth"}[5m]) * 60`, []string{`{code="200", job="auth"} => 1`}},
		{`http_requests_total{job="nope"}`, nil},
	} {
		var got []string
		for _, smp := range instantQuery(t, s, tc.query, at) {
			got = append(got, fmt.Sprintf("%s => %g", smp.Metric, smp.F))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s\n got %q\nwant %q", tc.query, got, tc.want)
		}
	}
	// Samples before the first one are not visible.
	if v := instantQuery(t, s, `http_requests_total`, start.Add(-time.Minute)); len(v) != 0 {
		t.Errorf("query before the first sample returned %v", v)
	}
}

func testRollback(t *testing.T, s vstorage.MetricStore) {
	start := metricEpoch()
	app := s.AppenderV2(t.Context())
	ls := labels.FromStrings("__name__", "rolled_back", "job", "x")
	if _, err := app.Append(0, ls, 0, start.UnixMilli(), 1, nil, nil, storage.AOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Rollback(); err != nil {
		t.Fatal(err)
	}
	if v := instantQuery(t, s, `rolled_back`, start); len(v) != 0 {
		t.Errorf("rolled back sample is visible: %v", v)
	}
}

func testLabels(t *testing.T, s vstorage.MetricStore) {
	start := metricEpoch()
	appendSeries(t, s, start, 1,
		labels.FromStrings("__name__", "up", "job", "shop", "instance", "a:1"),
		labels.FromStrings("__name__", "up", "job", "auth", "instance", "b:1"),
		labels.FromStrings("__name__", "build_info", "job", "shop", "version", "1.2"),
	)
	q, err := s.Querier(start.Add(-time.Minute).UnixMilli(), start.Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"__name__", "instance", "job", "version"}; !slices.Equal(names, want) {
		t.Errorf("label names %v, want %v", names, want)
	}
	jobs, _, err := q.LabelValues(t.Context(), "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"auth", "shop"}; !slices.Equal(jobs, want) {
		t.Errorf("job values %v, want %v", jobs, want)
	}
	upJobs, _, err := q.LabelValues(t.Context(), "instance", nil, labels.MustNewMatcher(labels.MatchEqual, "job", "shop"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:1"}; !slices.Equal(upJobs, want) {
		t.Errorf("instance values for job=shop %v, want %v", upJobs, want)
	}
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().String())
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.IsSorted(got) {
		t.Errorf("Select(up) = %v, want two sorted series", got)
	}
}

func testHistograms(t *testing.T, s vstorage.MetricStore) {
	start := metricEpoch()
	ls := labels.FromStrings("__name__", "request_duration_seconds", "job", "shop")
	app := s.AppenderV2(t.Context())
	for i := range 3 {
		h := tsdbutil.GenerateTestHistogram(int64(i))
		if _, err := app.Append(0, ls, 0, start.Add(time.Duration(i)*time.Minute).UnixMilli(), 0, h, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	want := tsdbutil.GenerateTestHistogram(2)
	v := instantQuery(t, s, `histogram_count(request_duration_seconds)`, start.Add(2*time.Minute))
	if len(v) != 1 || v[0].F != float64(want.Count) {
		t.Errorf("histogram_count = %v, want %d", v, want.Count)
	}
	v = instantQuery(t, s, `request_duration_seconds`, start.Add(2*time.Minute))
	if len(v) != 1 || v[0].H == nil || !v[0].H.Equals(want.ToFloat(nil)) {
		t.Errorf("histogram read back as %v, want %v", v, want)
	}
}

func testConcurrentAppenders(t *testing.T, s vstorage.MetricStore) {
	start := metricEpoch()
	const writers, per = 4, 50
	errc := make(chan error, writers)
	for w := range writers {
		go func() {
			app := s.AppenderV2(context.Background())
			for i := range per {
				ls := labels.FromStrings("__name__", "concurrent", "writer", fmt.Sprint(w), "i", fmt.Sprint(i))
				if _, err := app.Append(0, ls, 0, start.UnixMilli(), 1, nil, nil, storage.AOptions{}); err != nil {
					errc <- errors.Join(err, app.Rollback())
					return
				}
			}
			errc <- app.Commit()
		}()
	}
	for range writers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	v := instantQuery(t, s, `count(concurrent)`, start)
	if len(v) != 1 || v[0].F != writers*per {
		t.Errorf("count(concurrent) = %v, want %d", v, writers*per)
	}
}
