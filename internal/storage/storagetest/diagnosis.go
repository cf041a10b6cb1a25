package storagetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// shapeSpan is a span of the diagnosis fixtures; name doubles as its id.
type shapeSpan struct {
	service, name string
	kind          ptrace.SpanKind
	trace         pcommon.TraceID
	parent        string // name of the parent span; "" for a root
	start         time.Time
	dur           time.Duration // -1: sent without an end time
	attrs         map[string]any
	peer          string // the Peer SpanShapes must report
}

// spanIDOf derives a stable, distinct span id from a fixture span's name.
func spanIDOf(name string) pcommon.SpanID {
	if name == "" {
		return pcommon.SpanID{}
	}
	var id pcommon.SpanID
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	for i := range id {
		id[i] = byte(h >> (8 * i))
	}
	return id
}

// writeShapeSpans writes spans in one batch, one resource per service.
func writeShapeSpans(t *testing.T, s storage.SpanLogStore, spans []shapeSpan) {
	t.Helper()
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, sp := range spans {
		ss, ok := bySvc[sp.service]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			if sp.service != "" {
				rs.Resource().Attributes().PutStr("service.name", sp.service)
			}
			rs.Resource().Attributes().PutStr("server.address", "resource-level-is-ignored")
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			bySvc[sp.service] = ss
		}
		out := ss.AppendEmpty()
		out.SetTraceID(sp.trace)
		out.SetSpanID(spanIDOf(sp.name))
		out.SetParentSpanID(spanIDOf(sp.parent))
		out.SetName(sp.name)
		out.SetKind(sp.kind)
		out.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.start))
		if sp.dur >= 0 {
			out.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.start.Add(sp.dur)))
		}
		if err := out.Attributes().FromRaw(sp.attrs); err != nil {
			t.Fatal(err)
		}
	}
	mustWriteTraces(t, s, td)
}

func (sp shapeSpan) shape() storage.SpanShape {
	end := int64(0)
	if sp.dur >= 0 {
		end = sp.start.Add(sp.dur).UnixNano()
	}
	return storage.SpanShape{
		TraceID: sp.trace, SpanID: spanIDOf(sp.name), ParentSpanID: spanIDOf(sp.parent),
		Service: sp.service, Name: sp.name, Kind: sp.kind,
		Start: sp.start.UnixNano(), End: end, Peer: sp.peer,
	}
}

func testSpanShapes(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	ctx := t.Context()
	ms := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	ta, tb := pcommon.TraceID{0xaa, 15: 1}, pcommon.TraceID{0xbb, 15: 2}
	const (
		server   = ptrace.SpanKindServer
		client   = ptrace.SpanKindClient
		producer = ptrace.SpanKindProducer
		consumer = ptrace.SpanKindConsumer
		internal = ptrace.SpanKindInternal
	)
	spans := []shapeSpan{
		// The previous UTC day: found by a range reaching back to it.
		{"gateway", "yesterday", server, tb, "", base.Add(-20 * time.Hour), time.Millisecond, nil, ""},
		{"gateway", "before range", server, tb, "", base.Add(-time.Nanosecond), time.Millisecond, nil, ""},
		{"gateway", "GET /checkout", server, ta, "", ms(0), 100 * time.Millisecond,
			map[string]any{"server.address": "shop.example", "server.port": int64(443), "peer.service": "not for servers"}, "shop.example:443"},
		{"gateway", "POST orders", client, ta, "GET /checkout", ms(10), 20 * time.Millisecond,
			map[string]any{"peer.service": "orders", "server.address": "orders.internal", "server.port": int64(8080)}, "orders"},
		{"gateway", "GET inventory", client, ta, "GET /checkout", ms(20), time.Millisecond,
			map[string]any{"server.address": "inventory", "net.peer.name": "not the first choice"}, "inventory"},
		{"gateway", "SELECT orders", client, ta, "GET /checkout", ms(30), time.Millisecond,
			map[string]any{"net.peer.name": "db", "net.peer.port": int64(5432), "net.host.name": "not for clients"}, "db:5432"},
		{"gateway", "publish", producer, ta, "GET /checkout", ms(40), time.Millisecond,
			map[string]any{"server.address": "kafka", "server.port": "9092", "db.system": "x"}, "kafka:9092"},
		{"orders", "POST /orders", server, ta, "POST orders", ms(50), 10 * time.Millisecond,
			map[string]any{"net.host.name": "orders", "net.host.port": int64(8080), "net.peer.name": "not for servers"}, "orders:8080"},
		{"orders", "consume", consumer, ta, "publish", ms(60), time.Millisecond,
			map[string]any{"server.address": "kafka"}, "kafka"},
		{"orders", "compute", internal, ta, "POST /orders", ms(70), time.Millisecond,
			map[string]any{"peer.service": "x", "server.address": "y"}, ""},
		{"orders", "empty peer.service", client, ta, "POST /orders", ms(80), time.Millisecond,
			map[string]any{"peer.service": "", "server.address": "fallback"}, "fallback"},
		{"orders", "port without host", server, tb, "", ms(90), time.Millisecond,
			map[string]any{"server.port": int64(80), "http.route": "/x"}, ""},
		{"orders", "never ended", client, tb, "port without host", ms(100), -1, nil, ""},
		{"", "no service", ptrace.SpanKindUnspecified, tb, "", ms(110), time.Millisecond,
			map[string]any{"server.address": "unspecified kinds have no peer"}, ""},
		{"orders", "at the end", server, tb, "", ms(120), time.Millisecond, nil, ""},
		{"orders", "tie a", server, tb, "", ms(130), time.Millisecond, nil, ""},
		{"orders", "tie b", server, tb, "", ms(130), time.Millisecond, nil, ""},
	}
	// Written newest first and in two batches: the order is the store's.
	writeShapeSpans(t, s, reversed(spans[8:]))
	writeShapeSpans(t, s, reversed(spans[:8]))
	want := func(names ...string) []storage.SpanShape {
		var out []storage.SpanShape
		for _, n := range names {
			for _, sp := range spans {
				if sp.name == n {
					out = append(out, sp.shape())
				}
			}
		}
		return out
	}
	inRange := []string{"GET /checkout", "POST orders", "GET inventory", "SELECT orders", "publish",
		"POST /orders", "consume", "compute", "empty peer.service", "port without host", "never ended", "no service"}
	tests := []struct {
		name string
		q    storage.SpanShapeQuery
		want []storage.SpanShape
	}{
		{"start inclusive, end exclusive", storage.SpanShapeQuery{Start: base, End: ms(120)}, want(inRange...)},
		{"limit keeps the earliest", storage.SpanShapeQuery{Start: base, End: ms(120), Limit: 3}, want(inRange[:3]...)},
		{"limit above the count", storage.SpanShapeQuery{Start: base, End: ms(120), Limit: 100}, want(inRange...)},
		{"across days", storage.SpanShapeQuery{Start: base.Add(-21 * time.Hour), End: ms(1), Limit: 2},
			want("yesterday", "before range")},
		{"empty range", storage.SpanShapeQuery{Start: ms(121), End: ms(125)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.SpanShapes(ctx, tt.q)
			if err != nil {
				t.Fatalf("SpanShapes: %v", err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SpanShapes(%s, %s, %d) =\n%s\nwant\n%s", tt.q.Start.Sub(base), tt.q.End.Sub(base), tt.q.Limit, showShapes(got), showShapes(tt.want))
			}
		})
	}
	// Ties may come in any order, but the limit still holds.
	got, err := s.SpanShapes(ctx, storage.SpanShapeQuery{Start: ms(125), End: ms(200), Limit: 1})
	if err != nil {
		t.Fatalf("SpanShapes: %v", err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0].Name, "tie ") {
		t.Errorf("SpanShapes with a limit inside a tie =\n%s\nwant one of the tied spans", showShapes(got))
	}
}

func reversed[T any](in []T) []T {
	out := slices.Clone(in)
	slices.Reverse(out)
	return out
}

func showShapes(shapes []storage.SpanShape) string {
	var b strings.Builder
	for _, sh := range shapes {
		fmt.Fprintf(&b, "  %s/%s parent=%s %s %s %q start=%d end=%d peer=%q\n",
			sh.TraceID, sh.SpanID, sh.ParentSpanID, sh.Service, sh.Kind, sh.Name, sh.Start, sh.End, sh.Peer)
	}
	return b.String()
}

func testLogTraceCoverage(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	ctx := t.Context()
	var (
		stored     = pcommon.TraceID{0x40, 15: 1} // a span in the span range
		atSpanFrom = pcommon.TraceID{0x41, 15: 1} // a span exactly at its start
		atSpanTo   = pcommon.TraceID{0x05, 15: 1} // a span exactly at its end
		earlier    = pcommon.TraceID{0x50, 15: 1} // a span before it
		prevDay    = pcommon.TraceID{0x60, 15: 1} // a span on the previous day
		hiZero     = pcommon.TraceID{15: 9}       // trace_hi 0: still an id
		loOrder2   = pcommon.TraceID{0x30, 15: 2}
		loOrder1   = pcommon.TraceID{0x30, 15: 1}
		highBit    = pcommon.TraceID{0xff, 15: 1}
		notLogged  = pcommon.TraceID{0x01, 15: 1} // spans, but no log names it
	)
	spanFrom, spanTo := base.Add(-time.Hour), base.Add(time.Hour)
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i, sp := range []struct {
		id pcommon.TraceID
		at time.Time
	}{
		{stored, base}, {stored, base.Add(-3 * time.Hour)}, {atSpanFrom, spanFrom}, {atSpanTo, spanTo},
		{earlier, spanFrom.Add(-time.Nanosecond)}, {prevDay, base.Add(-12*time.Hour - 30*time.Minute)}, {notLogged, base},
	} {
		out := ss.AppendEmpty()
		out.SetTraceID(sp.id)
		out.SetSpanID(pcommon.SpanID{byte(i + 1)})
		out.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.at))
		out.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.at.Add(time.Millisecond)))
	}
	mustWriteTraces(t, s, td)

	logFrom, logTo := base.Add(-30*time.Minute), base.Add(30*time.Minute)
	ld := plog.NewLogs()
	bySvc := map[string]plog.LogRecordSlice{}
	log := func(svc string, id pcommon.TraceID, at time.Time) plog.LogRecord {
		lrs, ok := bySvc[svc]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("service.name", svc)
			lrs = rl.ScopeLogs().AppendEmpty().LogRecords()
			bySvc[svc] = lrs
		}
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
		lr.SetTraceID(id)
		lr.Body().SetStr("coverage")
		return lr
	}
	for _, id := range []pcommon.TraceID{stored, stored, atSpanFrom, atSpanTo, earlier, prevDay, hiZero, loOrder2, loOrder1, highBit, {}} {
		log("checkout", id, base)
	}
	log("checkout", stored, logFrom)                     // start inclusive
	log("checkout", pcommon.TraceID{0x02, 15: 1}, logTo) // end exclusive
	log("payments", stored, base.Add(time.Minute))
	log("payments", stored, base.Add(2*time.Minute))
	log("batch", pcommon.TraceID{}, base) // no trace id: left out
	log("late", highBit, logTo)           // outside the log range: left out
	// Sent without a timestamp: the observed time places it.
	unstamped := pcommon.TraceID{0x03, 15: 1}
	lr := log("ingest", unstamped, base)
	lr.SetObservedTimestamp(lr.Timestamp())
	lr.SetTimestamp(0)
	mustWriteLogs(t, s, ld)

	q := storage.LogTraceQuery{Start: logFrom, End: logTo, SpanStart: spanFrom, SpanEnd: spanTo}
	wide := q
	wide.SpanStart = base.Add(-13 * time.Hour)
	tests := []struct {
		name string
		q    storage.LogTraceQuery
		want []storage.ServiceLogTraces
	}{
		{"span range bounds", q, []storage.ServiceLogTraces{
			{Service: "checkout", TraceIDs: 9, Missing: 7, Samples: []pcommon.TraceID{hiZero, atSpanTo, loOrder1, loOrder2, earlier}},
			{Service: "ingest", TraceIDs: 1, Missing: 1, Samples: []pcommon.TraceID{unstamped}},
			{Service: "payments", TraceIDs: 1},
		}},
		{"span range across days", wide, []storage.ServiceLogTraces{
			{Service: "checkout", TraceIDs: 9, Missing: 5, Samples: []pcommon.TraceID{hiZero, atSpanTo, loOrder1, loOrder2, highBit}},
			{Service: "ingest", TraceIDs: 1, Missing: 1, Samples: []pcommon.TraceID{unstamped}},
			{Service: "payments", TraceIDs: 1},
		}},
		{"no span stored in range", storage.LogTraceQuery{Start: base, End: base.Add(time.Second), SpanStart: base.Add(40 * time.Hour), SpanEnd: base.Add(41 * time.Hour)}, []storage.ServiceLogTraces{
			{Service: "checkout", TraceIDs: 9, Missing: 9, Samples: []pcommon.TraceID{hiZero, atSpanTo, loOrder1, loOrder2, stored}},
			{Service: "ingest", TraceIDs: 1, Missing: 1, Samples: []pcommon.TraceID{unstamped}},
		}},
		{"no log in range", storage.LogTraceQuery{Start: base.Add(time.Hour), End: base.Add(2 * time.Hour), SpanStart: spanFrom, SpanEnd: spanTo}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.LogTraceCoverage(ctx, tt.q)
			if err != nil {
				t.Fatalf("LogTraceCoverage: %v", err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LogTraceCoverage =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func testDiagnosisClosed(t *testing.T, s storage.SpanLogStore, base time.Time) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	if _, err := s.SpanShapes(ctx, storage.SpanShapeQuery{Start: base, End: base.Add(time.Hour)}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("SpanShapes after Close: %v, want ErrClosed", err)
	}
	q := storage.LogTraceQuery{Start: base, End: base.Add(time.Hour), SpanStart: base, SpanEnd: base.Add(time.Hour)}
	if _, err := s.LogTraceCoverage(ctx, q); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("LogTraceCoverage after Close: %v, want ErrClosed", err)
	}
}
