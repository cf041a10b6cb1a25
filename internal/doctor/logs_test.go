package doctor

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/memory"
)

func TestLogsCheck(t *testing.T) {
	st := memory.New()
	defer st.Close()
	now := time.Now()
	td := ptrace.NewTraces()
	for _, svc := range []string{"orders", "catalog"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1})
		sp.SetSpanID(pcommon.SpanID{1})
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute + time.Millisecond)))
	}
	if err := st.WriteTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	ld := plog.NewLogs()
	// orders: 30 logs, 24 without a trace id; catalog: 30 logs, all with;
	// batch (not traced): 30 logs without.
	for svc, withTrace := range map[string]int{"orders": 6, "catalog": 30, "batch": 0} {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", svc)
		recs := rl.ScopeLogs().AppendEmpty().LogRecords()
		for i := range 30 {
			r := recs.AppendEmpty()
			r.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
			r.Body().SetStr("line")
			if i < withTrace {
				r.SetTraceID(pcommon.TraceID{1})
			}
		}
	}
	if err := st.WriteLogs(t.Context(), ld); err != nil {
		t.Fatal(err)
	}
	got, err := LogsCheck{Logs: st, Spans: st, Now: func() time.Time { return now }}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// catalog logs with trace ids, batch sends no traces: only orders.
	expectFindings(t, got, "logs_without_trace orders")
	if len(got) == 1 && got[0].Evidence.Values["ratio"] != 0.8 {
		t.Errorf("ratio %v, want 0.8", got[0].Evidence.Values["ratio"])
	}
	got, err = LogsCheck{Logs: st, Spans: st, Threshold: 0.85, Now: func() time.Time { return now }}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got) // 80% is under the threshold
}
