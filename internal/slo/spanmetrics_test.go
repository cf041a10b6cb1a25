package slo

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/spanmetrics"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// TestSpanSLIsOverRecordedSpans feeds spans through the recorder that
// writes vigil's span metrics and evaluates the generated span SLIs over
// what it wrote: the label names and values, the kinds counted and the
// bucket bounds must be the recorder's.
func TestSpanSLIsOverRecordedSpans(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	now := time.Now().Truncate(time.Minute)
	rec, err := spanmetrics.New(spanmetrics.Options{Appendable: db, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}

	// Each minute payments serves 10 charges: 1 fails, 1 takes 1s, the rest
	// 100ms. Its client spans all fail slowly and must not count.
	type sp struct {
		kind   ptrace.SpanKind
		status ptrace.StatusCode
		dur    time.Duration
		n      int
	}
	minute := []sp{
		{ptrace.SpanKindServer, ptrace.StatusCodeUnset, 100 * time.Millisecond, 8},
		{ptrace.SpanKindServer, ptrace.StatusCodeError, 100 * time.Millisecond, 1},
		{ptrace.SpanKindServer, ptrace.StatusCodeOk, time.Second, 1},
		{ptrace.SpanKindClient, ptrace.StatusCodeError, 2 * time.Second, 5},
	}
	for range 10 {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "payments")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for _, s := range minute {
			for range s.n {
				span := spans.AppendEmpty()
				span.SetName("POST /charge")
				span.SetKind(s.kind)
				span.Status().SetCode(s.status)
				start := pcommon.NewTimestampFromTime(now.Add(-s.dur))
				span.SetStartTimestamp(start)
				span.SetEndTimestamp(start + pcommon.Timestamp(s.dur))
			}
		}
		rec.RecordSpans(td)
		now = now.Add(time.Minute)
		if err := rec.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	specs, err := Parse([]byte(`
version: prometheus/v1
service: payments
slos:
  - name: errors
    objective: 99
    sli: {spans: {operation: POST /charge}}
    alerting: {name: PaymentsErrors}
  - name: latency
    objective: 99
    sli: {spans: {latency_threshold: 400ms}}
    alerting: {name: PaymentsSlow}
`))
	if err != nil {
		t.Fatal(err)
	}
	groups, err := Generate(specs)
	if err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	query := func(q string) promql.Vector {
		t.Helper()
		qry, err := engine.NewInstantQuery(t.Context(), db, nil, q, now)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer qry.Close()
		res := qry.Exec(t.Context())
		if res.Err != nil {
			t.Fatalf("%s: %v", q, res.Err)
		}
		v, _ := res.Value.(promql.Vector)
		return v
	}

	checked := 0
	for _, g := range groups {
		if !strings.HasPrefix(g.Name, groupSLIPrefix) {
			continue
		}
		// 1 in 10 server spans fails, and 1 in 10 is over 400ms.
		for _, r := range g.Rules {
			if r.Labels[labelWindow] != "5m" {
				continue
			}
			checked++
			got := query(r.Expr)
			if len(got) != 1 || math.Abs(got[0].F-0.1) > 1e-9 {
				t.Errorf("%s: SLI %s = %v, want 0.1", g.Name, r.Expr, got)
			}
		}
	}

	if checked != 2 {
		t.Fatalf("checked %d SLIs, want 2", checked)
	}

	// The thresholds a latency SLI accepts are the recorder's bucket bounds.
	var les []string
	for _, s := range query(`count by (le) (` + spanmetrics.MetricSpanDuration + `_bucket)`) {
		les = append(les, s.Metric.Get("le"))
	}
	var want []string
	for _, b := range LatencyBuckets {
		want = append(want, bucketLabel(b))
	}
	want = append(want, "+Inf")
	slices.Sort(les)
	slices.Sort(want)
	if !slices.Equal(les, want) {
		t.Errorf("recorded le values %v, LatencyBuckets give %v", les, want)
	}
}
