package otlpmetrics

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

type fixture struct {
	md    pmetric.Metrics
	scope pmetric.ScopeMetrics
	ts    pcommon.Timestamp
	start pcommon.Timestamp
}

// newFixture starts a batch for service ns/svc instance id-1, with two
// non-identifying resource attributes that belong in target_info.
func newFixture(at time.Time) *fixture {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.PutStr("service.name", "svc")
	attrs.PutStr("service.namespace", "ns")
	attrs.PutStr("service.instance.id", "id-1")
	attrs.PutStr("host.name", "h1")
	attrs.PutStr("deployment.environment", "prod")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("vigil.test")
	return &fixture{
		md: md, scope: sm,
		ts:    pcommon.NewTimestampFromTime(at),
		start: pcommon.NewTimestampFromTime(at.Add(-time.Minute)),
	}
}

func (f *fixture) metric(name, unit string) pmetric.Metric {
	m := f.scope.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	return m
}

func (f *fixture) gauge(name, unit string, v float64, kv ...string) {
	dp := f.metric(name, unit).SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(f.ts)
	dp.SetDoubleValue(v)
	putAttrs(dp.Attributes(), kv)
}

func (f *fixture) sum(name, unit string, monotonic bool, temporality pmetric.AggregationTemporality, v int64, kv ...string) {
	s := f.metric(name, unit).SetEmptySum()
	s.SetIsMonotonic(monotonic)
	s.SetAggregationTemporality(temporality)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(f.start)
	dp.SetTimestamp(f.ts)
	dp.SetIntValue(v)
	putAttrs(dp.Attributes(), kv)
}

func (f *fixture) histogram(name, unit string, bounds []float64, counts []uint64, sum float64, kv ...string) {
	h := f.metric(name, unit).SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(f.start)
	dp.SetTimestamp(f.ts)
	dp.ExplicitBounds().FromRaw(bounds)
	dp.BucketCounts().FromRaw(counts)
	var n uint64
	for _, c := range counts {
		n += c
	}
	dp.SetCount(n)
	dp.SetSum(sum)
	putAttrs(dp.Attributes(), kv)
}

func (f *fixture) expHistogram(name, unit string) {
	h := f.metric(name, unit).SetEmptyExponentialHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(f.start)
	dp.SetTimestamp(f.ts)
	dp.SetScale(0)
	dp.SetZeroCount(1)
	dp.Positive().SetOffset(0)
	dp.Positive().BucketCounts().FromRaw([]uint64{1, 2}) // (1,2] and (2,4]
	dp.SetCount(4)
	dp.SetSum(7.5)
}

func (f *fixture) summary(name, unit string) {
	dp := f.metric(name, unit).SetEmptySummary().DataPoints().AppendEmpty()
	dp.SetStartTimestamp(f.start)
	dp.SetTimestamp(f.ts)
	dp.SetCount(10)
	dp.SetSum(2)
	for q, v := range map[float64]float64{0.5: 0.1, 0.99: 0.9} {
		qv := dp.QuantileValues().AppendEmpty()
		qv.SetQuantile(q)
		qv.SetValue(v)
	}
}

func putAttrs(m pcommon.Map, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		m.PutStr(kv[i], kv[i+1])
	}
}

type sample struct {
	t int64
	v float64
	h *histogram.Histogram
}

// allSeries reads every series in db, keyed by its labels' string form.
func allSeries(t *testing.T, db storage.Queryable) map[string][]sample {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for ss.Next() {
		key := ss.At().Labels().String()
		it = ss.At().Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out[key] = append(out[key], sample{t: ts, v: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				out[key] = append(out[key], sample{t: ts, h: h})
			}
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const id = `instance="id-1", job="ns/svc"`

func TestConsumeMetricsTranslation(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	reg := prometheus.NewRegistry()
	im := selfobs.NewIngestMetrics(reg)
	c := NewConsumer(Options{Appendable: db, Ingest: im, Registerer: reg})

	at := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	f := newFixture(at)
	f.gauge("system.memory.utilization", "1", 0.5, "system.memory.state", "used")
	f.sum("network.io", "By", true, pmetric.AggregationTemporalityCumulative, 2048, "network.io.direction", "receive")
	f.sum("task.duration", "ms", true, pmetric.AggregationTemporalityCumulative, 1500)
	f.sum("queue.size", "{item}", false, pmetric.AggregationTemporalityCumulative, 7)
	f.histogram("http.server.request.duration", "s", []float64{0.1, 0.5}, []uint64{1, 2, 3}, 2.5, "http.request.method", "GET")
	f.expHistogram("rpc.server.duration", "ms")
	f.summary("db.query.latency", "s")

	if err := c.ConsumeMetrics(t.Context(), f.md); err != nil {
		t.Fatal(err)
	}

	tsMs := at.UnixMilli()
	wantFloats := map[string]float64{
		`{__name__="system_memory_utilization_ratio", ` + id + `, system_memory_state="used"}`:                       0.5,
		`{__name__="network_io_bytes_total", ` + id + `, network_io_direction="receive"}`:                            2048,
		`{__name__="task_duration_milliseconds_total", ` + id + `}`:                                                  1500,
		`{__name__="queue_size", ` + id + `}`:                                                                        7,
		`{__name__="http_server_request_duration_seconds_bucket", http_request_method="GET", ` + id + `, le="0.1"}`:  1,
		`{__name__="http_server_request_duration_seconds_bucket", http_request_method="GET", ` + id + `, le="0.5"}`:  3,
		`{__name__="http_server_request_duration_seconds_bucket", http_request_method="GET", ` + id + `, le="+Inf"}`: 6,
		`{__name__="http_server_request_duration_seconds_sum", http_request_method="GET", ` + id + `}`:               2.5,
		`{__name__="http_server_request_duration_seconds_count", http_request_method="GET", ` + id + `}`:             6,
		`{__name__="db_query_latency_seconds", ` + id + `, quantile="0.5"}`:                                          0.1,
		`{__name__="db_query_latency_seconds", ` + id + `, quantile="0.99"}`:                                         0.9,
		`{__name__="db_query_latency_seconds_sum", ` + id + `}`:                                                      2,
		`{__name__="db_query_latency_seconds_count", ` + id + `}`:                                                    10,
		`{__name__="target_info", deployment_environment="prod", host_name="h1", ` + id + `}`:                        1,
	}
	const nativeKey = `{__name__="rpc_server_duration_milliseconds", ` + id + `}`

	got := allSeries(t, db)
	var gotKeys []string
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	wantKeys := []string{nativeKey}
	for k := range wantFloats {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Fatalf("series differ\n got: %s\nwant: %s", strings.Join(gotKeys, "\n      "), strings.Join(wantKeys, "\n      "))
	}
	for k, want := range wantFloats {
		s := got[k]
		if len(s) != 1 || s[0].t != tsMs || s[0].v != want || s[0].h != nil {
			t.Errorf("%s = %+v, want one float %v at %d", k, s, want, tsMs)
		}
	}
	nh := got[nativeKey]
	if len(nh) != 1 || nh[0].h == nil {
		t.Fatalf("%s = %+v, want one native histogram", nativeKey, nh)
	}
	if h := nh[0].h; h.Schema != 0 || h.Count != 4 || h.Sum != 7.5 || h.ZeroCount != 1 {
		t.Errorf("native histogram = %s, want schema 0 count 4 sum 7.5 zero count 1", h)
	}

	// The classic and native histograms answer PromQL like scraped ones.
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 10000, Timeout: 10 * time.Second, LookbackDelta: lookbackDelta})
	for q, want := range map[string]float64{
		`histogram_quantile(0.5, http_server_request_duration_seconds_bucket)`: 0.5, // rank 3 is the top of (0.1, 0.5]
		`histogram_count(rpc_server_duration_milliseconds)`:                    4,
		`histogram_sum(rpc_server_duration_milliseconds)`:                      7.5,
	} {
		qry, err := engine.NewInstantQuery(t.Context(), db, nil, q, at)
		if err != nil {
			t.Fatal(err)
		}
		res := qry.Exec(t.Context())
		v, err := res.Vector()
		if err != nil || len(v) != 1 || v[0].F != want {
			t.Errorf("%s = %v (err %v), want %v", q, v, err, want)
		}
		qry.Close()
	}

	if stored := testutil.ToFloat64(im.Stored.WithLabelValues("metrics")); stored != float64(len(wantFloats)+1) {
		t.Errorf("vigil_stored_total = %v, want %d", stored, len(wantFloats)+1)
	}
	if received := testutil.ToFloat64(im.Received.WithLabelValues("metrics")); received != float64(len(wantFloats)+1) {
		t.Errorf("vigil_received_total = %v, want %d", received, len(wantFloats)+1)
	}
}

func TestConsumeMetricsRefusals(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	tests := []struct {
		name string
		// prior is consumed first and must succeed.
		prior        func() pmetric.Metrics
		batch        func() pmetric.Metrics
		limits       limits.Limits
		maxSeries    uint64   // limits.LimitSeries around the TSDB when set
		wantSeries   []string // __name__ values that must hold data afterwards
		wantAbsent   []string // __name__ values that must not exist
		wantRejected map[string]int
	}{
		{
			name: "delta sum dropped, the rest stored",
			batch: func() pmetric.Metrics {
				f := newFixture(now)
				f.sum("requests", "", true, pmetric.AggregationTemporalityDelta, 5)
				f.gauge("temperature", "Cel", 21)
				return f.md
			},
			wantSeries:   []string{"temperature_celsius", "target_info"},
			wantAbsent:   []string{"requests_total"},
			wantRejected: map[string]int{limits.ReasonUndecodable: 1},
		},
		{
			name:   "series over the label limits dropped",
			limits: limits.Limits{MaxLabelValueLength: 20, MaxLabelsPerSeries: 5},
			batch: func() pmetric.Metrics {
				f := newFixture(now)
				f.gauge("long_value", "", 1, "a", strings.Repeat("x", 21))
				f.gauge("many_labels", "", 1, "a", "1", "b", "2", "c", "3")
				f.gauge("fine", "", 1, "a", "1")
				return f.md
			},
			wantSeries: []string{"fine", "target_info"},
			wantAbsent: []string{"long_value", "many_labels"},
			wantRejected: map[string]int{
				limits.ReasonLabelValueTooLong: 1,
				limits.ReasonTooManyLabels:     1,
			},
		},
		{
			name: "out of order sample skipped, new one stored",
			prior: func() pmetric.Metrics {
				f := newFixture(now)
				f.gauge("queue_depth", "", 1)
				return f.md
			},
			batch: func() pmetric.Metrics {
				f := newFixture(now.Add(-30 * time.Minute)) // beyond the 10m window
				f.gauge("queue_depth", "", 2)
				g := newFixture(now.Add(time.Second))
				g.gauge("queue_depth", "", 3)
				g.md.ResourceMetrics().MoveAndAppendTo(f.md.ResourceMetrics())
				return f.md
			},
			wantSeries: []string{"queue_depth"},
			// The old gauge sample and its target_info sample.
			wantRejected: map[string]int{limits.ReasonOutOfOrder: 2},
		},
		{
			name: "new series past the series limit refused, existing ones written",
			prior: func() pmetric.Metrics {
				f := newFixture(now)
				f.gauge("existing", "", 1)
				return f.md
			},
			maxSeries: 2, // existing and target_info
			batch: func() pmetric.Metrics {
				f := newFixture(now.Add(time.Second))
				f.gauge("existing", "", 2)
				f.gauge("brand_new", "", 1)
				return f.md
			},
			wantSeries:   []string{"existing", "target_info"},
			wantAbsent:   []string{"brand_new"},
			wantRejected: map[string]int{limits.ReasonSeriesLimit: 1},
		},
		{
			name: "timestamps outside the window dropped before translation",
			batch: func() pmetric.Metrics {
				f := newFixture(now)
				f.gauge("ok_gauge", "", 1)
				old := newFixture(time.Unix(0, 0))
				old.gauge("epoch_gauge", "", 1)
				future := newFixture(now.Add(time.Hour))
				future.gauge("future_gauge", "", 1)
				old.md.ResourceMetrics().MoveAndAppendTo(f.md.ResourceMetrics())
				future.md.ResourceMetrics().MoveAndAppendTo(f.md.ResourceMetrics())
				return f.md
			},
			wantSeries: []string{"ok_gauge", "target_info"},
			wantAbsent: []string{"epoch_gauge", "future_gauge"},
			wantRejected: map[string]int{
				limits.ReasonTimestampTooOld:   1,
				limits.ReasonTimestampInFuture: 1,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
			reg := prometheus.NewRegistry()
			im := selfobs.NewIngestMetrics(reg)
			c := NewConsumer(Options{Appendable: limits.LimitSeries(db, db.Head(), tc.maxSeries), Ingest: im, Limits: tc.limits})
			if tc.prior != nil {
				if err := c.ConsumeMetrics(t.Context(), tc.prior()); err != nil {
					t.Fatal(err)
				}
			}
			report, err := c.Consume(t.Context(), tc.batch())
			if err != nil {
				t.Fatalf("Consume = %v, want nil: refused data must not fail the batch", err)
			}
			names := map[string]int{}
			for k, s := range allSeries(t, db) {
				ls, err := parseName(k)
				if err != nil {
					t.Fatal(err)
				}
				names[ls] += len(s)
			}
			for _, n := range tc.wantSeries {
				if names[n] == 0 {
					t.Errorf("no samples for %s; have %v", n, names)
				}
			}
			for _, n := range tc.wantAbsent {
				if names[n] != 0 {
					t.Errorf("%s stored, want it refused", n)
				}
			}
			total := 0
			for reason, n := range tc.wantRejected {
				total += n
				if report.Dropped[reason] != n {
					t.Errorf("report %v: %s = %d, want %d", report.Dropped, reason, report.Dropped[reason], n)
				}
				if got := testutil.ToFloat64(im.Rejected.WithLabelValues("metrics", reason)); got != float64(n) {
					t.Errorf("vigil_rejected_total{reason=%q} = %v, want %d", reason, got, n)
				}
			}
			if report.Rejected != total {
				t.Errorf("report rejected %d (%s), want %d", report.Rejected, report.Message(), total)
			}
		})
	}
}

// parseName returns __name__ from a labels string form.
func parseName(s string) (string, error) {
	const p = `{__name__="`
	if !strings.HasPrefix(s, p) {
		return "", errors.New("no __name__ in " + s)
	}
	rest := s[len(p):]
	return rest[:strings.IndexByte(rest, '"')], nil
}

// failingAppendable's appenders fail to commit, as on a full disk.
type failingAppendable struct{ storage.AppendableV2 }

var errDisk = errors.New("write wal: no space left on device")

func (f failingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return failingAppender{f.AppendableV2.AppenderV2(ctx)}
}

type failingAppender struct{ storage.AppenderV2 }

func (a failingAppender) Commit() error {
	_ = a.AppenderV2.Rollback()
	return errDisk
}

func TestConsumeMetricsStorageFailure(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	reg := prometheus.NewRegistry()
	im := selfobs.NewIngestMetrics(reg)
	c := NewConsumer(Options{Appendable: failingAppendable{db}, Ingest: im})
	f := newFixture(time.Now())
	f.gauge("g", "", 1)
	err := c.ConsumeMetrics(t.Context(), f.md)
	if !errors.Is(err, ingest.ErrUnavailable) || !errors.Is(err, errDisk) {
		t.Fatalf("ConsumeMetrics = %v, want ErrUnavailable wrapping the disk error", err)
	}
	if got := allSeries(t, db); len(got) != 0 {
		t.Errorf("series stored despite the failed commit: %v", got)
	}
	if got := testutil.ToFloat64(im.Stored.WithLabelValues("metrics")); got != 0 {
		t.Errorf("vigil_stored_total = %v, want 0", got)
	}
}

func TestConsumeMetricsCanceled(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	c := NewConsumer(Options{Appendable: db})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f := newFixture(time.Now())
	f.gauge("g", "", 1)
	if err := c.ConsumeMetrics(ctx, f.md); !errors.Is(err, context.Canceled) {
		t.Fatalf("ConsumeMetrics on a canceled context = %v, want context.Canceled", err)
	}
	if got := allSeries(t, db); len(got) != 0 {
		t.Errorf("series stored for a canceled request: %v", got)
	}
}
