package embedded

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// BenchmarkCountLogs counts about a million records spread over an hour in
// 1-minute bins by one attribute, what
// sum by (http_route) (count_over_time({...}[1m])) asks of a store: all
// streams, with and without a body filter, and without the attribute.
// records/s is the records in range per second, counted or not.
func BenchmarkCountLogs(b *testing.B) {
	const n = 1 << 20
	s := openBenchStore(b)
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-time.Hour)
	gen := storagetest.NewSpanGen(7, start)
	ctx := context.Background()
	// SpanGen's records are a few hundred µs apart; spread them over the
	// hour so that there are 60 bins.
	gap := time.Hour / n
	i := 0
	for range n / benchBatch {
		ld := gen.Logs(benchBatch)
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					i++
					lr.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * gap)))
				}
			}
		}
		if err := s.WriteLogs(ctx, ld); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	streams, err := s.LogStreams(ctx, storage.LogQuery{})
	if err != nil {
		b.Fatal(err)
	}
	var keys []string
	for _, st := range streams {
		keys = append(keys, st.Key)
	}
	for _, c := range []struct {
		name     string
		contains []string
		attrs    []string
	}{
		{"by-route", nil, []string{"http.route"}},
		{"by-route/contains", []string{"card declined"}, []string{"http.route"}},
		// 64 thread ids times 8 routes: some 300k groups, whose cost is
		// in returning and merging them rather than in reading records.
		{"by-route-and-thread", nil, []string{"http.route", "thread.id"}},
		// For scale: what reading the attribute costs.
		{"by-stream", nil, nil},
		// The same from an origin off whole seconds, as Grafana's times
		// in milliseconds are: each bin's end cuts a second.
		{"by-stream/ms-origin", nil, nil},
		// Loki's count of all records: one bin over more than the
		// whole day file, from an origin in milliseconds.
		{"all/one-bin", nil, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			from := start
			if strings.HasSuffix(c.name, "ms-origin") {
				from = start.Add(250 * time.Millisecond)
			}
			q := storage.LogCountQuery{Streams: keys, Origin: from, Step: time.Minute, Start: from, End: end,
				Contains: c.contains, Attributes: c.attrs}
			if c.name == "all/one-bin" {
				from = start.Add(-time.Hour - 250*time.Millisecond)
				q.Origin, q.Start, q.Step = from, from, end.Add(time.Minute).Sub(from)
				q.End = from.Add(q.Step)
			}
			var total int64
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.CountLogs(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				total = 0
				for _, c := range got {
					total += c.Entries
				}
				if total == 0 {
					b.Fatal("nothing counted")
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
