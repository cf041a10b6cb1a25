package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	vstorage "github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// appendMetricFloats appends one float per series at each timestamp (value:
// series index * 1000 + step) and commits.
func appendMetricFloats(t testing.TB, app storage.AppendableV2, series []labels.Labels, ts ...int64) error {
	t.Helper()
	a := app.AppenderV2(context.Background())
	for step, at := range ts {
		for i, ls := range series {
			if _, err := a.Append(0, ls, 0, at, float64(i*1000+step), nil, nil, storage.AOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a.Commit()
}

func queryMetricVector(t testing.TB, q storage.Queryable, expr string, at time.Time) []string {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewInstantQuery(context.Background(), q, nil, expr, at)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	lines := strings.Split(strings.TrimSpace(res.String()), "\n")
	slices.Sort(lines)
	return lines
}

func queryMetricRange(t testing.TB, q storage.Queryable, expr string, start, end time.Time, step time.Duration) string {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewRangeQuery(context.Background(), q, nil, expr, start, end, step)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(m, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return m.String()
}

func openEmbeddedMetrics(t testing.TB) *tsdb.DB {
	t.Helper()
	db, err := embedded.OpenMetrics(embedded.MetricsOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// The same data in the TSDB and in ClickHouse gives the same answers, for
// selectors SQL evaluates (equality, sets) and those left to Go (regular
// expressions, empty values), over a few hours of data.
func TestMetricStoreMatchesTSDB(t *testing.T) {
	srv := chtest.Start(t)
	ch, _ := openMetricStore(t, srv, "", MetricsOptions{})
	db := openEmbeddedMetrics(t)

	var series []labels.Labels
	for i := range 30 {
		ls := labels.NewBuilder(labels.FromStrings(
			"__name__", []string{"http_requests_total", "rpc_calls_total"}[i%2],
			"job", []string{"shop", "auth", "pay"}[i%3],
			"instance", fmt.Sprintf("host-%d:9100", i%5),
			"path", []string{`/a'b`, `/c\d`, "/"}[i%3],
		))
		if i%4 == 0 {
			ls.Set("canary", "yes")
		}
		series = append(series, ls.Labels())
	}
	start := time.Now().Add(-4 * time.Hour).Truncate(time.Minute)
	var ts []int64
	for at := start; at.Before(start.Add(3 * time.Hour)); at = at.Add(time.Minute) {
		ts = append(ts, at.UnixMilli())
	}
	for _, app := range []storage.AppendableV2{ch, db} {
		if err := appendMetricFloats(t, app, series, ts...); err != nil {
			t.Fatal(err)
		}
	}
	at := start.Add(150 * time.Minute)
	for _, expr := range []string{
		`http_requests_total`,
		`{job="shop"}`,
		`http_requests_total{job!="shop"}`,
		`{__name__=~"http_.*|rpc_.*", job=~"shop|pay"}`,
		`http_requests_total{job!~"shop|pay"}`,
		`http_requests_total{instance=~"host-[12]:.*"}`,
		`rpc_calls_total{canary=""}`,
		`http_requests_total{canary!=""}`,
		`http_requests_total{path="/a'b"}`,
		`http_requests_total{path="/c\\d"}`,
		`sum by (job) (rate(http_requests_total[5m]))`,
		`topk(3, rpc_calls_total)`,
	} {
		want, got := queryMetricVector(t, db, expr, at), queryMetricVector(t, ch, expr, at)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\nclickhouse %q\n      tsdb %q", expr, got, want)
		}
		if len(want) == 0 || want[0] == "" {
			t.Errorf("%s: no result, the case tests nothing", expr)
		}
	}
	for _, tc := range []struct {
		name     string
		matchers []*labels.Matcher
	}{
		{"__name__", nil},
		{"path", nil},
		{"canary", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total")}},
		{"instance", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "job", "sh.*")}},
		{"", nil},
		{"", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "rpc_calls_total")}},
	} {
		var got, want []string
		for i, q := range []storage.Queryable{ch, db} {
			qr, err := q.Querier(ts[0], ts[len(ts)-1])
			if err != nil {
				t.Fatal(err)
			}
			var res []string
			if tc.name == "" {
				res, _, err = qr.LabelNames(t.Context(), nil, tc.matchers...)
			} else {
				res, _, err = qr.LabelValues(t.Context(), tc.name, nil, tc.matchers...)
			}
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				got = res
			} else {
				want = res
			}
		}
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("labels %q %v: clickhouse %q, tsdb %q", tc.name, tc.matchers, got, want)
		}
	}
	expr := `sum by (job) (rate(http_requests_total[10m]))`
	want := queryMetricRange(t, db, expr, start, start.Add(3*time.Hour), time.Minute)
	if got := queryMetricRange(t, ch, expr, start, start.Add(3*time.Hour), time.Minute); got != want {
		t.Errorf("range %s differs:\nclickhouse %.500s\n      tsdb %.500s", expr, got, want)
	}
}

// ClickHouse is append-only: out-of-order samples are kept and of two
// samples of one series and timestamp the one committed last is read.
func TestMetricStoreDuplicatesLastWriteWins(t *testing.T) {
	srv := chtest.Start(t)
	s, _ := openMetricStore(t, srv, "", MetricsOptions{})
	ls := []labels.Labels{labels.FromStrings("__name__", "dup", "job", "x")}
	at := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for _, v := range []float64{1, 2, 3} {
		a := s.AppenderV2(t.Context())
		if _, err := a.Append(0, ls[0], 0, at.UnixMilli(), v, nil, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Older than what is stored: the TSDB would refuse it, the store keeps it.
	if err := appendMetricFloats(t, s, ls, at.Add(-30*time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if got := queryMetricVector(t, s, `dup`, at); !slices.Equal(got, []string{`{__name__="dup", job="x"} => 3 @[` + fmt.Sprint(at.UnixMilli()) + `]`}) {
		t.Errorf("after writing 1, 2, 3 at one timestamp: %q", got)
	}
	if got := queryMetricVector(t, s, `count_over_time(dup[1h])`, at); !slices.Equal(got, []string{`{job="x"} => 2 @[` + fmt.Sprint(at.UnixMilli()) + `]`}) {
		t.Errorf("count_over_time: %q, want the out-of-order sample and one of the duplicates", got)
	}
}

// A cluster keeps each series, index rows and samples, on one shard, and
// spreads the series over the shards.
func TestMetricStoreClusterSharding(t *testing.T) {
	servers := chtest.StartCluster(t, 2)
	s, c := openMetricStore(t, servers[0], chtest.ClusterName, MetricsOptions{})
	var series []labels.Labels
	for i := range 200 {
		series = append(series, labels.FromStrings("__name__", "sharded", "i", fmt.Sprint(i)))
	}
	at := time.Now().Add(-time.Hour).Truncate(time.Minute)
	if err := appendMetricFloats(t, s, series, at.UnixMilli(), at.Add(time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, srv := range servers {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.TCPAddr}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var n, stray uint64
		q := fmt.Sprintf("SELECT uniqExact(id), countIf(id NOT IN (SELECT id FROM %s)) FROM %s", c.LocalTable(metricSeriesTable), c.LocalTable(metricSamplesTable))
		if err := conn.QueryRow(t.Context(), q).Scan(&n, &stray); err != nil {
			t.Fatal(err)
		}
		if n < 50 {
			t.Errorf("shard %s holds %d of 200 series: not spread", srv.TCPAddr, n)
		}
		if stray != 0 {
			t.Errorf("shard %s holds %d samples of series indexed elsewhere", srv.TCPAddr, stray)
		}
		total += int(n)
	}
	if total != 200 {
		t.Errorf("the shards hold %d series, want 200", total)
	}
	if got := queryMetricVector(t, s, `count(sharded)`, at.Add(time.Minute)); !slices.Equal(got, []string{`{} => 200 @[` + fmt.Sprint(at.Add(time.Minute).UnixMilli()) + `]`}) {
		t.Errorf("count(sharded) = %q", got)
	}
}

// Acknowledged samples survive a ClickHouse restart; a commit while the
// server is down fails as unavailable, and the same store works again once
// the server is back.
func TestMetricStoreRestart(t *testing.T) {
	srv := chtest.Start(t)
	s, _ := openMetricStore(t, srv, "", MetricsOptions{})
	ls := []labels.Labels{labels.FromStrings("__name__", "survivor", "job", "x")}
	at := time.Now().Add(-time.Hour).Truncate(time.Minute)
	if err := appendMetricFloats(t, s, ls, at.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err := appendMetricFloats(t, s, ls, at.Add(time.Minute).UnixMilli())
	if !errors.Is(err, vstorage.ErrUnavailable) {
		t.Fatalf("commit while ClickHouse is down: %v, want an error wrapping ErrUnavailable", err)
	}
	q, err := s.Querier(at.UnixMilli(), at.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "survivor")); set.Next() || !errors.Is(set.Err(), vstorage.ErrUnavailable) {
		t.Errorf("select while ClickHouse is down: %v, want an error wrapping ErrUnavailable", set.Err())
	}
	srv.Restart()
	if err := appendMetricFloats(t, s, ls, at.Add(2*time.Minute).UnixMilli()); err != nil {
		t.Fatalf("commit after the restart: %v", err)
	}
	if got := queryMetricVector(t, s, `count_over_time(survivor[10m])`, at.Add(2*time.Minute)); !slices.Equal(got, []string{`{job="x"} => 2 @[` + fmt.Sprint(at.Add(2*time.Minute).UnixMilli()) + `]`}) {
		t.Errorf("after the restart: %q, want the two acknowledged samples", got)
	}
}

// DropBefore drops whole days of samples and of the index, on every shard;
// StartTime follows.
func TestMetricStoreDropBefore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shards int
	}{{"server", 1}, {"cluster", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			servers := chtest.StartCluster(t, tc.shards)
			cluster := ""
			if tc.shards > 1 {
				cluster = chtest.ClusterName
			}
			s, _ := openMetricStore(t, servers[0], cluster, MetricsOptions{})
			if st, err := s.StartTime(); err != nil || st != math.MaxInt64 {
				t.Fatalf("StartTime of an empty store = %d, %v; want MaxInt64", st, err)
			}
			today := time.Now().UTC().Truncate(24 * time.Hour)
			var series []labels.Labels
			for i := range 20 {
				series = append(series, labels.FromStrings("__name__", "kept", "i", fmt.Sprint(i)))
			}
			old := today.Add(-3*24*time.Hour + 5*time.Hour)
			if err := appendMetricFloats(t, s, series, old.UnixMilli(), today.Add(-2*24*time.Hour).UnixMilli(), today.UnixMilli()+1); err != nil {
				t.Fatal(err)
			}
			if st, err := s.StartTime(); err != nil || st != old.UnixMilli() {
				t.Fatalf("StartTime = %d, %v; want %d", st, err, old.UnixMilli())
			}
			n, err := s.DropBefore(t.Context(), today.Add(-24*time.Hour+time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			// Two days, two tables; in a cluster each day is on both shards
			// (20 series spread over two shards).
			if want := 4 * tc.shards; n != want {
				t.Errorf("dropped %d partitions, want %d", n, want)
			}
			if st, err := s.StartTime(); err != nil || st != today.UnixMilli()+1 {
				t.Errorf("StartTime after DropBefore = %d, %v; want %d", st, err, today.UnixMilli()+1)
			}
			q, err := s.Querier(old.UnixMilli(), today.UnixMilli()+1)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "kept"))
			samples := 0
			for set.Next() {
				it := set.At().Iterator(nil)
				for it.Next() != 0 {
					if it.AtT() < today.UnixMilli() {
						t.Errorf("sample at %d survived DropBefore", it.AtT())
					}
					samples++
				}
			}
			if err := set.Err(); err != nil {
				t.Fatal(err)
			}
			if samples != 20 {
				t.Errorf("%d samples after DropBefore, want today's 20", samples)
			}
			if n, err := s.DropBefore(t.Context(), today.Add(-24*time.Hour)); err != nil || n != 0 {
				t.Errorf("second DropBefore dropped %d, %v; want nothing", n, err)
			}
		})
	}
}

// Opening the store again on existing tables keeps the data.
func TestOpenMetricsIdempotent(t *testing.T) {
	srv := chtest.Start(t)
	s, c := openMetricStore(t, srv, "", MetricsOptions{})
	ls := []labels.Labels{labels.FromStrings("__name__", "again")}
	at := time.Now().Add(-time.Hour).Truncate(time.Minute)
	if err := appendMetricFloats(t, s, ls, at.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenMetrics(t.Context(), c, MetricsOptions{})
	if err != nil {
		t.Fatalf("second OpenMetrics: %v", err)
	}
	if got := queryMetricVector(t, s2, `again`, at); len(got) != 1 || !strings.Contains(got[0], "again") {
		t.Errorf("after reopening: %q", got)
	}
}

// One schema definition serves both server generations.
func TestMetricDDL(t *testing.T) {
	for _, tc := range []struct {
		version   string
		cluster   string
		retention time.Duration
		want      []string
		wantNot   []string
	}{
		{"18.16.1", "", 30 * 24 * time.Hour,
			[]string{"metric String", "label_names Array(String)", "ts Int64,", "ReplacingMergeTree(written)", "PARTITION BY day"},
			[]string{"CODEC", "TTL", "LowCardinality", "Distributed"}},
		{"19.8.3", "", 0,
			[]string{"metric LowCardinality(String)", "ts Int64 CODEC(Delta, ZSTD(1))"},
			[]string{"DoubleDelta", "TTL"}},
		{"24.8.4.13", "c1", 36 * time.Hour,
			[]string{"ts Int64 CODEC(DoubleDelta, LZ4)", "value Float64 CODEC(Gorilla, LZ4)", "TTL day + INTERVAL 2 DAY",
				"CREATE TABLE IF NOT EXISTS db.metric_samples_local", "CREATE TABLE IF NOT EXISTS db.metric_samples AS db.metric_samples_local ENGINE = Distributed(c1, db, metric_samples_local, id)"},
			nil},
	} {
		c := &Client{Database: "db", Cluster: tc.cluster, Features: featuresOf(tc.version)}
		ddl, err := metricDDL(c, tc.retention)
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(ddl, "\n")
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: DDL lacks %q:\n%s", tc.version, w, all)
			}
		}
		for _, w := range tc.wantNot {
			if strings.Contains(all, w) {
				t.Errorf("%s: DDL has %q:\n%s", tc.version, w, all)
			}
		}
	}
}

func TestMetricTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{clickhouse.ErrAcquireConnTimeout, true},
		{&clickhouse.Exception{Code: 252, Message: "Too many parts"}, true},
		{&clickhouse.Exception{Code: 62, Message: "Syntax error"}, false},
		{errors.New("clickhouse [AppendRow]: converting string to UInt64 is unsupported"), false},
	} {
		if got := metricTransient(tc.err); got != tc.want {
			t.Errorf("metricTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if got := errors.Is(metricsErr("x", tc.err), vstorage.ErrUnavailable); got != tc.want {
			t.Errorf("metricsErr(%v) is ErrUnavailable: %v, want %v", tc.err, got, tc.want)
		}
	}
}
