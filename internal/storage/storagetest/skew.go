package storagetest

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// FutureSkew is how far ahead of now the suite dates spans and logs: more
// than a day, so that a backend routing rows into day partitions stores
// them in a day file other than their own. A backend with a future-skew
// option must be opened allowing at least this much.
const FutureSkew = 50 * time.Hour

// skewedItem is a span and a log record dated away from now.
type skewedItem struct {
	name string
	at   time.Time
	id   pcommon.TraceID
}

func skewedItems(now time.Time) []skewedItem {
	return []skewedItem{
		{"future", now.Add(FutureSkew), pcommon.TraceID{0x5e, 1, 15: 1}},
		{"past", now.Add(-3 * 24 * time.Hour), pcommon.TraceID{0x5e, 2, 15: 1}},
		{"now", now, pcommon.TraceID{0x5e, 3, 15: 1}},
	}
}

func writeSkewed(t *testing.T, s storage.SpanLogStore, items []skewedItem) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "skewed")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "skewed")
	recs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for _, it := range items {
		sp := spans.AppendEmpty()
		sp.SetTraceID(it.id)
		sp.SetSpanID(pcommon.SpanID{1})
		sp.SetName(it.name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(it.at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(it.at.Add(time.Millisecond)))
		lr := recs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(it.at))
		lr.SetTraceID(it.id)
		lr.Body().SetStr("skewed " + it.name)
	}
	mustWriteTraces(t, s, td)
	mustWriteLogs(t, s, ld)
}

// checkSkewed finds each item by id and by a search window around its
// own timestamp, and not by a window just before it.
func checkSkewed(t *testing.T, s storage.SpanLogStore, items []skewedItem) {
	t.Helper()
	for _, it := range items {
		if _, err := s.GetTrace(t.Context(), it.id); err != nil {
			t.Errorf("%s: GetTrace: %v", it.name, err)
		}
		for _, w := range []struct {
			name       string
			start, end time.Time
			want       bool
		}{
			{"around", it.at.Add(-time.Minute), it.at.Add(time.Minute), true},
			{"open end", it.at.Add(-time.Minute), time.Time{}, true},
			{"before", it.at.Add(-2 * time.Minute), it.at.Add(-time.Minute), false},
		} {
			got, err := s.FindTraces(t.Context(), storage.TraceQuery{Service: "skewed", Start: w.start, End: w.end})
			if err != nil {
				t.Fatalf("%s: FindTraces(%s): %v", it.name, w.name, err)
			}
			found := false
			for _, sum := range got {
				found = found || sum.TraceID == it.id
			}
			if found != w.want {
				t.Errorf("%s: FindTraces window %s [%s, %s): found = %v, want %v (got %v)",
					it.name, w.name, w.start.Format(time.RFC3339), w.end.Format(time.RFC3339), found, w.want, traceIDs(got))
			}
			logs := collect(t, s, storage.LogQuery{Service: "skewed", Start: w.start, End: w.end})
			found = false
			for _, r := range logs {
				found = found || r.Body == "skewed "+it.name
			}
			if found != w.want {
				t.Errorf("%s: FindLogs window %s: found = %v, want %v (got %s)", it.name, w.name, found, w.want, bodies(logs))
			}
		}
	}
}

func bodies(recs []storage.LogRecord) string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Body
	}
	return fmt.Sprint(out)
}

// testSkewedTimes: spans and logs dated FutureSkew ahead (stored, by a
// backend with day partitions, in the next day's file) or days back are
// found by id and by a time window around their timestamp.
func testSkewedTimes(t *testing.T, s storage.SpanLogStore, _ time.Time) {
	defer s.Close()
	items := skewedItems(time.Now())
	writeSkewed(t, s, items)
	checkSkewed(t, s, items)
}
