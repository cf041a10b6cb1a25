package embedded

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// TestFindTracesWindows holds the search's growing windows (searchDay) to
// the answer of reading every span: traces dense in the last seconds and
// sparse over two days, some with an old matching span and a newer one
// that does not match, and a limit that ends the search in each of the
// windows, in one day file or across two.
func TestFindTracesWindows(t *testing.T) {
	now := time.Date(2026, 3, 4, 0, 0, 30, 0, time.UTC) // 30 s into a day
	clock := &fixedClock{t: now}
	s := openAt(t, t.TempDir(), clock, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	type span struct {
		at time.Time
		op string
	}
	traces := map[pcommon.TraceID][]span{}
	add := func(at time.Time, ops ...string) {
		var id pcommon.TraceID
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		for i, op := range ops {
			traces[id] = append(traces[id], span{at.Add(time.Duration(i) * 40 * time.Second), op})
		}
	}
	for i := range 30 { // the last 3 s
		add(now.Add(-time.Duration(i)*100*time.Millisecond), "a")
	}
	for i := range 40 { // every 7 s over the 5 minutes before
		add(now.Add(-3*time.Second-time.Duration(i)*7*time.Second), "b", "a")
	}
	for i := range 60 { // every 47 min over two days
		add(now.Add(-10*time.Minute-time.Duration(i)*47*time.Minute), "a", "b")
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for id, ss := range traces {
		for i, sp := range ss {
			x := spans.AppendEmpty()
			x.SetTraceID(id)
			x.SetSpanID(pcommon.SpanID{byte(i + 1), id[0], id[1]})
			x.SetName(sp.op)
			x.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.at))
			x.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.at.Add(time.Millisecond)))
		}
	}
	if err := s.WriteTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if n := len(s.snapshot()); n != 3 {
		t.Fatalf("%d day files, want 3", n)
	}
	// want lists the traces with a span named op (any if empty) in
	// [from, end), newest match first.
	want := func(op string, from time.Time, limit int) []pcommon.TraceID {
		type found struct {
			id     pcommon.TraceID
			newest time.Time
		}
		var all []found
		for id, ss := range traces {
			var f found
			for _, sp := range ss {
				if (op == "" || sp.op == op) && !sp.at.Before(from) && sp.at.After(f.newest) {
					f = found{id, sp.at}
				}
			}
			if !f.newest.IsZero() {
				all = append(all, f)
			}
		}
		slices.SortFunc(all, func(a, b found) int {
			ah, al := traceIDKey(a.id).hi, traceIDKey(a.id).lo
			bh, bl := traceIDKey(b.id).hi, traceIDKey(b.id).lo
			return cmp.Or(b.newest.Compare(a.newest), cmp.Compare(ah, bh), cmp.Compare(al, bl))
		})
		var out []pcommon.TraceID
		for _, f := range all[:min(len(all), limit)] {
			out = append(out, f.id)
		}
		return out
	}
	for _, op := range []string{"", "a", "b"} {
		for _, back := range []time.Duration{time.Minute, 6 * time.Hour, 72 * time.Hour} {
			for _, limit := range []int{1, 5, 29, 31, 60, 75, 200} {
				t.Run(fmt.Sprintf("op=%q/back=%s/limit=%d", op, back, limit), func(t *testing.T) {
					from := now.Add(-back)
					got, err := s.FindTraces(t.Context(), storage.TraceQuery{
						Service: "svc", Operation: op, Start: from, End: now.Add(time.Hour), Limit: limit,
					})
					if err != nil {
						t.Fatal(err)
					}
					var ids []pcommon.TraceID
					for _, g := range got {
						ids = append(ids, g.TraceID)
					}
					if w := want(op, from, limit); !slices.Equal(ids, w) {
						t.Errorf("got %d traces %v\nwant %d %v", len(ids), ids, len(w), w)
					}
				})
			}
		}
	}
}

// TestFindTracesQuotedNames: a service or operation written into the
// query as a constant (quotes doubled) finds its spans, and only those.
func TestFindTracesQuotedNames(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	names := []string{"it's", "o''brien", `back\slash`, "plain"}
	td := ptrace.NewTraces()
	for i, n := range names {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", n)
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{byte(i + 1)})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName(n)
		now := time.Now()
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	}
	if err := s.WriteTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		ids, err := s.FindTraceIDs(t.Context(), storage.TraceQuery{Service: n, Operation: n})
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		if len(ids) != 1 || ids[0] != (pcommon.TraceID{byte(i + 1)}) {
			t.Errorf("%q: found %v, want trace %d alone", n, ids, i+1)
		}
	}
}
