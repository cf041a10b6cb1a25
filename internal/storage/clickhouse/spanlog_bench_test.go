package clickhouse

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// Batch sizes: 512 as the embedded benchmarks use, and 8192, nearer what
// the ingest pipeline sends (up to 20k) and what ClickHouse prefers.
var benchBatches = []int{512, 8192}

// benchDiskBytes merges every part of the tables (OPTIMIZE FINAL) and
// returns their bytes on disk: what the data costs once ClickHouse's
// background merges caught up.
func benchDiskBytes(b *testing.B, c *Client, tables ...string) float64 {
	b.Helper()
	ctx := context.Background()
	var total uint64
	for _, t := range tables {
		if err := c.Conn.Exec(ctx, "OPTIMIZE TABLE "+c.Table(t)+" FINAL"); err != nil {
			b.Fatal(err)
		}
		var n uint64
		if err := c.Conn.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = ? AND table = ?",
			c.Database, t).Scan(&n); err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return float64(total)
}

// BenchmarkWriteTraces writes unique realistic spans and reports
// throughput (wall clock: the work happens in the server process) and the
// compressed size of spans plus trace index. Use a fixed -benchtime such
// as 100x so bytes/span is measured on enough data.
func BenchmarkWriteTraces(b *testing.B) {
	srv := chtest.Start(b)
	for _, batch := range benchBatches {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, c := openSpanLogs(b, srv, "", SpanLogOptions{})
			gen := storagetest.NewSpanGen(1, time.Now().Add(-time.Hour))
			ctx := context.Background()
			spans := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				td := gen.Traces(batch)
				spans += td.SpanCount()
				b.StartTimer()
				if err := s.WriteTraces(ctx, td); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(benchDiskBytes(b, c, spansTable.name, traceIndexTable.name)/float64(spans), "bytes/span")
		})
	}
}

func BenchmarkWriteLogs(b *testing.B) {
	srv := chtest.Start(b)
	for _, batch := range benchBatches {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, c := openSpanLogs(b, srv, "", SpanLogOptions{})
			gen := storagetest.NewSpanGen(2, time.Now().Add(-time.Hour))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				ld := gen.Logs(batch)
				b.StartTimer()
				if err := s.WriteLogs(ctx, ld); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			n := float64(b.N * batch)
			b.ReportMetric(n/b.Elapsed().Seconds(), "logs/s")
			b.ReportMetric(benchDiskBytes(b, c, logsTable.name)/n, "bytes/log")
		})
	}
}

// benchStore fills a store with 500k spans, as the embedded read
// benchmarks do, and returns the first trace id of every batch.
func benchStore(b *testing.B) (*SpanLogStore, []pcommon.TraceID) {
	b.Helper()
	srv := chtest.Start(b)
	s, c := openSpanLogs(b, srv, "", SpanLogOptions{})
	gen := storagetest.NewSpanGen(3, time.Now().Add(-time.Hour))
	ctx := context.Background()
	var ids []pcommon.TraceID
	for range 1000 / 8 {
		td := gen.Traces(8 * 512)
		if err := s.WriteTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			ids = append(ids, td.ResourceSpans().At(i).ScopeSpans().At(0).Spans().At(0).TraceID())
		}
	}
	benchDiskBytes(b, c, spansTable.name, traceIndexTable.name) // merge, as a store that has run a while
	return s, ids
}

// BenchmarkGetTrace looks traces up in a store holding 500k spans.
func BenchmarkGetTrace(b *testing.B) {
	s, ids := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		got, err := s.GetTrace(ctx, ids[i%len(ids)])
		if err != nil {
			b.Fatal(err)
		}
		if got.SpanCount() == 0 {
			b.Fatal("empty trace")
		}
	}
}

// BenchmarkFindTraces searches the last hour of one service, with and
// without an attribute tag, and of all services with large limits, in a
// store holding 500k spans.
func BenchmarkFindTraces(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	now := time.Now()
	for _, tc := range []struct {
		name string
		q    storage.TraceQuery
	}{
		{"service", storage.TraceQuery{Service: "checkout", Start: now.Add(-2 * time.Hour), End: now.Add(time.Hour)}},
		{"service+error", storage.TraceQuery{Service: "checkout", Tags: map[string]string{"error": "true"}, Start: now.Add(-2 * time.Hour)}},
		{"service+route", storage.TraceQuery{Service: "checkout", Tags: map[string]string{"http.route": "/api/v1/cart"}, Start: now.Add(-2 * time.Hour)}},
		// The largest limits the Jaeger API allows, all services.
		{"limit=900", storage.TraceQuery{Start: now.Add(-2 * time.Hour), Limit: 900}},
		{"limit=1500", storage.TraceQuery{Start: now.Add(-2 * time.Hour), Limit: 1500}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.FindTraces(ctx, tc.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatal("no trace found")
				}
			}
		})
	}
}
