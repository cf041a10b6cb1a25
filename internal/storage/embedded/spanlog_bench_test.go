package embedded

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

const benchBatch = 512

// cpuTime is the CPU time (user+system) of the whole process, DuckDB's
// threads included, so spans/cpu-s is throughput per core regardless of how
// busy the shared machine is.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func openBenchStore(b *testing.B) *SpanLogStore {
	b.Helper()
	s, err := OpenSpanLogStore(context.Background(), SpanLogOptions{Dir: b.TempDir(), Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkWriteTraces writes unique realistic spans in batches of 512 and
// reports throughput and compressed size after a checkpoint. Use a fixed
// -benchtime such as 400x so bytes/span is measured on enough data.
func BenchmarkWriteTraces(b *testing.B) {
	s := openBenchStore(b)
	gen := storagetest.NewSpanGen(1, time.Now().Add(-time.Hour))
	ctx := context.Background()
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		// Fresh data every batch (identical batches would compress too
		// well), generated off the clock and not kept alive, so the heap
		// and GC work stay what a server has.
		b.StopTimer()
		td := gen.Traces(benchBatch)
		b.StartTimer()
		c0 := cpuTime()
		if err := s.WriteTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	b.StopTimer()
	spans := float64(b.N * benchBatch)
	b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(spans/cpu.Seconds(), "spans/cpu-s")
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(s.DiskBytes())/spans, "bytes/span")
}

func BenchmarkWriteLogs(b *testing.B) {
	s := openBenchStore(b)
	gen := storagetest.NewSpanGen(2, time.Now().Add(-time.Hour))
	ctx := context.Background()
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ld := gen.Logs(benchBatch)
		b.StartTimer()
		c0 := cpuTime()
		if err := s.WriteLogs(ctx, ld); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	b.StopTimer()
	n := float64(b.N * benchBatch)
	b.ReportMetric(n/b.Elapsed().Seconds(), "logs/s")
	b.ReportMetric(n/cpu.Seconds(), "logs/cpu-s")
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(s.DiskBytes())/n, "bytes/log")
}

// BenchmarkWriteLogsBatch writes the same records in write batches of
// different sizes: what a commit costs beyond its records. Use a fixed
// -benchtime such as 786432x (records, split into batches).
func BenchmarkWriteLogsBatch(b *testing.B) {
	for _, batch := range []int{512, 1024, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openBenchStore(b)
			gen := storagetest.NewSpanGen(2, time.Now().Add(-time.Hour))
			ctx := context.Background()
			var cpu time.Duration
			n := 0
			b.ResetTimer()
			for n < b.N {
				b.StopTimer()
				ld := gen.Logs(min(batch, b.N-n))
				b.StartTimer()
				c0 := cpuTime()
				if err := s.WriteLogs(ctx, ld); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				n += ld.LogRecordCount()
			}
			b.StopTimer()
			b.ReportMetric(float64(n)/cpu.Seconds(), "logs/cpu-s")
		})
	}
}

// BenchmarkWriteTracesBatch writes spans in write batches of different
// sizes, as BenchmarkWriteLogsBatch does records; 4,000 is what 8
// senders of 500 spans have in flight. Use a fixed -benchtime such as
// 786432x (spans, split into batches).
func BenchmarkWriteTracesBatch(b *testing.B) {
	for _, batch := range []int{512, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openBenchStore(b)
			gen := storagetest.NewSpanGen(3, time.Now().Add(-time.Hour))
			ctx := context.Background()
			var cpu time.Duration
			n := 0
			b.ResetTimer()
			for n < b.N {
				b.StopTimer()
				td := gen.Traces(min(batch, b.N-n))
				b.StartTimer()
				c0 := cpuTime()
				if err := s.WriteTraces(ctx, td); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				n += td.SpanCount()
			}
			b.StopTimer()
			b.ReportMetric(float64(n)/cpu.Seconds(), "spans/cpu-s")
		})
	}
}

// BenchmarkGetTrace looks traces up in a store holding 500k spans.
func BenchmarkGetTrace(b *testing.B) {
	s := openBenchStore(b)
	gen := storagetest.NewSpanGen(3, time.Now().Add(-time.Hour))
	ctx := context.Background()
	var ids []ptrace.Traces
	for range 1000 {
		td := gen.Traces(benchBatch)
		if err := s.WriteTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, td)
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		td := ids[i%len(ids)]
		id := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
		got, err := s.GetTrace(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if got.SpanCount() == 0 {
			b.Fatal("empty trace")
		}
	}
}

// BenchmarkGetTraceRecent reads the traces of the last 50 batches written
// to a store holding 500k spans, as the Jaeger API does (under its read
// limit): held in memory (spanlog_recent.go), and with none held, from
// the day file.
func BenchmarkGetTraceRecent(b *testing.B) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"memory", 0}, {"files", -1}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := OpenSpanLogStore(context.Background(), SpanLogOptions{Dir: b.TempDir(), Threads: 1, RecentTraceBytes: c.bytes})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			gen := storagetest.NewSpanGen(3, time.Now().Add(-time.Hour))
			ctx := context.Background()
			var ids []pcommon.TraceID
			for i := range 1000 {
				td := gen.Traces(benchBatch)
				if err := s.WriteTraces(ctx, td); err != nil {
					b.Fatal(err)
				}
				if i >= 950 {
					ids = append(ids, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID())
				}
			}
			if err := s.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ctx := storage.WithTraceReadLimit(ctx, &storage.TraceReadLimit{MaxSpans: 4096, MaxBytes: 12 << 20})
				got, err := s.GetTrace(ctx, ids[i%len(ids)])
				if err != nil {
					b.Fatal(err)
				}
				if got.SpanCount() == 0 {
					b.Fatal("empty trace")
				}
			}
		})
	}
}

// BenchmarkGetTraceTwoDays looks traces up in a store holding 1M spans
// across a midnight, so in two day files, read with the trace index in
// memory and from the day files' trace_index tables alone.
func BenchmarkGetTraceTwoDays(b *testing.B) {
	dir := b.TempDir()
	midnight := time.Now().UTC().Truncate(24 * time.Hour)
	// About 128 ms of span time per batch: half the batches on each day.
	gen := storagetest.NewSpanGen(4, midnight.Add(-1000*128*time.Millisecond))
	ctx := context.Background()
	s, err := OpenSpanLogStore(ctx, SpanLogOptions{Dir: dir, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	var ids []pcommon.TraceID
	for range 2000 {
		td := gen.Traces(benchBatch)
		if err := s.WriteTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID())
	}
	if n := len(s.snapshot()); n != 2 {
		b.Fatalf("%d day files, want 2", n)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	// "limited" reads as the Jaeger API does, under a TraceReadLimit (the
	// bounds a server with 1 GiB of memory gets), which the trace index's
	// counts show every trace here fits.
	for _, c := range []struct {
		name      string
		locations int
		limited   bool
	}{{"in-memory", 0, false}, {"in-memory/limited", 0, true}, {"tables", -1, false}, {"tables/limited", -1, true}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := OpenSpanLogStore(ctx, SpanLogOptions{Dir: dir, Threads: 1, TraceLocations: c.locations})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			<-s.locsLoaded
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ctx := ctx
				if c.limited {
					ctx = storage.WithTraceReadLimit(ctx, &storage.TraceReadLimit{MaxSpans: 4096, MaxBytes: 12 << 20})
				}
				got, err := s.GetTrace(ctx, ids[i*7%len(ids)])
				if err != nil {
					b.Fatal(err)
				}
				if got.SpanCount() == 0 {
					b.Fatal("empty trace")
				}
			}
		})
	}
}

// BenchmarkFindTracesLimit searches a store holding 500k spans (about
// 60k traces) for the newest traces of all services with the Jaeger API's
// default limit and its largest ones, where the summaries of every trace
// found are read back.
func BenchmarkFindTracesLimit(b *testing.B) {
	s := openBenchStore(b)
	gen := storagetest.NewSpanGen(5, time.Now().Add(-time.Hour))
	ctx := context.Background()
	for range 1000 {
		if err := s.WriteTraces(ctx, gen.Traces(benchBatch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	for _, limit := range []int{20, 900, 1500} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			q := storage.TraceQuery{Start: time.Now().Add(-2 * time.Hour), Limit: limit}
			for b.Loop() {
				got, err := s.FindTraces(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != limit {
					b.Fatalf("%d traces, want %d", len(got), limit)
				}
			}
		})
	}
}

// BenchmarkFindTracesService searches a store holding 500k spans over
// about 15 minutes for the newest 20 traces of one service, and of one
// service and operation, over the last two hours: the Jaeger UI's search,
// where the matching spans are spread over the whole range; and for a
// rare tag, whose few matches take a read of the whole range.
func BenchmarkFindTracesService(b *testing.B) {
	s := openBenchStore(b)
	gen := storagetest.NewSpanGen(7, time.Now().Add(-30*time.Minute))
	ctx := context.Background()
	for range 1000 {
		if err := s.WriteTraces(ctx, gen.Traces(benchBatch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	// A user id matches about 10 spans of the 500k: the search reads the
	// whole range and finds fewer than the limit.
	for _, c := range []struct {
		name, service, operation string
		tags                     map[string]string
		want                     int
	}{
		{"service", "payments", "", nil, 20},
		{"service+operation", "payments", "grpc.Charge", nil, 20},
		{"rare-tag", "", "", map[string]string{"user.id": "u-123"}, -1},
	} {
		q := storage.TraceQuery{Service: c.service, Operation: c.operation, Tags: c.tags, Start: time.Now().Add(-2 * time.Hour), Limit: 20}
		check := func(b *testing.B, n int) {
			if c.want >= 0 && n != c.want || n == 0 {
				b.Fatalf("%d traces, want %d", n, c.want)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.FindTraces(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				check(b, len(got))
			}
		})
		// The ids alone, as Jaeger's /api/traces asks for them.
		b.Run(c.name+"/ids", func(b *testing.B) {
			for b.Loop() {
				got, err := s.FindTraceIDs(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				check(b, len(got))
			}
		})
	}
}

// openLogBenchStore returns a store holding n generated log records
// (SpanGen's, one stream per service), checkpointed.
func openLogBenchStore(b *testing.B, n int) *SpanLogStore {
	b.Helper()
	s := openBenchStore(b)
	gen := storagetest.NewSpanGen(6, time.Now().Add(-time.Hour))
	ctx := context.Background()
	for range n / benchBatch {
		if err := s.WriteLogs(ctx, gen.Logs(benchBatch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkLogStreams lists the streams of about 100k records, as the Loki
// API does before it reads any entry: all of them, and those with a term
// in their bodies.
func BenchmarkLogStreams(b *testing.B) {
	s := openLogBenchStore(b, 100_000)
	ctx := context.Background()
	start := time.Now().Add(-2 * time.Hour)
	for _, c := range []struct {
		name string
		q    storage.LogQuery
	}{
		{"all", storage.LogQuery{Start: start}},
		{"term", storage.LogQuery{Start: start, Terms: []string{"card declined"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.LogStreams(ctx, c.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatal("no streams")
				}
			}
		})
	}
}

// BenchmarkFindLogsStreams reads the entries of one stream of about 100k
// records: the newest 100 (the Loki API's default limit), and all of them
// (about a tenth of the store) with a limit of a million, in both
// directions, which FindLogs reads a page at a time.
func BenchmarkFindLogsStreams(b *testing.B) {
	s := openLogBenchStore(b, 100_000)
	ctx := context.Background()
	streams, err := s.LogStreams(ctx, storage.LogQuery{})
	if err != nil {
		b.Fatal(err)
	}
	one := streams[0]
	for _, c := range []struct {
		name    string
		limit   int
		forward bool
		service bool
		terms   []string
	}{
		{"limit=100", 100, false, false, nil},
		{"limit=100/forward", 100, true, false, nil},
		// The same records selected by their service column, for scale.
		{"limit=100/by-service", 100, false, true, nil},
		// The Loki API's first page of {...} |= "word": a term in about
		// one line in 20.
		{"limit=2000/term", 2000, false, false, []string{"card declined"}},
		{"limit=100/term", 100, false, false, []string{"card declined"}},
		{"limit=1000000", 1_000_000, false, false, nil},
		{"limit=1000000/forward", 1_000_000, true, false, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := storage.LogQuery{Streams: []string{one.Key}, Limit: c.limit, Forward: c.forward, Terms: c.terms}
			if c.service {
				q = storage.LogQuery{Service: one.Service, Limit: c.limit}
			}
			want := min(int64(c.limit), one.Entries)
			if c.terms != nil {
				want = 0 // checked below: some, at most the limit
			}
			var n int64
			b.ReportAllocs()
			for b.Loop() {
				n = 0
				for _, err := range s.FindLogs(ctx, q) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if want > 0 && n != want || want == 0 && (n == 0 || n > int64(c.limit)) {
					b.Fatalf("%d records, want %d", n, want)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
