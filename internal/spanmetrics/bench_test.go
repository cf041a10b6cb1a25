package spanmetrics

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

const benchBatchSpans = 512

// benchBatches returns n batches of 512 spans shaped like a small shop's
// traffic: 64 traces of 8 spans over 5 services, one resource per service,
// with server, client, database, producer and consumer spans and
// HTTP-style attributes. A trace's client spans are in batch k and their
// server children in batch k+1 (cyclically), so that pairing crosses
// batches as it does when services export separately.
func benchBatches(n int) []ptrace.Traces {
	type spanSpec struct {
		service, name string
		kind          ptrace.SpanKind
		parent        int // index in the trace, -1 for the root
		next          bool
	}
	shape := []spanSpec{
		{"gateway", "GET /checkout", ptrace.SpanKindServer, -1, false},
		{"gateway", "GET /cart", ptrace.SpanKindClient, 0, false},
		{"cart", "GET /cart", ptrace.SpanKindServer, 1, true},
		{"cart", "SELECT cart", ptrace.SpanKindClient, 2, true},
		{"gateway", "POST /pay", ptrace.SpanKindClient, 0, false},
		{"payment", "POST /pay", ptrace.SpanKindServer, 4, true},
		{"payment", "receipt publish", ptrace.SpanKindProducer, 5, true},
		{"mailer", "receipt process", ptrace.SpanKindConsumer, 6, true},
	}
	const traces = benchBatchSpans / 8
	batches := make([]ptrace.Traces, n)
	res := make([]map[string]ptrace.SpanSlice, n)
	for k := range batches {
		batches[k] = ptrace.NewTraces()
		res[k] = map[string]ptrace.SpanSlice{}
	}
	spansOf := func(k int, service string) ptrace.SpanSlice {
		if s, ok := res[k][service]; ok {
			return s
		}
		rs := batches[k].ResourceSpans().AppendEmpty()
		attrs := rs.Resource().Attributes()
		attrs.PutStr("service.name", service)
		attrs.PutStr("service.version", "1.4.2")
		attrs.PutStr("host.name", "node-7")
		attrs.PutStr("telemetry.sdk.language", "go")
		s := rs.ScopeSpans().AppendEmpty().Spans()
		res[k][service] = s
		return s
	}
	start := pcommon.NewTimestampFromTime(time.Now())
	for k := range n {
		for tr := range traces {
			var tid pcommon.TraceID
			tid[0], tid[1], tid[2] = byte(k), byte(tr), 0xAB
			for i, sp := range shape {
				batch := k
				if sp.next {
					batch = (k + 1) % n
				}
				s := spansOf(batch, sp.service).AppendEmpty()
				s.SetTraceID(tid)
				s.SetSpanID(pcommon.SpanID{byte(i + 1), byte(tr), byte(k), 1})
				if sp.parent >= 0 {
					s.SetParentSpanID(pcommon.SpanID{byte(sp.parent + 1), byte(tr), byte(k), 1})
				}
				s.SetName(sp.name)
				s.SetKind(sp.kind)
				if tr%20 == 0 {
					s.Status().SetCode(ptrace.StatusCodeError)
				}
				s.SetStartTimestamp(start)
				s.SetEndTimestamp(start + pcommon.Timestamp((tr%40+1)*int(time.Millisecond)))
				a := s.Attributes()
				switch {
				case sp.name == "SELECT cart":
					a.PutStr("db.system.name", "postgresql")
					a.PutStr("db.namespace", "carts")
					a.PutStr("db.query.text", "SELECT * FROM cart WHERE id = $1")
				default:
					a.PutStr("http.request.method", "GET")
					a.PutStr("url.path", "/cart/42")
					a.PutInt("http.response.status_code", 200)
					a.PutStr("server.address", "cart")
					a.PutInt("server.port", 8080)
				}
			}
		}
	}
	for k := range batches {
		if c := batches[k].SpanCount(); c != benchBatchSpans {
			panic(fmt.Sprintf("batch %d has %d spans", k, c))
		}
	}
	return batches
}

// BenchmarkConsumeTraces measures the cost RecordSpans adds to each
// stored span.
func BenchmarkConsumeTraces(b *testing.B) {
	batches := benchBatches(16)
	rec, err := New(Options{Appendable: storagetest.OpenTSDB(b, storagetest.TSDBOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	for _, td := range batches { // warm: series exist, as in a steady state
		rec.RecordSpans(td)
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		rec.RecordSpans(batches[i%len(batches)])
		i++
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	spans := float64(i * benchBatchSpans)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/spans, "allocs/span")
	if rec.pending.len() > 2*benchBatchSpans {
		b.Fatalf("%d halves pending: pairing is broken", rec.pending.len())
	}
}

// BenchmarkConsumeTracesParallel is BenchmarkConsumeTraces from
// GOMAXPROCS goroutines at once, for the cost of contention on the lock.
func BenchmarkConsumeTracesParallel(b *testing.B) {
	batches := benchBatches(16)
	rec, err := New(Options{Appendable: storagetest.OpenTSDB(b, storagetest.TSDBOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	for _, td := range batches {
		rec.RecordSpans(td)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rec.RecordSpans(batches[i%len(batches)])
			i++
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatchSpans), "ns/span")
}

func BenchmarkConsumeLogs(b *testing.B) {
	ld := plog.NewLogs()
	for s := range 4 {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", fmt.Sprintf("service-%d", s))
		records := rl.ScopeLogs().AppendEmpty().LogRecords()
		for i := range benchBatchSpans / 4 {
			lr := records.AppendEmpty()
			lr.SetSeverityNumber(plog.SeverityNumber(i%24 + 1))
			lr.Body().SetStr("request served")
		}
	}
	rec, err := New(Options{Appendable: storagetest.OpenTSDB(b, storagetest.TSDBOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec.RecordLogs(ld)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatchSpans), "ns/record")
}

// BenchmarkFlush appends 1,000 span label sets (20,000 samples) and a few
// edges and log counts per flush.
func BenchmarkFlush(b *testing.B) {
	c := &clock{t: time.Now()}
	rec, err := New(Options{Appendable: storagetest.OpenTSDB(b, storagetest.TSDBOptions{}), Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "api")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range 1000 {
		s := spans.AppendEmpty()
		s.SetName(fmt.Sprintf("GET /route/%d", i))
		s.SetKind(ptrace.SpanKindServer)
	}
	for _, td := range benchBatches(2) {
		rec.RecordSpans(td)
	}
	rec.RecordSpans(td)
	b.ReportAllocs()
	for b.Loop() {
		c.Advance(15 * time.Second)
		if err := rec.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
