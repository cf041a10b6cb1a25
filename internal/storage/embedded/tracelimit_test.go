package embedded

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// GetTrace under a TraceReadLimit reads the earliest spans up to either
// bound and says it left the rest out. The copies a retried write stores
// count once: a trace written twice is not cut at half the bound.
func TestGetTraceReadLimit(t *testing.T) {
	for _, writes := range []int{1, 2} {
		t.Run(fmt.Sprintf("written %d times", writes), func(t *testing.T) { testGetTraceReadLimit(t, writes) })
	}
}

func testGetTraceReadLimit(t *testing.T, writes int) {
	clock := &fixedClock{time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)}
	s := openAt(t, t.TempDir(), clock, nil)
	id := pcommon.TraceID{9, 9, 9}
	const n = 50
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	// Written latest first, so that keeping the earliest is not luck.
	for i := n - 1; i >= 0; i-- {
		sp := ss.AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(clock.t.Add(time.Duration(i) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(clock.t.Add(time.Duration(i+1) * time.Millisecond)))
		sp.Attributes().PutStr("payload", strings.Repeat("x", 1000))
	}
	for range writes {
		if err := s.WriteTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		limit     storage.TraceReadLimit
		wantSpans int
		truncated bool
	}{
		{"no limit", storage.TraceReadLimit{}, n, false},
		{"span limit", storage.TraceReadLimit{MaxSpans: 10}, 10, true},
		{"span limit not reached", storage.TraceReadLimit{MaxSpans: n}, n, false},
		{"byte limit", storage.TraceReadLimit{MaxBytes: 5000}, -1, true}, // about a kilobyte a span
		{"byte limit below one span keeps one", storage.TraceReadLimit{MaxBytes: 1}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.limit
			got, err := s.GetTrace(storage.WithTraceReadLimit(t.Context(), &lim), id)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantSpans < 0 && got.SpanCount() > 1 && got.SpanCount() <= 5 {
				tc.wantSpans = got.SpanCount()
			}
			if got.SpanCount() != tc.wantSpans || lim.Truncated != tc.truncated {
				t.Fatalf("%d spans, truncated %v; want %d, %v", got.SpanCount(), lim.Truncated, tc.wantSpans, tc.truncated)
			}
			spans := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
			if first := spans.At(0).StartTimestamp().AsTime(); !first.Equal(clock.t) {
				t.Errorf("first span starts at %v, want the earliest, %v", first, clock.t)
			}
		})
	}
}
