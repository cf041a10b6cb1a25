package embedded

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

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
