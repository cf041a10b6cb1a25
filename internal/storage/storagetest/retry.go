package storagetest

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// testRetriedWrite writes one batch twice, as an exporter does when its
// first attempt was stored but not acknowledged: reads return each span
// once, by id and through search.
func testRetriedWrite(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	td := LoadTraces(t, "traces_rich.json", base)
	mustWriteTraces(t, s, td)
	mustWriteTraces(t, s, td)
	for _, id := range []pcommon.TraceID{RichTraceID, OtherTraceID} {
		got, err := s.GetTrace(t.Context(), id)
		if err != nil {
			t.Fatalf("GetTrace(%s): %v", id, err)
		}
		AssertTracesEqual(t, selectTrace(td, id), got)
	}
	sums, err := s.FindTraces(t.Context(), storage.TraceQuery{})
	if err != nil {
		t.Fatalf("FindTraces: %v", err)
	}
	if len(sums) != 2 {
		t.Fatalf("FindTraces returned %d summaries, want 2: %+v", len(sums), sums)
	}
	for _, sum := range sums {
		want := selectTrace(td, sum.TraceID)
		if sum.SpanCount != want.SpanCount() {
			t.Errorf("summary of %s counts %d spans, want %d", sum.TraceID, sum.SpanCount, want.SpanCount())
		}
		if sum.TraceID == RichTraceID && sum.ErrorCount != 2 {
			t.Errorf("summary of %s counts %d errors, want 2", sum.TraceID, sum.ErrorCount)
		}
	}
}

// testConflictingCopies writes two different spans under one span id. A
// backend cannot tell which was written last (ClickHouse keeps no write
// order), so the one that ends latest wins whatever the order of the
// writes, and every backend returns the same span.
func testConflictingCopies(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	version := func(id pcommon.TraceID, name string, dur time.Duration, status ptrace.StatusCode) ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "retry")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		root := spans.AppendEmpty()
		root.SetTraceID(id)
		root.SetSpanID(pcommon.SpanID{1})
		root.SetName("root")
		root.SetStartTimestamp(pcommon.NewTimestampFromTime(base))
		root.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Second)))
		sp := spans.AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{2})
		sp.SetParentSpanID(pcommon.SpanID{1})
		sp.SetName("work")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Millisecond + dur)))
		sp.Attributes().PutStr("version", name)
		sp.Status().SetCode(status)
		return td
	}
	for _, tc := range []struct {
		name string
		id   pcommon.TraceID
		long bool // write the winner first
	}{
		{"winner last", pcommon.TraceID{0xd0, 15: 1}, false},
		{"winner first", pcommon.TraceID{0xd0, 15: 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			short := version(tc.id, "short", 10*time.Millisecond, ptrace.StatusCodeUnset)
			long := version(tc.id, "long", 20*time.Millisecond, ptrace.StatusCodeError)
			if tc.long {
				mustWriteTraces(t, s, long)
				mustWriteTraces(t, s, short)
			} else {
				mustWriteTraces(t, s, short)
				mustWriteTraces(t, s, long)
			}
			got, err := s.GetTrace(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("GetTrace: %v", err)
			}
			AssertTracesEqual(t, long, got)
		})
	}
	sums, err := s.FindTraces(t.Context(), storage.TraceQuery{Service: "retry"})
	if err != nil {
		t.Fatalf("FindTraces: %v", err)
	}
	if len(sums) != 2 {
		t.Fatalf("FindTraces returned %d summaries, want 2: %+v", len(sums), sums)
	}
	for _, sum := range sums {
		if sum.SpanCount != 2 || sum.ErrorCount != 1 {
			t.Errorf("summary of %s counts %d spans and %d errors, want 2 and 1 (the winning copy's)", sum.TraceID, sum.SpanCount, sum.ErrorCount)
		}
	}
}
