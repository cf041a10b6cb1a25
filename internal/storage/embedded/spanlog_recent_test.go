package embedded

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// canonicalSpans renders every span of td with its resource and scope, in
// a sorted list, so that two reads compare whatever their order.
func canonicalSpans(t *testing.T, td ptrace.Traces) []string {
	t.Helper()
	var out []string
	var m ptrace.JSONMarshaler
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				one := ptrace.NewTraces()
				r := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(r.Resource())
				r.SetSchemaUrl(rs.SchemaUrl())
				s := r.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(s.Scope())
				s.SetSchemaUrl(ss.SchemaUrl())
				sp.CopyTo(s.Spans().AppendEmpty())
				b, err := m.MarshalTraces(one)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
		}
	}
	slices.Sort(out)
	return out
}

// traceIDsOf lists the distinct trace ids of td.
func traceIDsOf(td ptrace.Traces) []pcommon.TraceID {
	seen := map[pcommon.TraceID]bool{}
	var out []pcommon.TraceID
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if id := sp.TraceID(); !seen[id] {
					seen[id] = true
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// TestRecentTracesMatchFiles holds a trace read from the recent traces to
// the same read from the day files: realistic spans (HTTP columns, events,
// several resources), a trace continued in a later batch, a retried batch
// stored twice, and reads under a limit the trace fits and one it does not.
func TestRecentTracesMatchFiles(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, t.TempDir())
	gen := storagetest.NewSpanGen(11, time.Now().Add(-time.Minute))
	var ids []pcommon.TraceID
	var batches []ptrace.Traces
	for range 4 {
		td := gen.Traces(200)
		batches = append(batches, td)
		ids = append(ids, traceIDsOf(td)...)
		if err := s.WriteTraces(ctx, td); err != nil {
			t.Fatal(err)
		}
	}
	// A retried batch, and a trace continued later.
	if err := s.WriteTraces(ctx, batches[1]); err != nil {
		t.Fatal(err)
	}
	more := ptrace.NewTraces()
	batches[0].ResourceSpans().At(0).CopyTo(more.ResourceSpans().AppendEmpty())
	cont := more.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range cont.Len() {
		sp := cont.At(i)
		sp.SetSpanID(pcommon.SpanID{0xee, byte(i), byte(i >> 8)})
		sp.SetStartTimestamp(sp.StartTimestamp() + pcommon.Timestamp(time.Second))
	}
	if err := s.WriteTraces(ctx, more); err != nil {
		t.Fatal(err)
	}

	limits := []*storage.TraceReadLimit{nil, {MaxSpans: 1000, MaxBytes: 1 << 20}, {MaxSpans: 2}, {MaxBytes: 300}}
	type read struct {
		spans     []string
		truncated bool
		bytes     int64
	}
	readAll := func() [][]read {
		var out [][]read
		for _, id := range ids {
			var rs []read
			for _, l := range limits {
				ctx := ctx
				var lim *storage.TraceReadLimit
				if l != nil {
					lim = &storage.TraceReadLimit{MaxSpans: l.MaxSpans, MaxBytes: l.MaxBytes}
					ctx = storage.WithTraceReadLimit(ctx, lim)
				}
				td, err := s.GetTrace(ctx, id)
				if err != nil {
					t.Fatalf("GetTrace(%v): %v", id, err)
				}
				r := read{spans: canonicalSpans(t, td)}
				if lim != nil {
					r.truncated, r.bytes = lim.Truncated, lim.ReadBytes
				}
				rs = append(rs, r)
			}
			out = append(out, rs)
		}
		return out
	}
	held := 0
	for _, id := range ids {
		if _, ok, _ := s.recent.get(id, nil); ok {
			held++
		}
	}
	if held != len(ids) {
		t.Fatalf("%d of %d traces held in memory, want all", held, len(ids))
	}
	fromMemory := readAll()
	s.recent.clear()
	fromFiles := readAll()
	for i := range ids {
		for j := range limits {
			m, f := fromMemory[i][j], fromFiles[i][j]
			if !slices.Equal(m.spans, f.spans) || m.truncated != f.truncated || m.bytes != f.bytes {
				t.Errorf("trace %v, limit %+v: from memory %d spans (truncated %v, %d bytes), from the files %d (%v, %d)",
					ids[i], limits[j], len(m.spans), m.truncated, m.bytes, len(f.spans), f.truncated, f.bytes)
			}
		}
	}
}

// TestRecentTracesOnlyWhole holds the recent traces to traces whose every
// span they have: a trace with spans stored before the store opened is
// not taken when more arrive, nor one whose spans were let go past the
// budget; retention lets every trace go.
func TestRecentTracesOnlyWhole(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	clock := &fixedClock{t: now}
	s := openAt(t, dir, clock, nil)
	old := pcommon.TraceID{15: 1} // the trace index keys by the low half
	if err := s.WriteTraces(ctx, oneSpan(old, now.Add(-time.Hour), nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.recent.get(old, nil); !ok {
		t.Fatal("a new trace is not held")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, dir, clock, nil)
	<-s.locsLoaded
	more := oneSpan(old, now, nil)
	more.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID(pcommon.SpanID{9})
	fresh := pcommon.TraceID{15: 2}
	oneSpan(fresh, now, nil).ResourceSpans().MoveAndAppendTo(more.ResourceSpans())
	if err := s.WriteTraces(ctx, more); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.recent.get(old, nil); ok {
		t.Error("a trace with spans stored before the store opened is held")
	}
	if _, ok, _ := s.recent.get(fresh, nil); !ok {
		t.Error("a new trace is not held")
	}
	if td, err := s.GetTrace(ctx, old); err != nil || td.SpanCount() != 2 {
		t.Errorf("GetTrace(old) = %d spans, %v; want 2", td.SpanCount(), err)
	}

	// A budget of a few rows: the oldest traces go, and spans of them
	// arriving later do not bring them back.
	s.recent = newRecentTraces(1 << 30)
	var ids []pcommon.TraceID
	for i := range 6 {
		id := pcommon.TraceID{14: 3, 15: byte(i)}
		ids = append(ids, id)
		if err := s.WriteTraces(ctx, oneSpan(id, now, nil)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			s.recent.budget = 3*s.recent.used + s.recent.used/2
		}
	}
	if _, ok, _ := s.recent.get(ids[0], nil); ok {
		t.Error("the oldest trace is still held past the budget")
	}
	if _, ok, _ := s.recent.get(ids[5], nil); !ok {
		t.Error("the newest trace is not held")
	}
	again := oneSpan(ids[0], now.Add(time.Second), nil)
	again.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID(pcommon.SpanID{8})
	if err := s.WriteTraces(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.recent.get(ids[0], nil); ok {
		t.Error("a trace let go is held again with only its later spans")
	}
	if td, err := s.GetTrace(ctx, ids[0]); err != nil || td.SpanCount() != 2 {
		t.Errorf("GetTrace = %d spans, %v; want 2", td.SpanCount(), err)
	}

	clock.t = now.Add(storage.DefaultRetention + 48*time.Hour)
	if _, err := s.DropBefore(ctx, clock.t.Add(-storage.DefaultRetention)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.recent.get(ids[5], nil); ok {
		t.Error("a trace is held after retention dropped its day")
	}
	if _, err := s.GetTrace(ctx, ids[5]); err != storage.ErrTraceNotFound {
		t.Errorf("GetTrace after retention: %v, want ErrTraceNotFound", err)
	}
}

// TestRecentTracesConcurrentWrites writes the spans of the same new
// traces from several writers at once: whichever batch takes a trace, the
// others' spans join it, so that once every write is acknowledged the
// trace read from memory is the whole trace.
func TestRecentTracesConcurrentWrites(t *testing.T) {
	ctx := t.Context()
	s := openTestStore(t, t.TempDir())
	const writers, traces = 8, 50
	now := time.Now()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", "svc")
			spans := rs.ScopeSpans().AppendEmpty().Spans()
			for i := range traces {
				sp := spans.AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{15: byte(i)})
				sp.SetSpanID(pcommon.SpanID{byte(w + 1), byte(i)})
				sp.SetName("op")
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(w) * time.Millisecond)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Second)))
			}
			errs <- s.WriteTraces(ctx, td)
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range traces {
		id := pcommon.TraceID{15: byte(i)}
		td, ok, err := s.recent.get(id, nil)
		if err != nil || !ok {
			t.Fatalf("trace %d not held: %v", i, err)
		}
		if td.SpanCount() != writers {
			t.Errorf("trace %d: %d spans held, want %d", i, td.SpanCount(), writers)
		}
	}
}

// Traces taken by batches that never commit count against the budget
// too, so that a store failing its commits does not grow the cache.
func TestRecentTracesUncommittedBounded(t *testing.T) {
	c := newRecentTraces(100 * traceOverhead)
	locs := []*traceLocs{newTraceLocs(true)}
	for i := range 1000 {
		c.admit(locs, []spanRow{{traceHi: 1, traceLo: uint64(i)}})
	}
	if n := len(c.traces); n != 100 {
		t.Errorf("%d traces held, want 100", n)
	}
	if n := len(c.order) - c.head; n != 100 {
		t.Errorf("%d traces in order, want 100", n)
	}
}
