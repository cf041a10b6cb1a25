package embedded

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// diagnosisBenchStore holds 300k generated spans, every one a server or
// client span with network attributes (the worst case for Peer), and 300k
// logs of which half name a stored trace. It returns the middle third of
// the time they cover, about 100k spans.
func diagnosisBenchStore(b *testing.B) (*SpanLogStore, time.Time, time.Time) {
	b.Helper()
	s := openBenchStore(b)
	t0 := time.Now().Add(-time.Hour)
	gen := storagetest.NewSpanGen(4, t0)
	ctx := context.Background()
	var ids []pcommon.TraceID
	for range 600 {
		td := gen.Traces(benchBatch)
		if err := s.WriteTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
		for _, rs := range td.ResourceSpans().All() {
			for _, sp := range rs.ScopeSpans().At(0).Spans().All() {
				if len(ids) == 0 || ids[len(ids)-1] != sp.TraceID() {
					ids = append(ids, sp.TraceID())
				}
			}
		}
	}
	t1 := gen.At
	// Logs over the same time, half of them naming a stored trace of
	// about their time (the generator makes a trace per ~10 logs' time),
	// the others none.
	lgen := storagetest.NewSpanGen(5, t0)
	k := 0
	for range 600 {
		ld := lgen.Logs(benchBatch)
		for _, rl := range ld.ResourceLogs().All() {
			for _, lr := range rl.ScopeLogs().At(0).LogRecords().All() {
				lr.SetTraceID(pcommon.TraceID{})
				if k%2 == 0 {
					lr.SetTraceID(ids[min(k/10, len(ids)-1)])
				}
				k++
			}
		}
		if err := s.WriteLogs(ctx, ld); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	third := t1.Sub(t0) / 3
	return s, t0.Add(third), t0.Add(2 * third)
}

func BenchmarkDiagnosis(b *testing.B) {
	s, from, to := diagnosisBenchStore(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		limit int
	}{{"SpanShapes", 0}, {"SpanShapes/limit=10000", 10000}} {
		b.Run(bc.name, func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				got, err := s.SpanShapes(ctx, storage.SpanShapeQuery{Start: from, End: to, Limit: bc.limit})
				if err != nil {
					b.Fatal(err)
				}
				n = len(got)
			}
			b.ReportMetric(float64(n), "spans")
			b.ReportMetric(float64(cpuTime()-c0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
	b.Run("LogTraceCoverage", func(b *testing.B) {
		var ids, missing int64
		b.ReportAllocs()
		c0 := cpuTime()
		for b.Loop() {
			got, err := s.LogTraceCoverage(ctx, storage.LogTraceQuery{Start: from, End: to, SpanStart: from.Add(-time.Minute), SpanEnd: to.Add(time.Minute)})
			if err != nil {
				b.Fatal(err)
			}
			ids, missing = 0, 0
			for _, c := range got {
				ids += c.TraceIDs
				missing += c.Missing
			}
		}
		b.ReportMetric(float64(ids), "traceids")
		b.ReportMetric(float64(missing), "missing")
		b.ReportMetric(float64(cpuTime()-c0)/1e6/float64(b.N), "cpu-ms/op")
	})
}
