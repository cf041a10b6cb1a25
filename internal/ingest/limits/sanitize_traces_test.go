package limits

import (
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testLimits() Limits {
	return Limits{
		MaxAttributeValueLength: 8,
		MaxAttributesPerItem:    3,
		MaxPastAge:              time.Hour,
		MaxFutureSkew:           time.Minute,
	}
}

// goodSpan fills sp with a span that passes every check.
func goodSpan(sp ptrace.Span, name string) {
	sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.SetName(name)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-time.Second)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testNow))
	sp.Attributes().PutStr("k", "v")
}

// oneSpan returns a batch holding a single good span modified by mod.
func oneSpan(mod func(ptrace.Span)) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("lib")
	sp := ss.Spans().AppendEmpty()
	goodSpan(sp, "op")
	if mod != nil {
		mod(sp)
	}
	return td
}

func TestSanitizeTraces(t *testing.T) {
	ts := func(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(testNow.Add(d)) }
	tests := []struct {
		name     string
		mod      func(ptrace.Span)
		dropped  map[string]int
		altered  map[string]int
		validate func(t *testing.T, sp ptrace.Span)
	}{
		{name: "valid span kept unchanged"},
		{
			name:    "zero trace id",
			mod:     func(sp ptrace.Span) { sp.SetTraceID(pcommon.TraceID{}) },
			dropped: map[string]int{ReasonInvalidTraceID: 1},
		},
		{
			name:    "zero span id",
			mod:     func(sp ptrace.Span) { sp.SetSpanID(pcommon.SpanID{}) },
			dropped: map[string]int{ReasonInvalidSpanID: 1},
		},
		{
			name: "end before start",
			mod: func(sp ptrace.Span) {
				sp.SetEndTimestamp(ts(-2 * time.Second))
			},
			dropped: map[string]int{ReasonEndBeforeStart: 1},
		},
		{
			name: "start older than max past age",
			mod: func(sp ptrace.Span) {
				sp.SetStartTimestamp(ts(-2 * time.Hour))
			},
			dropped: map[string]int{ReasonTimestampTooOld: 1},
		},
		{
			name:    "unset timestamps are too old",
			mod:     func(sp ptrace.Span) { sp.SetStartTimestamp(0); sp.SetEndTimestamp(0) },
			dropped: map[string]int{ReasonTimestampTooOld: 1},
		},
		{
			name: "end further in the future than the skew",
			mod: func(sp ptrace.Span) {
				sp.SetStartTimestamp(ts(2 * time.Minute))
				sp.SetEndTimestamp(ts(3 * time.Minute))
			},
			dropped: map[string]int{ReasonTimestampInFuture: 1},
		},
		{
			name: "within the future skew is kept",
			mod: func(sp ptrace.Span) {
				sp.SetStartTimestamp(ts(30 * time.Second))
				sp.SetEndTimestamp(ts(time.Minute))
			},
		},
		{
			name: "long value truncated on a rune boundary",
			// "é" is two bytes: 8 bytes would split the fifth rune.
			mod:     func(sp ptrace.Span) { sp.Attributes().PutStr("k", "aéééééé") },
			altered: map[string]int{ReasonValueTruncated: 1},
			validate: func(t *testing.T, sp ptrace.Span) {
				v, _ := sp.Attributes().Get("k")
				if got := v.Str(); got != "aééé" {
					t.Errorf("truncated value = %q, want %q", got, "aééé")
				}
			},
		},
		{
			name: "long value in a nested array truncated",
			mod: func(sp ptrace.Span) {
				sl := sp.Attributes().PutEmptySlice("list")
				sl.AppendEmpty().SetStr("0123456789")
				sl.AppendEmpty().SetInt(3)
			},
			altered: map[string]int{ReasonValueTruncated: 1},
			validate: func(t *testing.T, sp ptrace.Span) {
				v, _ := sp.Attributes().Get("list")
				if got := v.Slice().At(0).Str(); got != "01234567" {
					t.Errorf("nested value = %q", got)
				}
			},
		},
		{
			name: "attributes past the limit dropped and counted",
			mod: func(sp ptrace.Span) {
				sp.SetDroppedAttributesCount(1)
				for _, k := range []string{"a", "b", "c", "d"} {
					sp.Attributes().PutStr(k, k)
				}
			},
			altered: map[string]int{ReasonTooManyAttributes: 2},
			validate: func(t *testing.T, sp ptrace.Span) {
				if n := sp.Attributes().Len(); n != 3 {
					t.Errorf("kept %d attributes, want 3", n)
				}
				for _, k := range []string{"k", "a", "b"} {
					if _, ok := sp.Attributes().Get(k); !ok {
						t.Errorf("attribute %q (among the first) was dropped", k)
					}
				}
				if got := sp.DroppedAttributesCount(); got != 3 {
					t.Errorf("dropped_attributes_count = %d, want 1+2", got)
				}
			},
		},
		{
			name: "event attributes limited too",
			mod: func(sp ptrace.Span) {
				ev := sp.Events().AppendEmpty()
				ev.SetName("ev")
				for _, k := range []string{"a", "b", "c", "d", "e"} {
					ev.Attributes().PutBool(k, true)
				}
			},
			altered: map[string]int{ReasonTooManyAttributes: 2},
			validate: func(t *testing.T, sp ptrace.Span) {
				ev := sp.Events().At(0)
				if ev.Attributes().Len() != 3 || ev.DroppedAttributesCount() != 2 {
					t.Errorf("event has %d attributes, %d dropped", ev.Attributes().Len(), ev.DroppedAttributesCount())
				}
			},
		},
		{
			name: "invalid UTF-8 repaired in name, key, value, event and status",
			mod: func(sp ptrace.Span) {
				sp.SetName("a\xffb")
				sp.Attributes().Remove("k")
				sp.Attributes().PutStr("k\xfe", "v\xc3")
				sp.Events().AppendEmpty().SetName("\xff")
				sp.Status().SetMessage("bad\xff")
			},
			altered: map[string]int{ReasonInvalidUTF8: 5},
			validate: func(t *testing.T, sp ptrace.Span) {
				if sp.Name() != "a\uFFFDb" {
					t.Errorf("name = %q", sp.Name())
				}
				v, ok := sp.Attributes().Get("k\uFFFD")
				if !ok || v.Str() != "v\uFFFD" {
					t.Errorf("attributes = %v", sp.Attributes().AsRaw())
				}
				if sp.Events().At(0).Name() != "\uFFFD" || sp.Status().Message() != "bad\uFFFD" {
					t.Errorf("event %q status %q", sp.Events().At(0).Name(), sp.Status().Message())
				}
			},
		},
		{
			name: "invalid UTF-8 and too long: repaired then truncated",
			mod:  func(sp ptrace.Span) { sp.Attributes().PutStr("k", "\xff\xff0123456789") },
			altered: map[string]int{
				ReasonInvalidUTF8:    1,
				ReasonValueTruncated: 1,
			},
			validate: func(t *testing.T, sp ptrace.Span) {
				v, _ := sp.Attributes().Get("k")
				if got := v.Str(); got != "\uFFFD01234" || !utf8.ValidString(got) {
					t.Errorf("value = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := oneSpan(tt.mod)
			r := testLimits().SanitizeTraces(td, testNow)
			wantRejected := 0
			for _, n := range tt.dropped {
				wantRejected += n
			}
			if r.Rejected != wantRejected {
				t.Errorf("Rejected = %d, want %d", r.Rejected, wantRejected)
			}
			if !maps.Equal(r.Dropped, tt.dropped) {
				t.Errorf("Dropped = %v, want %v", r.Dropped, tt.dropped)
			}
			if !maps.Equal(r.Altered, tt.altered) {
				t.Errorf("Altered = %v, want %v", r.Altered, tt.altered)
			}
			if got, want := td.SpanCount(), 1-wantRejected; got != want {
				t.Fatalf("SpanCount = %d, want %d", got, want)
			}
			if wantRejected > 0 {
				if td.ResourceSpans().Len() != 0 {
					t.Errorf("empty resource spans were not removed")
				}
				return
			}
			if tt.validate != nil {
				tt.validate(t, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0))
			}
		})
	}
}

func TestSanitizeTracesKeepsGoodSpansAndPrunesEmptyContainers(t *testing.T) {
	td := ptrace.NewTraces()
	// Resource 0: one scope whose only span is bad, one scope with a good span.
	rs := td.ResourceSpans().AppendEmpty()
	goodSpan(rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty(), "bad")
	rs.ScopeSpans().At(0).Spans().At(0).SetTraceID(pcommon.TraceID{})
	goodSpan(rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty(), "good1")
	// Resource 1: only bad spans.
	rs1 := td.ResourceSpans().AppendEmpty()
	spans := rs1.ScopeSpans().AppendEmpty().Spans()
	goodSpan(spans.AppendEmpty(), "old")
	spans.At(0).SetStartTimestamp(1)
	goodSpan(spans.AppendEmpty(), "old2")
	spans.At(1).SetStartTimestamp(1)
	// Resource 2: a good span between two bad ones.
	spans = td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	goodSpan(spans.AppendEmpty(), "nospan")
	spans.At(0).SetSpanID(pcommon.SpanID{})
	goodSpan(spans.AppendEmpty(), "good2")
	goodSpan(spans.AppendEmpty(), "rev")
	spans.At(2).SetEndTimestamp(spans.At(2).StartTimestamp() - 1)
	// Resource 3: scope with no spans at all.
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()

	r := testLimits().SanitizeTraces(td, testNow)

	if r.Rejected != 5 {
		t.Errorf("Rejected = %d, want 5", r.Rejected)
	}
	want := map[string]int{ReasonInvalidTraceID: 1, ReasonInvalidSpanID: 1, ReasonTimestampTooOld: 2, ReasonEndBeforeStart: 1}
	if !maps.Equal(r.Dropped, want) {
		t.Errorf("Dropped = %v, want %v", r.Dropped, want)
	}
	var names []string
	for _, rs := range td.ResourceSpans().All() {
		if rs.ScopeSpans().Len() == 0 {
			t.Errorf("resource without scopes kept")
		}
		for _, ss := range rs.ScopeSpans().All() {
			if ss.Spans().Len() == 0 {
				t.Errorf("scope without spans kept")
			}
			for _, sp := range ss.Spans().All() {
				names = append(names, sp.Name())
			}
		}
	}
	if got := strings.Join(names, ","); got != "good1,good2" {
		t.Errorf("kept spans %s, want good1,good2", got)
	}
	if msg, want := r.Message(), "5 spans rejected: 2 timestamp_too_old, 1 end_before_start, 1 invalid_span_id, 1 invalid_trace_id"; msg != want {
		t.Errorf("Message() = %q\nwant        %q", msg, want)
	}
}

func TestSanitizeTracesResourceAndScope(t *testing.T) {
	td := oneSpan(nil)
	rs := td.ResourceSpans().At(0)
	rs.Resource().Attributes().PutStr("host.name", "a-very-long-host-name")
	for _, k := range []string{"x", "y", "z"} {
		rs.Resource().Attributes().PutInt(k, 1)
	}
	rs.ScopeSpans().At(0).Scope().SetVersion("1\xff")

	r := testLimits().SanitizeTraces(td, testNow)

	want := map[string]int{ReasonValueTruncated: 1, ReasonTooManyAttributes: 2, ReasonInvalidUTF8: 1}
	if !maps.Equal(r.Altered, want) {
		t.Errorf("Altered = %v, want %v", r.Altered, want)
	}
	if r.Rejected != 0 || td.SpanCount() != 1 {
		t.Errorf("Rejected = %d, SpanCount = %d", r.Rejected, td.SpanCount())
	}
	if got := rs.Resource().DroppedAttributesCount(); got != 2 {
		t.Errorf("resource dropped_attributes_count = %d", got)
	}
	if got := rs.ScopeSpans().At(0).Scope().Version(); got != "1\uFFFD" {
		t.Errorf("scope version = %q", got)
	}
}

func TestSanitizeTracesDefaultsApply(t *testing.T) {
	// The zero Limits uses Defaults: a 1 KiB value and a span from a day ago pass.
	td := oneSpan(func(sp ptrace.Span) {
		sp.Attributes().PutStr("k", strings.Repeat("x", 1024))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-24 * time.Hour)))
	})
	if r := (Limits{}).SanitizeTraces(td, testNow); !r.Empty() {
		t.Errorf("report = %+v, want empty", r)
	}
}

func TestSanitizeTracesCleanBatchDoesNotAllocate(t *testing.T) {
	td := benchTraces(10, 10)
	l := testLimits()
	l.MaxAttributeValueLength = 1024
	l.MaxAttributesPerItem = 16
	allocs := testing.AllocsPerRun(20, func() {
		if r := l.SanitizeTraces(td, testNow); !r.Empty() {
			t.Fatalf("clean batch reported %+v", r)
		}
	})
	if allocs != 0 {
		t.Errorf("SanitizeTraces on a clean batch allocated %v times, want 0", allocs)
	}
}

func benchTraces(resources, spansPer int) ptrace.Traces {
	td := ptrace.NewTraces()
	for range resources {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("lib")
		for i := range spansPer {
			sp := ss.Spans().AppendEmpty()
			goodSpan(sp, "operation")
			sp.Attributes().PutInt("i", int64(i))
			sp.Attributes().PutStr("http.route", "/api/v1/items/{id}")
			ev := sp.Events().AppendEmpty()
			ev.SetName("event")
			ev.Attributes().PutStr("k", "v")
		}
	}
	return td
}

func BenchmarkSanitizeTracesClean(b *testing.B) {
	td := benchTraces(10, 100)
	l := Defaults()
	b.ReportAllocs()
	for b.Loop() {
		l.SanitizeTraces(td, testNow)
	}
	b.ReportMetric(float64(b.N)*float64(td.SpanCount())/b.Elapsed().Seconds(), "spans/s")
}
