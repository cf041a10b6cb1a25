package storagetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

func writeAllTraces(t *testing.T, s storage.SpanLogStore, base time.Time) {
	t.Helper()
	for _, f := range []string{"traces_rich.json", "traces_split_a.json", "traces_split_b.json"} {
		mustWriteTraces(t, s, LoadTraces(t, f, base))
	}
}

func traceIDs(sums []storage.TraceSummary) []pcommon.TraceID {
	var out []pcommon.TraceID
	for _, s := range sums {
		out = append(out, s.TraceID)
	}
	return out
}

func testFindTraces(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	writeAllTraces(t, s, base)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	rich, other, split := RichTraceID, OtherTraceID, SplitTraceID
	tests := []struct {
		name string
		q    storage.TraceQuery
		want []pcommon.TraceID
	}{
		// Ordered by the latest start of a matching span: split's "fetch
		// data" at +3s, other's span at +1s, rich's last at +80ms.
		{"all", storage.TraceQuery{}, []pcommon.TraceID{split, other, rich}},
		{"service", storage.TraceQuery{Service: "checkout"}, []pcommon.TraceID{other, rich}},
		{"service without match", storage.TraceQuery{Service: "nope"}, nil},
		{"service is exact", storage.TraceQuery{Service: "Checkout"}, nil},
		{"operation", storage.TraceQuery{Operation: "publish charge"}, []pcommon.TraceID{rich}},
		{"service and operation of different spans", storage.TraceQuery{Service: "checkout", Operation: "publish charge"}, nil},
		{"tag in column", storage.TraceQuery{Tags: map[string]string{"http.route": "/orders/{id}"}}, []pcommon.TraceID{rich}},
		{"tag legacy key in column", storage.TraceQuery{Tags: map[string]string{"http.status_code": "503"}}, []pcommon.TraceID{rich}},
		{"tag key decides", storage.TraceQuery{Tags: map[string]string{"http.method": "GET"}}, nil},
		{"tag non-string kept as attribute", storage.TraceQuery{Tags: map[string]string{"http.request.method": "7"}}, []pcommon.TraceID{rich}},
		{"tag attribute", storage.TraceQuery{Tags: map[string]string{"db.system": "postgresql"}}, []pcommon.TraceID{rich}},
		{"tag value exact", storage.TraceQuery{Tags: map[string]string{"db.system": "postgres"}}, nil},
		{"tag service.name", storage.TraceQuery{Tags: map[string]string{"service.name": "frontend"}}, []pcommon.TraceID{split}},
		{"tag error", storage.TraceQuery{Tags: map[string]string{"error": "true"}}, []pcommon.TraceID{rich}},
		{"tag span.kind", storage.TraceQuery{Tags: map[string]string{"span.kind": "consumer"}}, []pcommon.TraceID{rich}},
		{"tag otel.status_code", storage.TraceQuery{Tags: map[string]string{"otel.status_code": "OK"}}, []pcommon.TraceID{rich}},
		{"tags on one span", storage.TraceQuery{Tags: map[string]string{"db.system": "postgresql", "span.kind": "client"}}, []pcommon.TraceID{rich}},
		{"tags on different spans", storage.TraceQuery{Tags: map[string]string{"db.system": "postgresql", "span.kind": "server"}}, nil},
		{"min duration", storage.TraceQuery{MinDuration: 4 * time.Second}, []pcommon.TraceID{split}},
		{"max duration", storage.TraceQuery{MaxDuration: time.Millisecond}, []pcommon.TraceID{other, rich}},
		{"duration bounds inclusive", storage.TraceQuery{MinDuration: 250 * time.Millisecond, MaxDuration: 250 * time.Millisecond}, []pcommon.TraceID{rich}},
		{"start", storage.TraceQuery{Start: at(2000)}, []pcommon.TraceID{split}},
		{"range orders by matching spans", storage.TraceQuery{Start: at(0), End: at(500)}, []pcommon.TraceID{rich, split}},
		{"end exclusive", storage.TraceQuery{End: at(0)}, []pcommon.TraceID{split}},
		{"limit", storage.TraceQuery{Limit: 1}, []pcommon.TraceID{split}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.FindTraces(t.Context(), tt.q)
			if err != nil {
				t.Fatalf("FindTraces(%+v): %v", tt.q, err)
			}
			if ids := traceIDs(got); !slices.Equal(ids, tt.want) {
				t.Errorf("FindTraces(%+v) = %v, want %v", tt.q, ids, tt.want)
			}
			// The ids alone, where the store can leave out the
			// summaries, are the same in the same order.
			if f, ok := s.(storage.TraceIDFinder); ok {
				ids, err := f.FindTraceIDs(t.Context(), tt.q)
				if err != nil {
					t.Fatalf("FindTraceIDs(%+v): %v", tt.q, err)
				}
				if !slices.Equal(ids, tt.want) {
					t.Errorf("FindTraceIDs(%+v) = %v, want %v", tt.q, ids, tt.want)
				}
			}
		})
	}
	for _, tags := range []map[string]string{{"error": "maybe"}, {"span.kind": "sideways"}, {"otel.status_code": "FINE"}} {
		if _, err := s.FindTraces(t.Context(), storage.TraceQuery{Tags: tags}); !errors.Is(err, storage.ErrInvalidQuery) {
			t.Errorf("FindTraces(tags %v) error = %v, want ErrInvalidQuery", tags, err)
		}
		if f, ok := s.(storage.TraceIDFinder); ok {
			if _, err := f.FindTraceIDs(t.Context(), storage.TraceQuery{Tags: tags}); !errors.Is(err, storage.ErrInvalidQuery) {
				t.Errorf("FindTraceIDs(tags %v) error = %v, want ErrInvalidQuery", tags, err)
			}
		}
	}
}

func testTraceSummaries(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	writeAllTraces(t, s, base)
	got, err := s.FindTraces(t.Context(), storage.TraceQuery{})
	if err != nil {
		t.Fatalf("FindTraces: %v", err)
	}
	want := []storage.TraceSummary{
		{
			// One span of the split trace is 30 hours early (clock skew)
			// and lives in another day's partition.
			TraceID: SplitTraceID, Start: base.Add(-30 * time.Hour), Duration: 30*time.Hour + 5*time.Second,
			SpanCount: 4, RootService: "frontend", RootName: "GET /",
			Services: []storage.ServiceSpans{{Name: "frontend", Spans: 4}},
		},
		{
			TraceID: OtherTraceID, Start: base.Add(time.Second), Duration: time.Millisecond,
			SpanCount: 1, RootService: "checkout", RootName: "other trace",
			Services: []storage.ServiceSpans{{Name: "checkout", Spans: 1}},
		},
		{
			TraceID: RichTraceID, Start: base, Duration: 250 * time.Millisecond,
			SpanCount: 8, ErrorCount: 2, RootService: "checkout", RootName: "GET /orders/{id}",
			Services: []storage.ServiceSpans{{Name: "", Spans: 1}, {Name: "12", Spans: 1}, {Name: "checkout", Spans: 4, Errors: 1}, {Name: "payments", Spans: 2, Errors: 1}},
		},
	}
	if len(got) != len(want) {
		t.Fatalf("FindTraces returned %d summaries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		g.Start = g.Start.UTC()
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("summary %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
}

func testServicesOperations(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	ctx := t.Context()
	if got, err := s.Services(ctx); err != nil || len(got) != 0 {
		t.Errorf("Services of an empty store = %v, %v; want none", got, err)
	}
	writeAllTraces(t, s, base)
	// Writing again must not list anything twice.
	mustWriteTraces(t, s, LoadTraces(t, "traces_rich.json", base))
	svcs, err := s.Services(ctx)
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	if want := []string{"", "12", "checkout", "frontend", "payments"}; !slices.Equal(svcs, want) {
		t.Errorf("Services = %q, want %q", svcs, want)
	}
	ops, err := s.Operations(ctx, "checkout")
	if err != nil {
		t.Fatalf("Operations: %v", err)
	}
	want := []storage.Operation{
		{Name: "GET /orders/{id}", Kind: ptrace.SpanKindServer},
		{Name: "SELECT orders", Kind: ptrace.SpanKindClient},
		{Name: "compute", Kind: ptrace.SpanKindInternal},
		{Name: "other trace", Kind: ptrace.SpanKindServer},
		{Name: "unspecified-kind", Kind: ptrace.SpanKindUnspecified},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("Operations(checkout) = %+v, want %+v", ops, want)
	}
	if ops, err := s.Operations(ctx, "nope"); err != nil || len(ops) != 0 {
		t.Errorf("Operations(nope) = %v, %v; want none", ops, err)
	}
}

func testLogFilters(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	sev := func(s ...storage.Severity) []storage.Severity { return s }
	tests := []struct {
		name string
		q    storage.LogQuery
		want []string
	}{
		{"terms all must match", storage.LogQuery{Terms: []string{"payment", "FAILED"}}, []string{"L10", "L2", "L11"}},
		{"terms in any order", storage.LogQuery{Terms: []string{"42", "order"}}, []string{"L2", "L1"}},
		{"terms none match", storage.LogQuery{Terms: []string{"payment", "created"}}, nil},
		{"contains is case-sensitive", storage.LogQuery{Contains: []string{"FAILED"}}, []string{"L2"}},
		{"contains lower case", storage.LogQuery{Contains: []string{"failed"}}, []string{"L10", "L11"}},
		{"contains and terms", storage.LogQuery{Contains: []string{"payment"}, Terms: []string{"FAILED"}}, []string{"L11"}},
		{"contains none match", storage.LogQuery{Contains: []string{"Failed"}}, nil},
		{"severity error band", storage.LogQuery{Severities: sev(storage.SeverityError)}, []string{"L10", "L2"}},
		{"severity several", storage.LogQuery{Severities: sev(storage.SeverityWarn, storage.SeverityError)}, []string{"L10", "L3", "L2"}},
		{"severity unset", storage.LogQuery{Severities: sev(storage.SeverityUnset)}, []string{"L12", "L9", "L8", "L7", "L6", "L5", "L4", "L11"}},
		{"attribute", storage.LogQuery{Attributes: map[string]string{"order.id": "42"}}, []string{"L1"}},
		{"attribute bool as text", storage.LogQuery{Attributes: map[string]string{"ok": "false"}}, []string{"L2"}},
		{"resource attribute", storage.LogQuery{Attributes: map[string]string{"host.name": "host-1"}}, []string{"L4", "L3", "L2", "L1"}},
		{"service.name attribute", storage.LogQuery{Attributes: map[string]string{"service.name": "checkout"}}, []string{"L4", "L3", "L2", "L1"}},
		{"attributes all must match", storage.LogQuery{Attributes: map[string]string{"host.name": "host-1", "order.id": "43"}}, nil},
		{"everything", storage.LogQuery{Terms: []string{"failed"}, Severities: sev(storage.SeverityError), Attributes: map[string]string{"host.name": "host-1"}}, []string{"L2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := logIDs(collect(t, s, tt.q))
			if !slices.Equal(got, tt.want) {
				t.Errorf("FindLogs(%+v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func testLogPagination(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	// Written twice: every timestamp appears twice, so pages must break
	// ties between equal timestamps consistently.
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	for _, q := range []storage.LogQuery{{Limit: 5}, {Limit: 3, Service: "payments"}, {Limit: 1, Terms: []string{"failed"}}} {
		all := collect(t, s, storage.LogQuery{Limit: 1000, Service: q.Service, Terms: q.Terms})
		var paged []storage.LogRecord
		seen := map[string]bool{}
		for page := 0; page < 100; page++ {
			recs := collect(t, s, q)
			if len(recs) == 0 {
				break
			}
			if len(recs) > q.Limit {
				t.Fatalf("page of %d records, limit %d", len(recs), q.Limit)
			}
			for _, r := range recs {
				if r.Cursor == "" || seen[r.Cursor] {
					t.Fatalf("cursor %q empty or repeated", r.Cursor)
				}
				seen[r.Cursor] = true
			}
			paged = append(paged, recs...)
			q.After = recs[len(recs)-1].Cursor
		}
		if got, want := logIDs(paged), logIDs(all); !slices.Equal(got, want) {
			t.Errorf("pages of %+v = %v, want %v", q, got, want)
		}
		if len(all) == 0 {
			t.Errorf("query %+v matched nothing", q)
		}
	}
	for r, err := range s.FindLogs(t.Context(), storage.LogQuery{After: "not a cursor"}) {
		if !errors.Is(err, storage.ErrInvalidQuery) {
			t.Errorf("FindLogs with a bad cursor = %+v, %v; want ErrInvalidQuery", r, err)
		}
	}
}

func testLogHistogram(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	ctx := t.Context()
	got, err := s.LogHistogram(ctx, storage.LogQuery{Start: base.Add(-3 * time.Hour), End: base.Add(time.Hour)}, time.Hour)
	if err != nil {
		t.Fatalf("LogHistogram: %v", err)
	}
	b := func(at time.Time, sev storage.Severity, n int64) storage.LogBucket {
		return storage.LogBucket{Start: at, Severity: sev, Count: n}
	}
	want := []storage.LogBucket{
		b(base.Add(-2*time.Hour), storage.SeverityUnset, 1), // L11
		b(base, storage.SeverityUnset, 7),                   // L4-L9, L12
		b(base, storage.SeverityInfo, 1),                    // L1
		b(base, storage.SeverityWarn, 1),                    // L3
		b(base, storage.SeverityError, 2),                   // L2, L10
	}
	if !reflect.DeepEqual(utcBuckets(got), want) {
		t.Errorf("LogHistogram by hour =\n %+v\nwant\n %+v", got, want)
	}
	got, err = s.LogHistogram(ctx, storage.LogQuery{Severities: []storage.Severity{storage.SeverityError}, Terms: []string{"payment"}}, 5*time.Second)
	if err != nil {
		t.Fatalf("LogHistogram: %v", err)
	}
	want = []storage.LogBucket{b(base, storage.SeverityError, 1), b(base.Add(10*time.Second), storage.SeverityError, 1)}
	if !reflect.DeepEqual(utcBuckets(got), want) {
		t.Errorf("LogHistogram of errors by 5s =\n %+v\nwant\n %+v", got, want)
	}
	if _, err := s.LogHistogram(ctx, storage.LogQuery{}, 0); !errors.Is(err, storage.ErrInvalidQuery) {
		t.Errorf("LogHistogram with step 0: %v, want ErrInvalidQuery", err)
	}
}

func utcBuckets(bs []storage.LogBucket) []storage.LogBucket {
	out := slices.Clone(bs)
	for i := range out {
		out[i].Start = out[i].Start.UTC()
	}
	return out
}

func testRED(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	writeAllTraces(t, s, base)
	ctx := t.Context()
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	row := func(svc string, calls, errs int64, p50, p95, p99 time.Duration) storage.REDRow {
		return storage.REDRow{Service: svc, Calls: calls, Errors: errs, P50: p50, P95: p95, P99: p99}
	}
	op := func(svc, name string, kind ptrace.SpanKind, errs int64, d time.Duration) storage.REDRow {
		return storage.REDRow{Service: svc, Operation: name, Kind: kind, Calls: 1, Errors: errs, P50: d, P95: d, P99: d}
	}
	hour := storage.REDQuery{Start: base.Add(-time.Hour), End: base.Add(time.Hour)}
	tests := []struct {
		name string
		q    storage.REDQuery
		want []storage.REDRow
	}{
		{"services: requests, or all spans without any", hour, []storage.REDRow{
			row("", 1, 0, ms(10), ms(10), ms(10)),
			row("12", 1, 0, ms(1), ms(1), ms(1)), // internal spans only
			// the root (250ms, error) and "other trace" (1ms); quantiles
			// interpolate between the two
			row("checkout", 2, 1, ms(125.5), ms(237.55), ms(247.51)),
			row("frontend", 1, 0, 5*time.Second, 5*time.Second, 5*time.Second),
			row("payments", 1, 1, ms(100), ms(100), ms(100)), // the consumer span
		}},
		{"operations of a service, every kind", storage.REDQuery{Start: hour.Start, End: hour.End, Service: "checkout"}, []storage.REDRow{
			op("checkout", "GET /orders/{id}", ptrace.SpanKindServer, 1, ms(250)),
			op("checkout", "SELECT orders", ptrace.SpanKindClient, 0, ms(80)),
			op("checkout", "compute", ptrace.SpanKindInternal, 0, ms(10)),
			op("checkout", "other trace", ptrace.SpanKindServer, 0, ms(1)),
			op("checkout", "unspecified-kind", ptrace.SpanKindUnspecified, 0, 0),
		}},
		{"operations across days", storage.REDQuery{Start: base.Add(-31 * time.Hour), End: hour.End, Service: "frontend"}, []storage.REDRow{
			op("frontend", "GET /", ptrace.SpanKindServer, 0, 5*time.Second),
			op("frontend", "clock-skewed child a day earlier", ptrace.SpanKindInternal, 0, ms(500)),
			op("frontend", "fetch data", ptrace.SpanKindClient, 0, time.Second),
			op("frontend", "render", ptrace.SpanKindInternal, 0, time.Second),
		}},
		{"empty range", storage.REDQuery{Start: base.Add(time.Hour), End: base.Add(2 * time.Hour)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.RED(ctx, tt.q)
			if err != nil {
				t.Fatalf("RED(%+v): %v", tt.q, err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			for i := range got {
				got[i].First = time.Time{} // testREDCoverage checks it
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("RED(%+v) =\n %+v\nwant\n %+v", tt.q, got, tt.want)
			}
		})
	}
	// Bins: checkout's two requests fall in the bin starting at base.
	got, err := s.RED(ctx, storage.REDQuery{Start: hour.Start, End: hour.End, Step: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Service != "checkout" {
			continue
		}
		want := []storage.REDBin{{Start: base, Calls: 2, Errors: 1, P99: ms(247.51)}}
		for i := range r.Bins {
			r.Bins[i].Start = r.Bins[i].Start.UTC()
		}
		if !reflect.DeepEqual(r.Bins, want) {
			t.Errorf("checkout bins = %+v, want %+v", r.Bins, want)
		}
	}
	if _, err := s.RED(ctx, storage.REDQuery{Start: base, End: base}); !errors.Is(err, storage.ErrInvalidQuery) {
		t.Errorf("RED with an empty range: %v, want ErrInvalidQuery", err)
	}
}

func testLogTraceStats(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	got, err := s.LogTraceStats(t.Context(), base.Add(-time.Minute), base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// In the minute around base: checkout L1-L4 (L1, L2 with a trace),
	// payments L5-L10 (L5, L10 with a trace), and L12 without a service.
	want := []storage.ServiceLogs{{Service: "", Total: 1}, {Service: "checkout", Total: 4, WithTrace: 2}, {Service: "payments", Total: 6, WithTrace: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LogTraceStats = %+v, want %+v", got, want)
	}
	if got, err := s.LogTraceStats(t.Context(), base.Add(time.Hour), base.Add(2*time.Hour)); err != nil || len(got) != 0 {
		t.Errorf("LogTraceStats of an empty range = %+v, %v", got, err)
	}
}
