package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// maxSearchLimit is the largest limit the Jaeger API passes on.
const maxSearchLimit = 1500

// testManyTraces searches with limits as large as the API allows: the
// query a backend builds must not grow with the number of traces found
// (one UNION branch per trace once exceeded DuckDB's expression depth at
// 1000).
func testManyTraces(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "bulk")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	const n = maxSearchLimit + 10
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond)
		for j := range 2 {
			sp := spans.AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{0xb0, byte(i >> 8), byte(i), 15: 1})
			sp.SetSpanID(pcommon.SpanID{byte(j + 1), byte(i >> 8), byte(i)})
			if j == 1 {
				sp.SetParentSpanID(pcommon.SpanID{1, byte(i >> 8), byte(i)})
			}
			sp.SetName("op")
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
		}
	}
	mustWriteTraces(t, s, td)
	for _, limit := range []int{999, 1000, 1001, maxSearchLimit} {
		got, err := s.FindTraces(t.Context(), storage.TraceQuery{Service: "bulk", Limit: limit})
		if err != nil {
			t.Fatalf("FindTraces(limit=%d): %v", limit, err)
		}
		if len(got) != limit {
			t.Fatalf("FindTraces(limit=%d) = %d traces, want %d", limit, len(got), limit)
		}
		for k, sum := range got {
			i := n - 1 - k // newest first
			if want := (pcommon.TraceID{0xb0, byte(i >> 8), byte(i), 15: 1}); sum.TraceID != want {
				t.Fatalf("limit=%d: trace %d is %s, want %s", limit, k, sum.TraceID, want)
			}
			if sum.SpanCount != 2 || sum.RootService != "bulk" {
				t.Fatalf("limit=%d: trace %d summary = %+v, want 2 spans rooted in bulk", limit, k, sum)
			}
		}
	}
}

// testManyTags: a search may name up to storage.MaxTraceTags tags; more
// are refused as an invalid query rather than sent to the database.
func testManyTags(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	writeAllTraces(t, s, base)
	tags := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("attr.%d", i)] = "v"
		}
		return m
	}
	got, err := s.FindTraces(t.Context(), storage.TraceQuery{Tags: tags(storage.MaxTraceTags)})
	if err != nil || len(got) != 0 {
		t.Errorf("FindTraces(%d tags) = %v, %v; want no match and no error", storage.MaxTraceTags, got, err)
	}
	if _, err := s.FindTraces(t.Context(), storage.TraceQuery{Tags: tags(storage.MaxTraceTags + 1)}); !errors.Is(err, storage.ErrInvalidQuery) {
		t.Errorf("FindTraces(%d tags): err = %v, want ErrInvalidQuery", storage.MaxTraceTags+1, err)
	}
}
