package limits

import (
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SanitizeTraces validates td in place against l (zero fields meaning their
// defaults) and reports what it did. It drops spans with a zero trace or
// span id, an end before their start, a start older than MaxPastAge or an end
// further than MaxFutureSkew ahead of now; in the spans it keeps it repairs
// invalid UTF-8, truncates long string attribute values and drops the
// attributes past MaxAttributesPerItem (adding them to
// dropped_attributes_count). Scopes and resources left without spans are
// removed. A batch that needs no fixing is not allocated for.
func (l Limits) SanitizeTraces(td ptrace.Traces, now time.Time) Report {
	l = l.WithDefaults()
	r := Report{Item: "spans"}
	s := newValueSanitizer(l, &r)
	w := l.window(now)
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				if reason := w.spanRejection(sp); reason != "" {
					r.Reject(reason, 1)
					return true
				}
				s.span(sp)
				return false
			})
			if ss.Spans().Len() == 0 {
				return true
			}
			s.scope(ss.Scope())
			return false
		})
		if rs.ScopeSpans().Len() == 0 {
			return true
		}
		s.resource(rs.Resource())
		return false
	})
	return r
}

// spanRejection returns why sp must be dropped, or "" to keep it.
func (w timeWindow) spanRejection(sp ptrace.Span) string {
	if sp.TraceID().IsEmpty() {
		return ReasonInvalidTraceID
	}
	if sp.SpanID().IsEmpty() {
		return ReasonInvalidSpanID
	}
	start, end := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
	if end < start {
		return ReasonEndBeforeStart
	}
	return w.check(start, end)
}

// span fixes the strings and attributes of a span that is kept.
func (s valueSanitizer) span(sp ptrace.Span) {
	s.name(sp.Name(), sp.SetName)
	s.traceState(sp.TraceState())
	st := sp.Status()
	s.name(st.Message(), st.SetMessage)
	sp.SetDroppedAttributesCount(addDropped(sp.DroppedAttributesCount(), s.attributes(sp.Attributes())))
	events := sp.Events()
	for i := range events.Len() {
		ev := events.At(i)
		s.name(ev.Name(), ev.SetName)
		ev.SetDroppedAttributesCount(addDropped(ev.DroppedAttributesCount(), s.attributes(ev.Attributes())))
	}
	links := sp.Links()
	for i := range links.Len() {
		ln := links.At(i)
		s.traceState(ln.TraceState())
		ln.SetDroppedAttributesCount(addDropped(ln.DroppedAttributesCount(), s.attributes(ln.Attributes())))
	}
}
