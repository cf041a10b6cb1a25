package embedded

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func openWithLocations(t *testing.T, dir string, clock *fixedClock, locations int) *SpanLogStore {
	t.Helper()
	s, err := OpenSpanLogStore(t.Context(), SpanLogOptions{
		Dir: dir, MemoryLimit: "256MB", Threads: 1, Now: clock.now, TraceLocations: locations,
	})
	if err != nil {
		t.Fatalf("OpenSpanLogStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The store without any trace index in memory reads every day's
// trace_index table, as it did before the index existed: that path stays
// conformant too.
func TestSpanLogConformanceWithoutTraceLocations(t *testing.T) {
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		return openWithLocations(t, t.TempDir(), &fixedClock{time.Now()}, -1)
	})
}

func spanAt(id pcommon.TraceID, span byte, at time.Time) ptrace.Traces {
	td := oneSpan(id, at, nil)
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID(pcommon.SpanID{span})
	return td
}

func spanCount(t *testing.T, s *SpanLogStore, id pcommon.TraceID) int {
	t.Helper()
	td, err := s.GetTrace(t.Context(), id)
	if errors.Is(err, storage.ErrTraceNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("GetTrace(%s): %v", id, err)
	}
	return td.SpanCount()
}

// A span written later to a trace already read, hours away from its other
// spans, widens the trace's range: the next read finds it. Traces whose
// ids share their low half share a range but keep their own spans.
func TestTraceLocationsWidenOnLaterWrites(t *testing.T) {
	at := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := &fixedClock{at}
	for _, c := range []struct {
		name      string
		locations int
	}{{"in memory", 0}, {"tables only", -1}} {
		t.Run(c.name, func(t *testing.T) {
			s := openWithLocations(t, t.TempDir(), clock, c.locations)
			ctx := t.Context()
			id := pcommon.TraceID{1, 15: 7}
			twin := pcommon.TraceID{2, 15: 7} // same low 64 bits
			if err := s.WriteTraces(ctx, spanAt(id, 1, at)); err != nil {
				t.Fatal(err)
			}
			if n := spanCount(t, s, id); n != 1 {
				t.Fatalf("%d spans, want 1", n)
			}
			for _, w := range []ptrace.Traces{spanAt(id, 2, at.Add(-3*time.Hour)), spanAt(id, 3, at.Add(5*time.Hour)), spanAt(twin, 9, at.Add(time.Minute))} {
				if err := s.WriteTraces(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			if n := spanCount(t, s, id); n != 3 {
				t.Errorf("%d spans after later writes, want 3", n)
			}
			if n := spanCount(t, s, twin); n != 1 {
				t.Errorf("twin trace has %d spans, want 1", n)
			}
			if n := spanCount(t, s, pcommon.TraceID{3, 15: 7}); n != 0 {
				t.Errorf("unwritten trace sharing the low half has %d spans", n)
			}
		})
	}
}

// Past its budget the store lets go of the oldest days' indexes, which are
// then read from their tables; reopening loads the newest days first; a new
// day is indexed in place of the oldest; and retention takes a dropped
// day's entries with it.
func TestTraceLocationsBudgetReopenAndRetention(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 3, d, 12, 0, 0, 0, time.UTC) }
	clock := &fixedClock{day(10)}
	dir := t.TempDir()
	ctx := t.Context()
	s := openWithLocations(t, dir, clock, 4)
	// Three traces on 8 March, two on 9 March, two on 10 March: seven in
	// all, over the budget of four.
	ids := map[int][]pcommon.TraceID{}
	for d, n := range map[int]int{8: 3, 9: 2, 10: 2} {
		for i := range n {
			id := pcommon.TraceID{byte(d), 15: byte(i + 1)}
			ids[d] = append(ids[d], id)
			if err := s.WriteTraces(ctx, spanAt(id, 1, day(d))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := s.locCount.Load(); n > 4 {
		t.Errorf("%d traces held in memory, budget 4", n)
	}
	all := func(s *SpanLogStore, days ...int) {
		t.Helper()
		for _, d := range days {
			for _, id := range ids[d] {
				if n := spanCount(t, s, id); n != 1 {
					t.Errorf("trace %s: %d spans, want 1", id, n)
				}
			}
		}
	}
	all(s, 8, 9, 10)
	held := func(s *SpanLogStore) map[int64]int {
		out := map[int64]int{}
		for _, p := range s.snapshot() {
			if n, ok := p.locs.size(); ok {
				out[p.day-day(1).Unix()/86400+1] = n
			}
		}
		return out
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openWithLocations(t, dir, clock, 4)
	<-s.locsLoaded
	if got := held(s); len(got) != 2 || got[10] != 2 || got[9] != 2 {
		t.Errorf("after reopen, days held in memory = %v, want the two newest with 2 traces each", got)
	}
	all(s, 8, 9, 10)
	// A later write to a day not held still lands in its table and is read.
	late := pcommon.TraceID{8, 15: 9}
	if err := s.WriteTraces(ctx, spanAt(late, 1, day(8).Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := spanCount(t, s, late); n != 1 {
		t.Errorf("late trace on a day not held: %d spans, want 1", n)
	}

	// A new day gets its index even with the budget spent: the oldest day
	// held lets go of its own.
	next := pcommon.TraceID{11, 15: 1}
	if err := s.WriteTraces(ctx, spanAt(next, 1, day(11))); err != nil {
		t.Fatal(err)
	}
	if got := held(s); len(got) != 2 || got[10] != 2 || got[11] != 1 {
		t.Errorf("after a write to a new day, days held in memory = %v, want 10 March with 2 traces and 11 March with 1", got)
	}
	if n := spanCount(t, s, next); n != 1 {
		t.Errorf("trace of the new day: %d spans, want 1", n)
	}

	if _, err := s.DropBefore(ctx, day(10)); err != nil {
		t.Fatal(err)
	}
	if n := s.locCount.Load(); n != 3 {
		t.Errorf("%d traces held in memory after dropping 8 and 9 March, want 3", n)
	}
	for _, id := range append(ids[8], ids[9]...) {
		if n := spanCount(t, s, id); n != 0 {
			t.Errorf("trace %s of a dropped day still has %d spans", id, n)
		}
	}
	all(s, 10)
}

// The spans and bytes the trace index counts at write time are what the
// read's sizing query measures in the stored rows, in memory and in the
// tables alike; a file whose trace index predates the counts gets them
// rebuilt when it is attached.
func TestTraceIndexCounts(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	clock := &fixedClock{time.Now()}
	base := storagetest.Base(clock.t)
	s := openWithLocations(t, dir, clock, 0)
	var ids []pcommon.TraceID
	for _, f := range []string{"traces_rich.json", "traces_split_a.json", "traces_split_b.json", "traces_split_a.json"} {
		td := storagetest.LoadTraces(t, f, base)
		if err := s.WriteTraces(ctx, td); err != nil {
			t.Fatal(err)
		}
		for i := range td.ResourceSpans().Len() {
			ss := td.ResourceSpans().At(i).ScopeSpans()
			for j := range ss.Len() {
				for k := range ss.At(j).Spans().Len() {
					ids = append(ids, ss.At(j).Spans().At(k).TraceID())
				}
			}
		}
	}
	check := func(s *SpanLogStore, what string) {
		t.Helper()
		for _, id := range ids {
			key := traceIDKey(id)
			where, err := s.locateTraces(ctx, s.snapshot(), []traceKey{key})
			if err != nil {
				t.Fatal(err)
			}
			var spans, bytes int64
			for _, r := range where[key] {
				if r.spans < 0 || r.bytes < 0 {
					t.Fatalf("%s: trace %s has unknown counts", what, id)
				}
				spans, bytes = spans+r.spans, bytes+r.bytes
			}
			var wantSpans, wantBytes int64
			for _, p := range s.snapshot() {
				var n, b int64
				if err := s.db.QueryRowContext(ctx, "SELECT count(*), coalesce(sum("+traceSizeSQL+"), 0)::BIGINT FROM "+p.alias+
					fmt.Sprintf(".spans WHERE trace_hi = %d::UBIGINT AND trace_lo = %d::UBIGINT", key.hi, key.lo)).Scan(&n, &b); err != nil {
					t.Fatal(err)
				}
				wantSpans, wantBytes = wantSpans+n, wantBytes+b
			}
			// Bytes exactly; spans at most (in memory, bounded by the
			// bytes).
			if spans < wantSpans || bytes != wantBytes {
				t.Errorf("%s: trace %s counted %d spans, %d bytes; stored %d, %d", what, id, spans, bytes, wantSpans, wantBytes)
			}
		}
	}
	check(s, "in memory")
	for _, p := range s.snapshot() {
		for _, col := range []string{"spans", "bytes"} {
			if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+p.alias+".trace_index DROP COLUMN "+col); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openWithLocations(t, dir, clock, -1)
	check(s, "tables rebuilt")
	if n := spanCount(t, s, storagetest.SplitTraceID); n != 4 {
		t.Errorf("split trace has %d spans after the rebuild, want 4", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openWithLocations(t, dir, clock, 0)
	<-s.locsLoaded
	if n := s.locCount.Load(); n == 0 {
		t.Error("no trace held in memory after loading")
	}
	check(s, "loaded into memory")
}

func TestFitsLimit(t *testing.T) {
	day := func(spans, bytes int64) spanRange { return spanRange{spans: spans, bytes: bytes} }
	for _, c := range []struct {
		name  string
		where []spanRange
		lim   storage.TraceReadLimit
		want  bool
	}{
		{"within both", []spanRange{day(3, 300), day(2, 200)}, storage.TraceReadLimit{MaxSpans: 5, MaxBytes: 500}, true},
		{"spans over across days", []spanRange{day(3, 300), day(3, 200)}, storage.TraceReadLimit{MaxSpans: 5, MaxBytes: 500}, false},
		{"bytes over", []spanRange{day(1, 501)}, storage.TraceReadLimit{MaxSpans: 5, MaxBytes: 500}, false},
		{"no byte bound", []spanRange{day(1, 1<<40)}, storage.TraceReadLimit{MaxSpans: 5}, true},
		{"unknown counts", []spanRange{day(1, 10), day(-1, -1)}, storage.TraceReadLimit{MaxSpans: 5, MaxBytes: 500}, false},
	} {
		if got := fitsLimit(c.where, &c.lim); got != c.want {
			t.Errorf("%s: fitsLimit = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTraceLocMerge(t *testing.T) {
	const ms = int64(time.Millisecond)
	a := makeTraceLoc(10*ms, 12*ms+1, 100) // the end rounds up to 13 ms
	if a.start != 10*ms || a.end() != 13*ms || a.bytes != 100 {
		t.Errorf("makeTraceLoc = %d..%d, %d bytes", a.start, a.end(), a.bytes)
	}
	m := a.merge(makeTraceLoc(5*ms, 6*ms, 50))
	if m.start != 5*ms || m.end() != 13*ms || m.bytes != 150 {
		t.Errorf("merge = %d..%d, %d bytes", m.start, m.end(), m.bytes)
	}
	// Spans years apart in one file: the range runs to the end of time.
	far := a.merge(makeTraceLoc(0, math.MaxInt64-1, 1))
	if far.start != 0 || far.end() != math.MaxInt64 {
		t.Errorf("far merge = %d..%d", far.start, far.end())
	}
	if far.merge(a).end() != math.MaxInt64 {
		t.Error("an unbounded range was bounded again")
	}
	if u := a.merge(makeTraceLoc(0, 0, -1)); u.bytes != unknownCount || u.spanRange("x").spans != -1 {
		t.Errorf("unknown size merged into %d bytes", u.bytes)
	}
	if r := a.spanRange("x"); r.spans != 100/64 || r.bytes != 100 {
		t.Errorf("spanRange = %+v", r)
	}
}

// While a day's trace index loads in the background, reads look in its
// table and writes add to the index; the loaded entries and the written
// ones are merged, so the index covers both.
func TestTraceLocationsLoadMergesWrites(t *testing.T) {
	at := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := &fixedClock{at}
	dir := t.TempDir()
	ctx := t.Context()
	s := openWithLocations(t, dir, clock, 0)
	old, fresh := pcommon.TraceID{1, 15: 1}, pcommon.TraceID{2, 15: 2}
	if err := s.WriteTraces(ctx, spanAt(old, 1, at)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openWithLocations(t, dir, clock, 0)
	<-s.locsLoaded
	p := s.snapshot()[0]
	// Back to loading, as if the loader had not reached the day yet.
	s.locCount.Add(-int64(p.locs.drop()))
	*p.locs = traceLocs{added: map[uint64]traceLoc{}, loading: true}
	for _, w := range []ptrace.Traces{spanAt(old, 2, at.Add(2*time.Hour)), spanAt(fresh, 1, at.Add(time.Hour))} {
		if err := s.WriteTraces(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if n, held := p.locs.size(); held {
		t.Errorf("a loading index counts as held (%d traces)", n)
	}
	if a, b := spanCount(t, s, old), spanCount(t, s, fresh); a != 2 || b != 1 {
		t.Errorf("while loading: %d and %d spans, want 2 and 1", a, b)
	}
	if err := s.loadTraceLocsNow(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if n, held := p.locs.size(); !held || n != 2 || s.locCount.Load() != 2 {
		t.Errorf("after loading: %d traces held (%v), %d counted; want 2", n, held, s.locCount.Load())
	}
	var r traceLoc
	p.locs.each([]traceKey{traceIDKey(old)}, func(_ traceKey, l traceLoc) { r = l })
	if r.start != at.UnixNano() || r.end() < at.Add(2*time.Hour).UnixNano() {
		t.Errorf("merged range %d..%d does not cover the old and the new span", r.start, r.end())
	}
	if a, b := spanCount(t, s, old), spanCount(t, s, fresh); a != 2 || b != 1 {
		t.Errorf("after loading: %d and %d spans, want 2 and 1", a, b)
	}
}

// rowsOf is a batch's rows for the index, sorted as WriteTraces sorts
// them: each span is {trace hi, trace lo, start ms}, with 100 bytes.
func rowsOf(spans ...[3]int64) []spanRow {
	rows := make([]spanRow, len(spans))
	for i, s := range spans {
		rows[i] = spanRow{traceHi: uint64(s[0]), traceLo: uint64(s[1]), start: s[2] * int64(time.Millisecond), size: 100}
	}
	slices.SortFunc(rows, func(a, b spanRow) int {
		return cmp.Or(cmp.Compare(a.traceHi, b.traceHi), cmp.Compare(a.traceLo, b.traceLo), cmp.Compare(a.start, b.start))
	})
	return rows
}

// The index answers the same whether a trace is in the sorted arrays (it
// was loaded, or compacted into them) or still in the map of traces added
// since: ranges widen, traces whose ids share the low half share one,
// and only new low halves count as new.
func TestTraceLocsAdd(t *testing.T) {
	type want struct {
		lo             uint64
		startMs, endMs int64
		bytes          uint32
	}
	for _, c := range []struct {
		name    string
		loaded  [][3]int64 // {lo, start ms, end ms}, sorted by lo
		batches [][][3]int64
		new     int // traces counted as new
		want    []want
		absent  []uint64
	}{
		{
			name:    "new traces",
			batches: [][][3]int64{{{1, 5, 10}, {1, 5, 12}, {1, 7, 11}}},
			new:     2,
			want:    []want{{5, 10, 12, 200}, {7, 11, 11, 100}},
			absent:  []uint64{6},
		},
		{
			name:    "a later batch widens a range both ways",
			batches: [][][3]int64{{{0, 5, 10}}, {{0, 5, 30}}, {{0, 5, 2}}},
			new:     1,
			want:    []want{{5, 2, 30, 300}},
		},
		{
			name:    "ids sharing their low half share a range",
			batches: [][][3]int64{{{1, 9, 100}, {2, 9, 50}}, {{3, 9, 70}}},
			new:     1,
			want:    []want{{9, 50, 100, 300}},
		},
		{
			name:    "a loaded trace widens in place and is not new",
			loaded:  [][3]int64{{3, 20, 40}, {8, 1, 2}},
			batches: [][][3]int64{{{0, 3, 45}, {0, 4, 1}}, {{0, 8, 0}}},
			new:     1,
			want:    []want{{3, 20, 45, 200}, {4, 1, 1, 100}, {8, 0, 2, 200}},
			absent:  []uint64{5, 9},
		},
		{
			name:    "keys at the ends of the range",
			loaded:  [][3]int64{{0, 1, 1}, {-1, 2, 2}}, // -1: the largest key
			batches: [][][3]int64{{{0, 0, 3}, {0, -1, 3}, {0, -2, 4}}},
			new:     1,
			want:    []want{{0, 1, 3, 200}, {math.MaxUint64, 2, 3, 200}, {math.MaxUint64 - 1, 4, 4, 100}},
		},
	} {
		for _, compactEach := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compact=%v", c.name, compactEach), func(t *testing.T) {
				l := newTraceLocs(true)
				for _, r := range c.loaded {
					l.keys = append(l.keys, uint64(r[0]))
					l.locs = append(l.locs, makeTraceLoc(r[1]*int64(time.Millisecond), r[2]*int64(time.Millisecond), 100))
				}
				n := 0
				for _, b := range c.batches {
					n += l.add(rowsOf(b...))
					if compactEach {
						l.compact()
					}
				}
				if n != c.new {
					t.Errorf("%d traces counted new, want %d", n, c.new)
				}
				if got, held := l.size(); !held || got != len(c.loaded)+c.new {
					t.Errorf("size = %d (held %v)", got, held)
				}
				checkTraceLocs(t, l)
				for _, w := range c.want {
					r, ok := l.get(w.lo)
					if !ok {
						t.Errorf("trace %d not found", w.lo)
						continue
					}
					if r.start != w.startMs*int64(time.Millisecond) || r.end() != w.endMs*int64(time.Millisecond) || r.bytes != w.bytes {
						t.Errorf("trace %d: %d..%d ms, %d bytes; want %d..%d ms, %d bytes", w.lo,
							r.start/int64(time.Millisecond), r.end()/int64(time.Millisecond), r.bytes, w.startMs, w.endMs, w.bytes)
					}
				}
				for _, lo := range c.absent {
					if _, ok := l.get(lo); ok {
						t.Errorf("trace %d found, never written", lo)
					}
				}
			})
		}
	}
}

// checkTraceLocs checks the index's own invariants: the arrays sorted
// without repeats, of one length, and no key both in them and in the map.
func checkTraceLocs(t *testing.T, l *traceLocs) {
	t.Helper()
	if len(l.keys) != len(l.locs) {
		t.Fatalf("%d keys, %d locations", len(l.keys), len(l.locs))
	}
	for i := 1; i < len(l.keys); i++ {
		if l.keys[i-1] >= l.keys[i] {
			t.Fatalf("keys out of order at %d: %d, %d", i, l.keys[i-1], l.keys[i])
		}
	}
	for id := range l.added {
		if _, ok := slices.BinarySearch(l.keys, id); ok {
			t.Fatalf("trace %d both in the arrays and in the map", id)
		}
	}
}

// Against a plain map of the same widening, over enough traces that add
// compacts on its own several times: every trace is found with the same
// range, whatever part of the index holds it.
func TestTraceLocsMatchesMap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	l := newTraceLocs(true)
	ref := map[uint64]traceLoc{}
	compactions := 0
	for range 400 {
		spans := make([][3]int64, 1000)
		for i := range spans {
			// Few enough distinct low halves that many repeat.
			spans[i] = [3]int64{int64(rnd.Uint64N(3)), int64(rnd.Uint64N(300_000) * 0x9E3779B97F4A7C15), int64(rnd.Uint64N(1 << 30))}
		}
		rows := rowsOf(spans...)
		before := len(l.keys)
		want := 0
		for i := 0; i < len(rows); {
			j := i + 1
			for j < len(rows) && rows[j].traceHi == rows[i].traceHi && rows[j].traceLo == rows[i].traceLo {
				j++
			}
			b := makeTraceLoc(rows[i].start, rows[j-1].start, int64(j-i)*100)
			if r, ok := ref[rows[i].traceLo]; ok {
				ref[rows[i].traceLo] = r.merge(b)
			} else {
				ref[rows[i].traceLo] = b
				want++
			}
			i = j
		}
		if n := l.add(rows); n != want {
			t.Fatalf("add counted %d new traces, want %d", n, want)
		}
		if len(l.keys) != before {
			compactions++
		}
	}
	checkTraceLocs(t, l)
	if compactions < 2 {
		t.Errorf("%d compactions; the test means to cover several", compactions)
	}
	if n, _ := l.size(); n != len(ref) {
		t.Errorf("%d traces held, want %d", n, len(ref))
	}
	for id, w := range ref {
		if r, ok := l.get(id); !ok || r != w {
			t.Fatalf("trace %d: %+v (%v), want %+v", id, r, ok, w)
		}
	}
}

func TestSortLocRows(t *testing.T) {
	random := func(n int, mask uint64) []locRow {
		rnd := rand.New(rand.NewPCG(uint64(n), mask))
		rows := make([]locRow, n)
		for i := range rows {
			rows[i] = locRow{id: rnd.Uint64() & mask, lo: int64(i)}
		}
		return rows
	}
	for _, c := range []struct {
		name string
		rows []locRow
	}{
		{"none", nil},
		{"one", []locRow{{id: 7}}},
		{"sorted", []locRow{{id: 1}, {id: 2}, {id: 3}}},
		{"reversed, with repeats", []locRow{{id: 3, lo: 0}, {id: 2}, {id: 3, lo: 1}, {id: 1}}},
		{"ends of the range", []locRow{{id: math.MaxUint64}, {id: 0}, {id: 1 << 63}, {id: 1<<63 - 1}}},
		{"random", random(10_000, math.MaxUint64)},
		{"random, one byte varying", random(10_000, 0xff00)},
		{"random, all in one bucket", random(10_000, 0xffff_ffff)},
		{"random, few distinct", random(10_000, 0x0101_0000_0000_0003)},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := slices.Clone(c.rows)
			byID := func(a, b locRow) int { return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.lo, b.lo)) }
			slices.SortFunc(want, byID)
			got := sortLocRows(slices.Clone(c.rows))
			if !slices.IsSortedFunc(got, func(a, b locRow) int { return cmp.Compare(a.id, b.id) }) {
				t.Fatalf("sortLocRows = %v, not in order", got)
			}
			// Rows of one id may come in any order: their locations merge.
			slices.SortFunc(got, byID)
			if !slices.Equal(got, want) {
				t.Errorf("sortLocRows lost or changed rows: %v, want %v", got, want)
			}
		})
	}
}

// Writes racing the load of a day's locations, new traces and traces the
// table already holds, are all covered once it is in: each widened the
// loading index before its commit, and the load merges what it finds
// there with what it read.
func TestTraceLocationsLoadConcurrentWrites(t *testing.T) {
	at := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := &fixedClock{at}
	dir := t.TempDir()
	ctx := t.Context()
	s := openWithLocations(t, dir, clock, 0)
	const old, writers, each = 200, 4, 25
	id := func(w, i int) pcommon.TraceID { return pcommon.TraceID{byte(w), 14: byte(w), 15: byte(i + 1)} }
	for i := range old {
		if err := s.WriteTraces(ctx, spanAt(id(0, i), 1, at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the file written at close, so that the table is read.
	if err := os.Remove(filepath.Join(dir, "spanlog-20250310.duckdb"+locsFileSuffix)); err != nil {
		t.Fatal(err)
	}
	s = openWithLocations(t, dir, clock, 0)
	<-s.locsLoaded
	p := s.snapshot()[0]
	s.locCount.Add(-int64(p.locs.drop()))
	*p.locs = traceLocs{added: map[uint64]traceLoc{}, loading: true}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 1; w <= writers; w++ {
		wg.Go(func() {
			for i := range each {
				// A new trace, and a later span of an old one, hours away.
				if err := s.WriteTraces(ctx, spanAt(id(w, i), 1, at.Add(time.Duration(w)*time.Minute))); err != nil {
					errs <- err
					return
				}
				if err := s.WriteTraces(ctx, spanAt(id(0, (w*each+i)%old), byte(w+1), at.Add(time.Duration(w)*time.Hour))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := s.loadTraceLocsNow(ctx, &p); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, held := p.locs.size(); !held || n != old+writers*each || s.locCount.Load() != int64(n) {
		t.Fatalf("after the load: %d traces held (%v), %d counted; want %d", n, held, s.locCount.Load(), old+writers*each)
	}
	want := map[pcommon.TraceID]int{}
	for i := range old {
		want[id(0, i)] = 1
	}
	for w := 1; w <= writers; w++ {
		for i := range each {
			want[id(w, i)] = 1
			want[id(0, (w*each+i)%old)]++
		}
	}
	for tid, n := range want {
		if got := spanCount(t, s, tid); got != n {
			t.Errorf("trace %s: %d spans, want %d", tid, got, n)
		}
	}
}
