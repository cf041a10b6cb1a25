package traceassembly

import (
	"strconv"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var traceID = pcommon.TraceID{1, 15: 1}

func row(span uint64, start, dur int64, attrs string) Row {
	return Row{SpanID: span, Start: start, Duration: dur, Name: "op", Attributes: attrs, Service: "svc"}
}

// spanSummary renders the spans of td as "id:end:attrs" in order.
func spanSummary(t *testing.T, td ptrace.Traces) []string {
	t.Helper()
	var out []string
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				out = append(out, sp.SpanID().String()+":"+strconv.FormatUint(uint64(sp.EndTimestamp()), 10)+":"+sp.Attributes().AsRaw()["v"].(string))
			}
		}
	}
	return out
}

func TestAssemblerMergesCopies(t *testing.T) {
	a1 := row(1, 100, 10, `{"v":"a1"}`)
	a2 := row(1, 100, 20, `{"v":"a2"}`) // ends later: wins
	a3 := row(1, 100, 20, `{"v":"a3"}`) // ends with a2, greater content: wins
	b := row(2, 50, 5, `{"v":"b"}`)
	for _, tc := range []struct {
		name string
		rows []Row
		want []string
	}{
		{"one copy", []Row{a1, b}, []string{"0000000000000002:55:b", "0000000000000001:110:a1"}},
		{"identical copies", []Row{a1, b, a1, b}, []string{"0000000000000002:55:b", "0000000000000001:110:a1"}},
		{"later end wins, written last", []Row{a1, b, a2}, []string{"0000000000000002:55:b", "0000000000000001:120:a2"}},
		{"later end wins, written first", []Row{a2, b, a1}, []string{"0000000000000002:55:b", "0000000000000001:120:a2"}},
		{"equal ends fall back to content", []Row{a3, a2, b}, []string{"0000000000000002:55:b", "0000000000000001:120:a3"}},
		{"equal ends fall back to content, other order", []Row{a2, a3, b}, []string{"0000000000000002:55:b", "0000000000000001:120:a3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asm := New(traceID, Limits{})
			for _, r := range tc.rows {
				if !asm.Add(r) {
					t.Fatal("Add refused a row without limits")
				}
			}
			td, err := asm.Traces()
			if err != nil {
				t.Fatal(err)
			}
			got := spanSummary(t, td)
			if len(got) != len(tc.want) {
				t.Fatalf("spans %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("spans %v, want %v", got, tc.want)
				}
			}
			if n := td.ResourceSpans().Len(); n != 1 {
				t.Errorf("%d resources, want 1", n)
			}
		})
	}
}

func TestAssemblerLimits(t *testing.T) {
	small := func(id uint64) Row { return row(id, int64(id), 1, "") } // Size is RowOverhead+2
	big := Row{SpanID: 9, Attributes: string(make([]byte, 1000))}
	for _, tc := range []struct {
		name      string
		limits    Limits
		rows      []Row
		wantSpans int
		refused   bool
	}{
		{"unbounded", Limits{}, []Row{small(1), small(2), small(3)}, 3, false},
		{"span bound", Limits{MaxSpans: 2}, []Row{small(1), small(2), small(3)}, 2, true},
		{"copies do not count", Limits{MaxSpans: 2}, []Row{small(1), small(1), small(2), small(2)}, 2, false},
		{"byte bound", Limits{MaxBytes: 2 * (RowOverhead + 2)}, []Row{small(1), small(2), small(3)}, 2, true},
		{"copies do not count against bytes", Limits{MaxBytes: 2 * (RowOverhead + 2)}, []Row{small(1), small(1), small(2)}, 2, false},
		{"first span kept whatever its size", Limits{MaxBytes: 10}, []Row{big, small(1)}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asm := New(traceID, tc.limits)
			refused := false
			for _, r := range tc.rows {
				if !asm.Add(r) {
					refused = true
					break
				}
			}
			if asm.Spans() != tc.wantSpans || refused != tc.refused {
				t.Errorf("%d spans, refused %v; want %d, %v", asm.Spans(), refused, tc.wantSpans, tc.refused)
			}
		})
	}
}

// Restore and Service put back what backends keep in columns of their own.
func TestAssemblerRestores(t *testing.T) {
	asm := New(traceID, Limits{})
	r := row(1, 0, 1, `{"v":"x"}`)
	r.Restore = func(m pcommon.Map) { m.PutStr("http.route", "/a") }
	asm.Add(r)
	td, err := asm.Traces()
	if err != nil {
		t.Fatal(err)
	}
	rs := td.ResourceSpans().At(0)
	if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != "svc" {
		t.Errorf("service.name = %q, want svc", v.Str())
	}
	sp := rs.ScopeSpans().At(0).Spans().At(0)
	if v, _ := sp.Attributes().Get("http.route"); v.Str() != "/a" {
		t.Errorf("http.route = %q, want /a", v.Str())
	}
	if sp.TraceID() != traceID {
		t.Errorf("trace id %v, want %v", sp.TraceID(), traceID)
	}
}

func TestSummarizer(t *testing.T) {
	other := pcommon.TraceID{2}
	s := NewSummarizer()
	for _, r := range []SummaryRow{
		{TraceID: traceID, SpanID: 1, Start: 100, Duration: 50, Service: "a", Name: "root"},
		{TraceID: traceID, SpanID: 1, Start: 100, Duration: 50, Service: "a", Name: "root"}, // retried
		{TraceID: traceID, SpanID: 2, ParentID: 1, Start: 110, Duration: 10, Service: "b", Name: "x"},
		{TraceID: traceID, SpanID: 2, ParentID: 1, Start: 110, Duration: 20, Service: "b", Name: "x", StatusCode: uint8(ptrace.StatusCodeError)}, // wins
		{TraceID: other, SpanID: 5, Start: 300, Duration: 1, Service: "c", Name: "late root"},
		{TraceID: other, SpanID: 6, Start: 200, Duration: 1, Service: "c", Name: "early root"},
	} {
		s.Add(r)
	}
	sums := s.Summaries([]pcommon.TraceID{other, {9}, traceID})
	if len(sums) != 2 || sums[0].TraceID != other || sums[1].TraceID != traceID {
		t.Fatalf("summaries %+v, want other then traceID", sums)
	}
	if got := sums[0]; got.RootName != "early root" || got.SpanCount != 2 || got.Duration != 101 {
		t.Errorf("other: %+v; want root \"early root\", 2 spans, 101ns", got)
	}
	if got := sums[1]; got.SpanCount != 2 || got.ErrorCount != 1 || got.RootName != "root" || len(got.Services) != 2 || got.Services[1].Errors != 1 {
		t.Errorf("trace: %+v; want 2 spans, 1 error (b's), root \"root\"", got)
	}
}
