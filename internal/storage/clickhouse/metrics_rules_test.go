package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
)

// ruleAppendable gives the rules manager, which speaks the first appender
// interface, the store's AppenderV2 (vigil's rules package does the same).
type ruleAppendable struct{ storage.AppendableV2 }

type ruleAppender struct {
	storage.Appender // methods rules do not call
	app              storage.AppenderV2
}

func (a ruleAppendable) Appender(ctx context.Context) storage.Appender {
	return &ruleAppender{app: a.AppenderV2(ctx)}
}

func (a *ruleAppender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	return a.app.Append(ref, l, 0, t, v, nil, nil, storage.AOptions{})
}
func (a *ruleAppender) SetOptions(*storage.AppendOptions) {}
func (a *ruleAppender) Commit() error                     { return a.app.Commit() }
func (a *ruleAppender) Rollback() error                   { return a.app.Rollback() }

// Prometheus's rule groups run unchanged over the store: a recording rule
// reads from ClickHouse and writes its result back, where PromQL finds it.
func TestMetricStoreRecordingRule(t *testing.T) {
	srv := chtest.Start(t)
	s, _ := openMetricStore(t, srv, "", MetricsOptions{})
	var series []labels.Labels
	for i := range 6 {
		series = append(series, labels.FromStrings("__name__", "requests_total", "job", fmt.Sprint("job", i%2), "i", fmt.Sprint(i)))
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	var ts []int64
	for m := range 30 {
		ts = append(ts, start.Add(time.Duration(m)*time.Minute).UnixMilli())
	}
	if err := appendMetricFloats(t, s, series, ts...); err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(`sum by (job) (rate(requests_total[5m]))`)
	if err != nil {
		t.Fatal(err)
	}
	group := promrules.NewGroup(promrules.GroupOptions{
		Name:     "test",
		Interval: time.Minute,
		Rules:    []promrules.Rule{promrules.NewRecordingRule("job:requests:rate5m", expr, labels.EmptyLabels())},
		Opts: &promrules.ManagerOptions{
			Appendable: ruleAppendable{s},
			Queryable:  s,
			QueryFunc:  promrules.EngineQueryFunc(engine, s),
			Context:    t.Context(),
		},
	})
	for m := 10; m < 30; m++ {
		group.Eval(t.Context(), start.Add(time.Duration(m)*time.Minute))
	}
	for _, r := range group.Rules() {
		if err := r.LastError(); err != nil {
			t.Fatalf("rule %s: %v", r.Name(), err)
		}
	}
	at := start.Add(29 * time.Minute)
	got := queryMetricVector(t, s, `job:requests:rate5m * 60`, at)
	want := []string{
		fmt.Sprintf(`{job="job0"} => 3 @[%d]`, at.UnixMilli()),
		fmt.Sprintf(`{job="job1"} => 3 @[%d]`, at.UnixMilli()),
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded series:\n got %q\nwant %q", got, want)
	}
	if got := queryMetricVector(t, s, `count_over_time(job:requests:rate5m[30m])`, at); len(got) != 2 || !slices.Contains(got, fmt.Sprintf(`{job="job0"} => 20 @[%d]`, at.UnixMilli())) {
		t.Errorf("twenty evaluations should have written twenty samples per job: %q", got)
	}
}
