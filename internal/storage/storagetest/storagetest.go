// Package storagetest is the conformance suite every storage.SpanLogStore
// backend must pass, with its OTLP JSON fixtures.
//
// A backend's test calls RunSpanLogStore with a function that opens a fresh,
// empty store, and RunReopen if it persists data. The fixtures are embedded
// so that backends in other packages (and their benchmarks) can load them
// with LoadTraces and LoadLogs.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// RunSpanLogStore runs the conformance suite as subtests. open must return a
// new, empty store each time it is called; the suite closes it (closing twice
// must be harmless, since open may also register a cleanup). The store must
// accept timestamps FutureSkew ahead of now and keep a week.
func RunSpanLogStore(t *testing.T, open func(t *testing.T) storage.SpanLogStore) {
	base := Base(time.Now())
	t.Run("TraceRoundTrip", func(t *testing.T) { testTraceRoundTrip(t, open(t), base) })
	t.Run("TraceSplitWrites", func(t *testing.T) { testTraceSplit(t, open(t), base) })
	t.Run("TraceNotFound", func(t *testing.T) { testTraceNotFound(t, open(t), base) })
	t.Run("TraceWriteDoesNotKeepInput", func(t *testing.T) { testTraceInputReuse(t, open(t), base) })
	t.Run("TraceRetriedWrite", func(t *testing.T) { testRetriedWrite(t, open(t), base) })
	t.Run("TraceConflictingCopies", func(t *testing.T) { testConflictingCopies(t, open(t), base) })
	t.Run("LogQueries", func(t *testing.T) { testLogQueries(t, open(t), base) })
	t.Run("LogRecordFields", func(t *testing.T) { testLogFields(t, open(t), base) })
	t.Run("LogDefaultLimit", func(t *testing.T) { testLogDefaultLimit(t, open(t), base) })
	t.Run("LogEarlyStop", func(t *testing.T) { testLogEarlyStop(t, open(t), base) })
	t.Run("FindTraces", func(t *testing.T) { testFindTraces(t, open(t), base) })
	t.Run("ManyTraces", func(t *testing.T) { testManyTraces(t, open(t), base) })
	t.Run("ManyTags", func(t *testing.T) { testManyTags(t, open(t), base) })
	t.Run("SkewedTimes", func(t *testing.T) { testSkewedTimes(t, open(t), base) })
	t.Run("TraceSummaries", func(t *testing.T) { testTraceSummaries(t, open(t), base) })
	t.Run("ServicesAndOperations", func(t *testing.T) { testServicesOperations(t, open(t), base) })
	t.Run("RED", func(t *testing.T) { testRED(t, open(t), base) })
	t.Run("REDCoverage", func(t *testing.T) { testREDCoverage(t, open(t), base) })
	t.Run("LogTraceStats", func(t *testing.T) { testLogTraceStats(t, open(t), base) })
	t.Run("SpanShapes", func(t *testing.T) { testSpanShapes(t, open(t), base) })
	t.Run("LogTraceCoverage", func(t *testing.T) { testLogTraceCoverage(t, open(t), base) })
	t.Run("DiagnosisClosed", func(t *testing.T) { testDiagnosisClosed(t, open(t), base) })
	t.Run("LogFilters", func(t *testing.T) { testLogFilters(t, open(t), base) })
	t.Run("LogPagination", func(t *testing.T) { testLogPagination(t, open(t), base) })
	t.Run("LogHistogram", func(t *testing.T) { testLogHistogram(t, open(t), base) })
	t.Run("LogStreams", func(t *testing.T) { testLogStreams(t, open(t), base) })
	t.Run("LogStreamsFilter", func(t *testing.T) { testLogStreamsFilter(t, open(t), base) })
	t.Run("LogCounts", func(t *testing.T) { testLogCounts(t, open(t), base) })
	t.Run("LogCountValues", func(t *testing.T) { testLogCountValues(t, open(t), base) })
	t.Run("LogForward", func(t *testing.T) { testLogForward(t, open(t), base) })
	t.Run("LogLargeLimit", func(t *testing.T) { testLogLargeLimit(t, open(t), base) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, open(t), base) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open(t), base) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t), base) })
}

// RunReopen checks that data survives Close and a reopen from the same
// directory, and that the reopened store accepts more writes.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) storage.SpanLogStore) {
	ctx := t.Context()
	base := Base(time.Now())
	dir := t.TempDir()
	rich := LoadTraces(t, "traces_rich.json", base)
	splitA := LoadTraces(t, "traces_split_a.json", base)
	splitB := LoadTraces(t, "traces_split_b.json", base)
	logs := LoadLogs(t, "logs.json", base)

	skewed := skewedItems(time.Now())
	s := open(t, dir)
	mustWriteTraces(t, s, rich)
	mustWriteTraces(t, s, splitA)
	mustWriteLogs(t, s, logs)
	writeSkewed(t, s, skewed)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dir)
	mustWriteTraces(t, s, splitB)
	check := func(s storage.SpanLogStore) {
		t.Helper()
		for _, id := range []pcommon.TraceID{RichTraceID, OtherTraceID} {
			got, err := s.GetTrace(ctx, id)
			if err != nil {
				t.Fatalf("GetTrace(%s) after reopen: %v", id, err)
			}
			AssertTracesEqual(t, selectTrace(rich, id), got)
		}
		got, err := s.GetTrace(ctx, SplitTraceID)
		if err != nil {
			t.Fatalf("GetTrace(split) after reopen: %v", err)
		}
		AssertTracesEqual(t, mergeTraces(splitA, splitB), got)
		recs := slices.DeleteFunc(collect(t, s, storage.LogQuery{Limit: 1000}), func(r storage.LogRecord) bool {
			return strings.HasPrefix(r.Body, "skewed ")
		})
		if ids := logIDs(recs); !slices.Equal(ids, allLogsNewestFirst) {
			t.Errorf("logs after reopen = %v, want %v", ids, allLogsNewestFirst)
		}
		checkSkewed(t, s, skewed)
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	check(s)
}

func testTraceRoundTrip(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	td := LoadTraces(t, "traces_rich.json", base)
	mustWriteTraces(t, s, td)
	for _, id := range []pcommon.TraceID{RichTraceID, OtherTraceID} {
		got, err := s.GetTrace(t.Context(), id)
		if err != nil {
			t.Fatalf("GetTrace(%s): %v", id, err)
		}
		want := selectTrace(td, id)
		if want.SpanCount() == 0 {
			t.Fatalf("fixture has no span of %s", id)
		}
		AssertTracesEqual(t, want, got)
	}
}

func testTraceSplit(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	a := LoadTraces(t, "traces_split_a.json", base)
	b := LoadTraces(t, "traces_split_b.json", base)
	mustWriteTraces(t, s, a)
	mustWriteTraces(t, s, b)
	got, err := s.GetTrace(t.Context(), SplitTraceID)
	if err != nil {
		t.Fatalf("GetTrace: %v", err)
	}
	AssertTracesEqual(t, mergeTraces(a, b), got)
	// Both halves share one resource and scope, so they come back as one group.
	if n := got.ResourceSpans().Len(); n != 1 {
		t.Errorf("got %d ResourceSpans, want 1 (regrouped)", n)
	}
}

func testTraceNotFound(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	if _, err := s.GetTrace(t.Context(), RichTraceID); !errors.Is(err, storage.ErrTraceNotFound) {
		t.Errorf("GetTrace on empty store: err = %v, want ErrTraceNotFound", err)
	}
	mustWriteTraces(t, s, LoadTraces(t, "traces_split_a.json", base))
	for _, id := range []pcommon.TraceID{RichTraceID, {}, {0xff}} {
		if _, err := s.GetTrace(t.Context(), id); !errors.Is(err, storage.ErrTraceNotFound) {
			t.Errorf("GetTrace(%s): err = %v, want ErrTraceNotFound", id, err)
		}
	}
}

// testTraceInputReuse checks that the store copied what it needed: callers
// recycle their buffers right after WriteTraces returns.
func testTraceInputReuse(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	td := LoadTraces(t, "traces_split_a.json", base)
	want := ptrace.NewTraces()
	td.CopyTo(want)
	mustWriteTraces(t, s, td)
	for _, rs := range td.ResourceSpans().All() {
		rs.Resource().Attributes().PutStr("service.name", "mutated")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				sp.SetName("mutated")
				sp.Attributes().PutInt("mutated", 1)
			}
		}
	}
	got, err := s.GetTrace(t.Context(), SplitTraceID)
	if err != nil {
		t.Fatalf("GetTrace: %v", err)
	}
	AssertTracesEqual(t, want, got)
}

// allLogsNewestFirst is every record of logs.json in the order FindLogs must
// yield them. L4 has no Timestamp and sorts by its ObservedTimestamp.
var allLogsNewestFirst = []string{"L12", "L10", "L9", "L8", "L7", "L6", "L5", "L4", "L3", "L2", "L1", "L11"}

func testLogQueries(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	tests := []struct {
		name string
		q    storage.LogQuery
		want []string
	}{
		{"all", storage.LogQuery{}, allLogsNewestFirst},
		{"trace id", storage.LogQuery{TraceID: RichTraceID}, []string{"L10", "L2", "L1"}},
		{"other trace id", storage.LogQuery{TraceID: OtherTraceID}, []string{"L5"}},
		{"unknown trace id", storage.LogQuery{TraceID: SplitTraceID}, nil},
		{"service checkout", storage.LogQuery{Service: "checkout"}, []string{"L4", "L3", "L2", "L1"}},
		{"service payments", storage.LogQuery{Service: "payments"}, []string{"L10", "L9", "L8", "L7", "L6", "L5", "L11"}},
		{"unknown service", storage.LogQuery{Service: "nope"}, nil},
		{"service is exact", storage.LogQuery{Service: "Checkout"}, nil},
		{"text case-insensitive", storage.LogQuery{Terms: []string{"payment failed"}}, []string{"L10", "L2", "L11"}},
		{"text upper", storage.LogQuery{Terms: []string{"CREATED"}}, []string{"L1"}},
		{"text in JSON body", storage.LogQuery{Terms: []string{"cache_miss"}}, []string{"L3"}},
		{"text in int body", storage.LogQuery{Terms: []string{"2345"}}, []string{"L4"}},
		{"text unicode", storage.LogQuery{Terms: []string{"ünïcødé"}}, []string{"L12"}},
		{"text with LIKE metacharacters", storage.LogQuery{Terms: []string{"%"}}, nil},
		{"text with underscore is literal", storage.LogQuery{Terms: []string{"cache_m"}}, []string{"L3"}},
		{"text and service", storage.LogQuery{Terms: []string{"failed"}, Service: "checkout"}, []string{"L2"}},
		{"start inclusive end exclusive", storage.LogQuery{Start: at(3), End: at(7)}, []string{"L6", "L5", "L4", "L3"}},
		{"start only", storage.LogQuery{Start: at(10)}, []string{"L12", "L10"}},
		{"end only", storage.LogQuery{End: at(1)}, []string{"L11"}},
		{"end just after", storage.LogQuery{End: at(1).Add(time.Nanosecond)}, []string{"L1", "L11"}},
		{"empty range", storage.LogQuery{Start: at(5), End: at(5)}, nil},
		{"limit", storage.LogQuery{Limit: 2}, []string{"L12", "L10"}},
		{"limit with filter", storage.LogQuery{Service: "payments", Limit: 3}, []string{"L10", "L9", "L8"}},
		{"trace id and start", storage.LogQuery{TraceID: RichTraceID, Start: at(2)}, []string{"L10", "L2"}},
		{"all filters", storage.LogQuery{TraceID: RichTraceID, Service: "payments", Terms: []string{"CARD"}, Start: at(0), End: at(11), Limit: 5}, []string{"L10"}},
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

func testLogFields(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	ld := LoadLogs(t, "logs.json", base)
	mustWriteLogs(t, s, ld)
	// Expected bodies as text; JSON bodies are compared as JSON values.
	bodies := map[string]string{
		"L1": "Order 42 created", "L2": "Payment FAILED for order 42",
		"L3": `{"event":"cache_miss","key":"user:1","n":2}`, "L4": "12345",
		"L5": `["a",1,true]`, "L6": "true", "L7": "1.5", "L8": "AQID", "L9": "",
		"L10": "PAYMENT failed: card declined", "L11": "old payment failed", "L12": "orphan ünïcødé",
	}
	jsonBody := map[string]bool{"L3": true, "L5": true}
	want := map[string]storage.LogRecord{}
	for _, rl := range ld.ResourceLogs().All() {
		service := ""
		if v, ok := rl.Resource().Attributes().Get("service.name"); ok {
			service = v.Str()
		}
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				id, _ := lr.Attributes().Get("log.id")
				want[id.Str()] = storage.LogRecord{
					Timestamp:          asTime(lr.Timestamp()),
					ObservedTimestamp:  asTime(lr.ObservedTimestamp()),
					SeverityNumber:     lr.SeverityNumber(),
					SeverityText:       lr.SeverityText(),
					Body:               bodies[id.Str()],
					Service:            service,
					TraceID:            lr.TraceID(),
					SpanID:             lr.SpanID(),
					Attributes:         lr.Attributes().AsRaw(),
					ResourceAttributes: rl.Resource().Attributes().AsRaw(),
					ScopeName:          sl.Scope().Name(),
				}
			}
		}
	}
	got := collect(t, s, storage.LogQuery{Limit: 100})
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for _, g := range got {
		id, _ := g.Attributes["log.id"].(string)
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected record %+v", g)
			continue
		}
		if jsonBody[id] {
			if !jsonEqual(g.Body, w.Body) {
				t.Errorf("%s: body = %q, want JSON %s", id, g.Body, w.Body)
			}
			g.Body = w.Body
		}
		if !g.Timestamp.Equal(w.Timestamp) || g.Timestamp.IsZero() != w.Timestamp.IsZero() {
			t.Errorf("%s: Timestamp = %v, want %v", id, g.Timestamp, w.Timestamp)
		}
		if !g.ObservedTimestamp.Equal(w.ObservedTimestamp) || g.ObservedTimestamp.IsZero() != w.ObservedTimestamp.IsZero() {
			t.Errorf("%s: ObservedTimestamp = %v, want %v", id, g.ObservedTimestamp, w.ObservedTimestamp)
		}
		g.Timestamp, g.ObservedTimestamp = w.Timestamp, w.ObservedTimestamp
		if g.Cursor == "" {
			t.Errorf("%s: no Cursor", id)
		}
		g.Cursor = "" // opaque; LogPagination checks what it does
		if !reflect.DeepEqual(normalizeRecord(g), normalizeRecord(w)) {
			t.Errorf("%s:\n got %#v\nwant %#v", id, g, w)
		}
	}
}

// normalizeRecord treats nil and empty attribute maps alike.
func normalizeRecord(r storage.LogRecord) storage.LogRecord {
	if len(r.Attributes) == 0 {
		r.Attributes = nil
	}
	if len(r.ResourceAttributes) == 0 {
		r.ResourceAttributes = nil
	}
	return r
}

func testLogDefaultLimit(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	const n = storage.DefaultLogLimit + 50
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "bulk")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	// Written oldest last, so insertion order cannot pass for time order.
	for i := range n {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(-time.Duration(i) * time.Millisecond)))
		lr.Body().SetStr(fmt.Sprintf("bulk %d", i))
	}
	mustWriteLogs(t, s, ld)
	for _, q := range []storage.LogQuery{{}, {Service: "bulk"}} {
		got := collect(t, s, q)
		if len(got) != storage.DefaultLogLimit {
			t.Fatalf("FindLogs(%+v) yielded %d records, want DefaultLogLimit %d", q, len(got), storage.DefaultLogLimit)
		}
		for i, r := range got {
			if want := fmt.Sprintf("bulk %d", i); r.Body != want {
				t.Fatalf("record %d = %q, want %q (newest first)", i, r.Body, want)
			}
		}
	}
	if got := collect(t, s, storage.LogQuery{Limit: n + 10}); len(got) != n {
		t.Errorf("Limit above count yielded %d records, want %d", len(got), n)
	}
}

// testLogEarlyStop checks that a consumer may stop iterating and the store
// still works afterwards (no leaked lock or connection).
func testLogEarlyStop(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	mustWriteLogs(t, s, LoadLogs(t, "logs.json", base))
	for range 20 {
		for _, err := range s.FindLogs(t.Context(), storage.LogQuery{}) {
			if err != nil {
				t.Fatalf("FindLogs: %v", err)
			}
			break
		}
	}
	mustWriteTraces(t, s, LoadTraces(t, "traces_split_a.json", base))
	if got := collect(t, s, storage.LogQuery{}); len(got) != len(allLogsNewestFirst) {
		t.Errorf("after early stops: %d records, want %d", len(got), len(allLogsNewestFirst))
	}
}

func testConcurrent(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	const writers, batches, spansPerBatch = 6, 5, 40
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*3)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				td := ptrace.NewTraces()
				rs := td.ResourceSpans().AppendEmpty()
				rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", w))
				spans := rs.ScopeSpans().AppendEmpty().Spans()
				for i := range spansPerBatch {
					sp := spans.AppendEmpty()
					sp.SetTraceID(concurrentTraceID(w, b))
					sp.SetSpanID(pcommon.SpanID{byte(w), byte(b), byte(i), 1, 1, 1, 1, 1})
					sp.SetName("op")
					sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i) * time.Millisecond)))
					sp.SetEndTimestamp(sp.StartTimestamp() + 1000)
					sp.Attributes().PutInt("i", int64(i))
				}
				if err := s.WriteTraces(ctx, td); err != nil {
					errs <- err
				}
				ld := plog.NewLogs()
				rl := ld.ResourceLogs().AppendEmpty()
				rl.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", w))
				lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
				lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(b) * time.Second)))
				lr.Body().SetStr(fmt.Sprintf("w%d b%d", w, b))
				if err := s.WriteLogs(ctx, ld); err != nil {
					errs <- err
				}
				// Reads interleave with the other writers.
				if _, err := s.GetTrace(ctx, concurrentTraceID(w, b)); err != nil {
					errs <- fmt.Errorf("read own write: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		for b := range batches {
			td, err := s.GetTrace(ctx, concurrentTraceID(w, b))
			if err != nil {
				t.Fatalf("GetTrace(w%d b%d): %v", w, b, err)
			}
			if n := td.SpanCount(); n != spansPerBatch {
				t.Errorf("trace w%d b%d has %d spans, want %d", w, b, n, spansPerBatch)
			}
		}
		got := collect(t, s, storage.LogQuery{Service: fmt.Sprintf("svc-%d", w), Limit: 1000})
		if len(got) != batches {
			t.Errorf("svc-%d: %d logs, want %d", w, len(got), batches)
		}
	}
}

func concurrentTraceID(w, b int) pcommon.TraceID {
	return pcommon.TraceID{0xcc, byte(w), byte(b), 15: 1}
}

// testRetention runs only for backends that implement storage.Retainer.
// Data of a day well before the cut must go; data after it must stay.
func testRetention(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	r, ok := s.(storage.Retainer)
	if !ok {
		t.Logf("%T does not implement storage.Retainer", s)
		return
	}
	old := base.Add(-3 * 24 * time.Hour)
	oldID, newID := pcommon.TraceID{0xde, 15: 1}, pcommon.TraceID{0xde, 15: 2}
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, c := range []struct {
		id pcommon.TraceID
		at time.Time
	}{{oldID, old}, {newID, base}} {
		sp := spans.AppendEmpty()
		sp.SetTraceID(c.id)
		sp.SetSpanID(pcommon.SpanID{1})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(c.at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(c.at.Add(time.Millisecond)))
	}
	mustWriteTraces(t, s, td)
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i, at := range []time.Time{old, base} {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
		lr.Body().SetStr(fmt.Sprint("retention ", i))
	}
	mustWriteLogs(t, s, ld)

	n, err := r.DropBefore(t.Context(), base.Add(-24*time.Hour))
	if err != nil {
		t.Fatalf("DropBefore: %v", err)
	}
	if n < 1 {
		t.Errorf("DropBefore removed %d partitions, want at least 1", n)
	}
	if _, err := s.GetTrace(t.Context(), oldID); !errors.Is(err, storage.ErrTraceNotFound) {
		t.Errorf("old trace after DropBefore: err = %v, want ErrTraceNotFound", err)
	}
	if _, err := s.GetTrace(t.Context(), newID); err != nil {
		t.Errorf("recent trace after DropBefore: %v", err)
	}
	got := collect(t, s, storage.LogQuery{})
	if len(got) != 1 || got[0].Body != "retention 1" {
		t.Errorf("logs after DropBefore = %v, want only the recent one", got)
	}
	// Writing into the time range again works after the drop.
	mustWriteLogs(t, s, ld)
	if got := collect(t, s, storage.LogQuery{}); len(got) != 3 {
		t.Errorf("after rewrite: %d logs, want 3", len(got))
	}
}

func testClosed(t *testing.T, s storage.SpanLogStore, base time.Time) {
	ctx := t.Context()
	td := LoadTraces(t, "traces_split_a.json", base)
	ld := LoadLogs(t, "logs.json", base)
	mustWriteTraces(t, s, td)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.WriteTraces(ctx, td); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("WriteTraces after Close: %v, want ErrClosed", err)
	}
	if err := s.WriteLogs(ctx, ld); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("WriteLogs after Close: %v, want ErrClosed", err)
	}
	if _, err := s.GetTrace(ctx, SplitTraceID); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("GetTrace after Close: %v, want ErrClosed", err)
	}
	var sawErr error
	for _, err := range s.FindLogs(ctx, storage.LogQuery{}) {
		sawErr = err
		break
	}
	if !errors.Is(sawErr, storage.ErrClosed) {
		t.Errorf("FindLogs after Close yielded %v, want ErrClosed", sawErr)
	}
	if r, ok := s.(storage.Retainer); ok {
		if _, err := r.DropBefore(ctx, base); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("DropBefore after Close: %v, want ErrClosed", err)
		}
	}
}

func mustWriteTraces(t *testing.T, s storage.SpanLogStore, td ptrace.Traces) {
	t.Helper()
	if err := s.WriteTraces(t.Context(), td); err != nil {
		t.Fatalf("WriteTraces: %v", err)
	}
}

func mustWriteLogs(t *testing.T, s storage.SpanLogStore, ld plog.Logs) {
	t.Helper()
	if err := s.WriteLogs(t.Context(), ld); err != nil {
		t.Fatalf("WriteLogs: %v", err)
	}
}

func collect(t *testing.T, s storage.SpanLogStore, q storage.LogQuery) []storage.LogRecord {
	t.Helper()
	var out []storage.LogRecord
	for r, err := range s.FindLogs(context.WithoutCancel(t.Context()), q) {
		if err != nil {
			t.Fatalf("FindLogs(%+v): %v", q, err)
		}
		out = append(out, r)
	}
	return out
}

func logIDs(recs []storage.LogRecord) []string {
	var ids []string
	for _, r := range recs {
		id, _ := r.Attributes["log.id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func asTime(ts pcommon.Timestamp) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	return ts.AsTime()
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
