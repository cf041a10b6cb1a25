package storagetest

import (
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// steadySpans are one service's server spans, perSecond of them each second
// from `from` until (not including) `to`.
func steadySpans(service, op string, perSecond int, from, to time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	every := time.Second / time.Duration(perSecond)
	for i, at := 0, from; at.Before(to); i, at = i+1, at.Add(every) {
		sp := spans.AppendEmpty()
		var tid [16]byte
		var sid [8]byte
		copy(tid[:], service)
		tid[12], tid[13], tid[14], tid[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		sid[0], sid[4], sid[5], sid[6], sid[7] = 1, byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		sp.SetTraceID(pcommon.TraceID(tid))
		sp.SetSpanID(pcommon.SpanID(sid))
		sp.SetName(op)
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
	}
	return td
}

// testREDCoverage: spans only in the last minutes of an hour's range. Each
// row says where its data begins (First), and the rate over what the rows
// cover (storage.REDCovered) is the rate the spans were sent at, not that
// rate averaged over the whole hour.
func testREDCoverage(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	// shop: 5 requests a second for the last 3 minutes; late: 2 a second
	// for the last minute.
	mustWriteTraces(t, s, steadySpans("shop", "GET /", 5, base.Add(-3*time.Minute), base))
	mustWriteTraces(t, s, steadySpans("late", "GET /", 2, base.Add(-time.Minute), base))
	hour := storage.REDQuery{Start: base.Add(-time.Hour), End: base}
	tests := []struct {
		name      string
		q         storage.REDQuery
		wantFirst map[string]time.Time // by service, or by operation
		wantRate  map[string]float64
	}{
		{"services", hour,
			map[string]time.Time{"shop": base.Add(-3 * time.Minute), "late": base.Add(-time.Minute)},
			// 900 and 120 calls over the 3 minutes that have data
			map[string]float64{"shop": 5, "late": 120.0 / 180}},
		{"operations", storage.REDQuery{Start: hour.Start, End: hour.End, Service: "late", Step: time.Minute},
			map[string]time.Time{"GET /": base.Add(-time.Minute)},
			map[string]float64{"GET /": 2}},
		{"range starting after the data", storage.REDQuery{Start: base.Add(-2 * time.Minute), End: base, Service: "shop"},
			map[string]time.Time{"GET /": base.Add(-2 * time.Minute)},
			map[string]float64{"GET /": 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.RED(t.Context(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.wantFirst) {
				t.Fatalf("RED(%+v) = %d rows %+v, want %d", tt.q, len(got), got, len(tt.wantFirst))
			}
			covered := storage.REDCovered(tt.q, got).Seconds()
			for _, r := range got {
				name := r.Service
				if tt.q.Service != "" {
					name = r.Operation
				}
				if want := tt.wantFirst[name]; !r.First.Equal(want) {
					t.Errorf("%s: First = %v, want %v", name, r.First.UTC(), want)
				}
				rate := float64(r.Calls) / covered
				if want := tt.wantRate[name]; math.Abs(rate-want) > 1e-9 {
					t.Errorf("%s: %d calls over %gs covered = %g/s, want %g/s", name, r.Calls, covered, rate, want)
				}
			}
		})
	}
}
