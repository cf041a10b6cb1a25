package clickhouse

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
)

const (
	metricBenchSeries   = 1000
	metricBenchInterval = 15 * time.Second
)

func metricBenchLabels() []labels.Labels {
	out := make([]labels.Labels, metricBenchSeries)
	for i := range out {
		out[i] = labels.FromStrings("__name__", "bench_requests_total",
			"job", fmt.Sprintf("job-%d", i%10), "instance", fmt.Sprintf("host-%d:9100", i/10), "code", []string{"200", "404", "500"}[i%3])
	}
	return out
}

// metricBenchLoad appends steps scrapes of every series from start, 15s apart
// with a few ms of jitter, counters growing by a random step, one commit
// per scrape as a scrape loop or a remote_write request does.
func metricBenchLoad(b *testing.B, app storage.AppendableV2, series []labels.Labels, start time.Time, steps int, values []float64) {
	b.Helper()
	for step := range steps {
		a := app.AppenderV2(context.Background())
		base := start.Add(time.Duration(step) * metricBenchInterval).UnixMilli()
		for i, ls := range series {
			values[i] += float64(rand.IntN(100))
			if _, err := a.Append(0, ls, 0, base+int64(rand.IntN(5)), values[i], nil, nil, storage.AOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

type metricBenchStore struct {
	name string
	open func(b *testing.B) (storage.AppendableV2, storage.Queryable, func() float64)
}

// metricBenchStores are the stores compared: ClickHouse and the embedded TSDB.
// The third value reports the bytes per sample on disk after the data is
// compacted (OPTIMIZE FINAL; a compacted TSDB block).
func metricBenchStores() []metricBenchStore {
	return []metricBenchStore{
		{"clickhouse", func(b *testing.B) (storage.AppendableV2, storage.Queryable, func() float64) {
			srv := chtest.Start(b)
			s, c := openMetricStore(b, srv, "", MetricsOptions{})
			return s, s, func() float64 { return metricBytesPerSample(b, c) }
		}},
		{"tsdb", func(b *testing.B) (storage.AppendableV2, storage.Queryable, func() float64) {
			db := openEmbeddedMetrics(b)
			return db, db, func() float64 { return tsdbBytesPerSample(b, db) }
		}},
	}
}

func metricBytesPerSample(b *testing.B, c *Client) float64 {
	ctx := context.Background()
	for _, t := range []string{metricSeriesTable, metricSamplesTable} {
		if err := c.Conn.Exec(ctx, "OPTIMIZE TABLE "+c.Table(t)+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	var bytes, rows uint64
	q := fmt.Sprintf("SELECT sum(bytes_on_disk), sumIf(rows, table = '%s') FROM system.parts WHERE active AND database = '%s' AND table IN ('%s', '%s')",
		metricSamplesTable, c.Database, metricSeriesTable, metricSamplesTable)
	if err := c.Conn.QueryRow(ctx, q).Scan(&bytes, &rows); err != nil {
		b.Fatal(err)
	}
	return float64(bytes) / float64(rows)
}

func tsdbBytesPerSample(b *testing.B, db *tsdb.DB) float64 {
	head := db.Head()
	q, err := db.Querier(head.MinTime(), head.MaxTime())
	if err != nil {
		b.Fatal(err)
	}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	samples := 0
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			samples++
		}
	}
	q.Close()
	if err := db.CompactHead(tsdb.NewRangeHead(head, head.MinTime(), head.MaxTime())); err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, blk := range db.Blocks() {
		_ = filepath.WalkDir(blk.Dir(), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					bytes += info.Size()
				}
			}
			return nil
		})
	}
	return float64(bytes) / float64(samples)
}

// BenchmarkMetricAppend appends scrapes of 1000 series, one commit per
// scrape.
func BenchmarkMetricAppend(b *testing.B) {
	for _, st := range metricBenchStores() {
		b.Run(st.name, func(b *testing.B) {
			app, _, _ := st.open(b)
			series := metricBenchLabels()
			values := make([]float64, len(series))
			start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
			b.ReportAllocs()
			b.ResetTimer()
			metricBenchLoad(b, app, series, start, b.N, values)
			b.StopTimer()
			b.ReportMetric(float64(b.N*metricBenchSeries)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkMetricRangeQuery runs rate over 1000 series × 1h at 15s
// (240k samples), as a dashboard panel does, and reports the bytes per
// sample of that hour on disk.
func BenchmarkMetricRangeQuery(b *testing.B) {
	for _, st := range metricBenchStores() {
		b.Run(st.name, func(b *testing.B) {
			app, q, bytesPerSample := st.open(b)
			series := metricBenchLabels()
			start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
			metricBenchLoad(b, app, series, start, int(time.Hour/metricBenchInterval), make([]float64, len(series)))
			engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				qry, err := engine.NewRangeQuery(context.Background(), q, nil, `sum by (job) (rate(bench_requests_total[5m]))`, start.Add(5*time.Minute), start.Add(time.Hour), time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				res := qry.Exec(context.Background())
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				if m, _ := res.Matrix(); len(m) != 10 {
					b.Fatalf("%d series, want 10", len(m))
				}
				qry.Close()
			}
			b.StopTimer()
			b.ReportMetric(bytesPerSample(), "bytes/sample")
		})
	}
}
