package doctor

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
)

func TestTraceLogsCheck(t *testing.T) {
	missing := func(n int) []pcommon.TraceID {
		var ids []pcommon.TraceID
		for i := range min(n, MaxSamples) {
			ids = append(ids, pcommon.TraceID{0xcc, byte(i + 1)})
		}
		return ids
	}
	row := func(svc string, ids, miss int64) storage.ServiceLogTraces {
		return storage.ServiceLogTraces{Service: svc, TraceIDs: ids, Missing: miss, Samples: missing(int(miss))}
	}
	tests := []struct {
		scenario string
		coverage []storage.ServiceLogTraces
		want     []string
		// text is found in the first finding's cause or fix.
		text []string
	}{
		{
			scenario: "head sampling keeps a tenth of the traces whose ids orders logs",
			coverage: []storage.ServiceLogTraces{row("catalog", 400, 2), row("orders", 300, 270)},
			want:     []string{"trace_logs_mismatch orders"},
			text:     []string{"head sampling", "IsSampled()"},
		},
		{
			scenario: "a service logs trace ids but exports no spans",
			coverage: []storage.ServiceLogTraces{row("billing", 120, 120)},
			want:     []string{"trace_logs_mismatch billing"},
			text:     []string{"none of the traces", "OTEL_EXPORTER_OTLP_ENDPOINT"},
		},
		{
			scenario: "exporter drops some spans of two services",
			coverage: []storage.ServiceLogTraces{row("catalog", 200, 40), row("gateway", 500, 100)},
			want:     []string{"trace_logs_mismatch catalog", "trace_logs_mismatch gateway"},
		},
		{scenario: "healthy: every trace arrives", coverage: []storage.ServiceLogTraces{row("catalog", 400, 0), row("orders", 300, 0)}},
		{scenario: "healthy: a few traces at the edges are missing", coverage: []storage.ServiceLogTraces{row("orders", 300, 9)}},
		{scenario: "too few trace ids to judge", coverage: []storage.ServiceLogTraces{row("admin", 12, 12)}},
		{scenario: "no logs with trace ids"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			fake := &fakeDiagnosis{coverage: tt.coverage}
			got, err := TraceLogsCheck{Coverage: fake, Now: func() time.Time { return testNow }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := storage.LogTraceQuery{
				Start: testNow.Add(-16 * time.Minute), End: testNow.Add(-time.Minute),
				SpanStart: testNow.Add(-21 * time.Minute), SpanEnd: testNow,
			}
			if fake.logQuery != want {
				t.Errorf("query %+v, want %+v", fake.logQuery, want)
			}
			expectFindings(t, got, tt.want...)
			for _, f := range got {
				checkTraceFinding(t, f)
				if f.Evidence.Values["missing"] > 0 && !strings.HasPrefix(f.Evidence.Samples[0], "cc01") {
					t.Errorf("samples %v, want the missing trace ids", f.Evidence.Samples)
				}
				t.Logf("%s: %s\n  cause %s\n  fix %s", f.Subject, f.Evidence.Summary, f.Cause, f.Fix)
			}
			if len(got) > 0 {
				all := got[0].Cause + " " + got[0].Fix
				for _, w := range tt.text {
					if !strings.Contains(all, w) {
						t.Errorf("finding lacks %q:\n%s", w, all)
					}
				}
			}
		})
	}
}
