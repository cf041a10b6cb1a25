package storagetest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

// countRecord is one record of the count fixture.
type countRecord struct {
	at      time.Duration // from base
	body    string
	sev     plog.SeverityNumber
	sevText string
	attrs   map[string]any
}

// countFixture writes records of three resources, some on minute edges,
// some on the day before base's, with attributes of every scalar type
// (and some without), severities in bands and outside them.
func countFixture(t *testing.T, s storage.SpanLogStore, base time.Time) {
	t.Helper()
	recs := map[*streamResource][]countRecord{
		&resCheckoutProd: {
			{at: 0, body: "GET /cart 200", sev: plog.SeverityNumberInfo, attrs: map[string]any{"http.route": "/cart", "code": int64(200), "ok": true}},
			{at: time.Minute, body: "GET /cart 200", sev: plog.SeverityNumberInfo2, attrs: map[string]any{"http.route": "/cart", "code": int64(200), "ok": true}},
			{at: time.Minute + time.Nanosecond, body: "ERROR timeout on /pay", sev: plog.SeverityNumberError, attrs: map[string]any{"http.route": "/pay", "code": int64(504), "ratio": 2.0, "ok": false}},
			{at: 90 * time.Second, body: "error Timeout on /pay ünï", sev: plog.SeverityNumberError4, attrs: map[string]any{"http.route": "/pay", "ratio": 0.25}},
			{at: 2 * time.Minute, body: "retrying €", sevText: "warning", attrs: map[string]any{"ratio": 1e-300}},
			{at: 3*time.Minute - time.Nanosecond, body: "no level"},
			{at: -30 * time.Hour, body: "ERROR yesterday", sev: plog.SeverityNumberFatal, attrs: map[string]any{"http.route": "/cart"}},
			{at: -30*time.Hour + time.Minute, body: "old line", sevText: "Notice", attrs: map[string]any{"code": int64(-1)}},
		},
		&resCheckoutDev: {
			{at: time.Minute, body: "GET /cart 200", sev: plog.SeverityNumberDebug, attrs: map[string]any{"http.route": "/cart", "code": int64(200)}},
			{at: 150 * time.Second, body: "ERROR timeout", sev: plog.SeverityNumberError, attrs: map[string]any{"code": int64(500), "ok": true}},
		},
		&resPayments: {
			{at: 30 * time.Second, body: "payment ok", sev: plog.SeverityNumberTrace, attrs: map[string]any{"http.route": "/pay", "ratio": math.Inf(1)}},
			{at: 2 * time.Minute, body: "payment ERROR", sev: plog.SeverityNumberWarn, attrs: map[string]any{"http.route": "/pay", "code": int64(402)}},
			{at: -29 * time.Hour, body: "old payment", sev: plog.SeverityNumberInfo, sevText: "INFO"},
		},
	}
	ld := plog.NewLogs()
	for _, res := range []*streamResource{&resCheckoutProd, &resCheckoutDev, &resPayments} {
		rl := ld.ResourceLogs().AppendEmpty()
		for _, k := range slices.Sorted(maps.Keys(res.attrs)) {
			if err := rl.Resource().Attributes().PutEmpty(k).FromRaw(res.attrs[k]); err != nil {
				t.Fatal(err)
			}
		}
		lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
		for _, r := range recs[res] {
			lr := lrs.AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(r.at)))
			lr.Body().SetStr(r.body)
			lr.SetSeverityNumber(r.sev)
			lr.SetSeverityText(r.sevText)
			if err := lr.Attributes().FromRaw(r.attrs); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustWriteLogs(t, s, ld)
}

// testLogCounts checks CountLogs against counting FindLogs' records.
func testLogCounts(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	c, ok := s.(storage.LogCounter)
	if !ok {
		t.Skipf("%T does not count logs", s)
	}
	countFixture(t, s, base)
	var all []string
	keyOf := map[string]string{}
	for _, st := range mustLogStreams(t, s, storage.LogQuery{}) {
		all = append(all, st.Key)
		for _, r := range []streamResource{resCheckoutProd, resCheckoutDev, resPayments} {
			if fmt.Sprint(st.Resource) == fmt.Sprint(r.attrs) {
				keyOf[r.name] = st.Key
			}
		}
	}
	if len(all) != 3 || len(keyOf) != 3 {
		t.Fatalf("streams %v, want the fixture's three", keyOf)
	}
	attrs := []string{"http.route", "code", "ratio", "ok", "absent"}
	for _, tc := range []struct {
		name string
		q    storage.LogCountQuery
	}{
		{"minutes", storage.LogCountQuery{Streams: all, Origin: base.Add(-time.Minute), Step: time.Minute,
			Start: base.Add(-time.Minute), End: base.Add(5 * time.Minute), Attributes: attrs}},
		{"no attributes", storage.LogCountQuery{Streams: all, Origin: base.Add(-time.Hour), Step: time.Minute,
			Start: base.Add(-time.Hour), End: base.Add(time.Hour)}},
		// Start on a record leaves it out, End on one keeps it.
		{"bounds on records", storage.LogCountQuery{Streams: all, Origin: base.Add(-10 * time.Second), Step: 10 * time.Second,
			Start: base, End: base.Add(2 * time.Minute), Attributes: []string{"ok"}}},
		{"multi-day", storage.LogCountQuery{Streams: all, Origin: base.Add(-31 * time.Hour), Step: time.Hour,
			Start: base.Add(-31 * time.Hour), End: base.Add(time.Hour), Attributes: []string{"code", "http.route"}}},
		{"contains", storage.LogCountQuery{Streams: all, Origin: base.Add(-31 * time.Hour), Step: time.Minute,
			Start: base.Add(-31 * time.Hour), End: base.Add(time.Hour), Contains: []string{"ERROR"}, NotContains: []string{"timeout"}}},
		{"contains both", storage.LogCountQuery{Streams: all, Origin: base.Add(-time.Hour), Step: time.Minute,
			Start: base.Add(-time.Hour), End: base.Add(time.Hour), Contains: []string{"GET", "/cart"}, Attributes: []string{"http.route"}}},
		{"contains non-ASCII", storage.LogCountQuery{Streams: all, Origin: base.Add(-time.Hour), Step: time.Minute,
			Start: base.Add(-time.Hour), End: base.Add(time.Hour), Contains: []string{"Timeout on /pay ün"}}},
		{"one stream", storage.LogCountQuery{Streams: []string{keyOf[resCheckoutProd.name]}, Origin: base.Add(-31 * time.Hour), Step: 5 * time.Minute,
			Start: base.Add(-30 * time.Hour), End: base.Add(3 * time.Minute), Attributes: []string{"ratio"}}},
		{"no streams", storage.LogCountQuery{Origin: base.Add(-31 * time.Hour), Step: time.Minute,
			Start: base.Add(-31 * time.Hour), End: base.Add(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.CountLogs(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("CountLogs: %v", err)
			}
			want := expectedCounts(t, s, tc.q)
			if len(want) == 0 && len(tc.q.Streams) > 0 {
				t.Fatal("the fixture has nothing to count; the case tests nothing")
			}
			if g := countLines(t, tc.q, got); !slices.Equal(g, want) {
				t.Errorf("CountLogs:\n got %q\nwant %q", g, want)
			}
		})
	}

	// The reference above is only as good as expectedCounts; pin a few
	// counts by hand. The record at base+1m is on an edge and belongs to
	// the bin that ends there.
	got, err := c.CountLogs(t.Context(), storage.LogCountQuery{Streams: []string{keyOf[resCheckoutProd.name]},
		Origin: base, Step: time.Minute, Start: base, End: base.Add(time.Hour), Attributes: []string{"ratio"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"0 INFO  [\"\"] 1/13",
		"1 ERROR  [\"2.0\"] 1/21",
		"1 ERROR  [\"0.25\"] 1/27",
		"1 UNSET warning [\"1e-300\"] 1/12", // at 2m, the end of bin 1
		"2 UNSET  [\"\"] 1/8",
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, fmt.Sprintf("%d %s %s %q %d/%d", c.Bin, c.Severity, c.SeverityText, c.Attributes, c.Entries, c.Bytes))
	}
	slices.Sort(lines)
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("pinned counts:\n got %q\nwant %q", lines, want)
	}
}

// testLogCountValues checks that CountLogs reports attribute values of
// every type byte for byte as attrenc stores them, under keys holding the
// characters JSON paths and JSON text treat specially, and keys that also
// occur nested or inside another key.
func testLogCountValues(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	c, ok := s.(storage.LogCounter)
	if !ok {
		t.Skipf("%T does not count logs", s)
	}
	values := []func(v pcommon.Value){
		func(v pcommon.Value) { v.SetStr("text") },
		func(v pcommon.Value) { v.SetStr("") },
		func(v pcommon.Value) { v.SetStr("quote\" back\\ nl\n tab\t ctl\x01 {ünï} €/ \"v\":1") },
		// No '{': a flat map, whose value ClickHouse extracts in SQL.
		func(v pcommon.Value) { v.SetStr(`close} bracket] comma, "quoted", "v":2,`) },
		func(v pcommon.Value) { v.SetStr(`ends in a backslash\`) },
		func(v pcommon.Value) { v.SetStr("\x00starts with NUL") },
		func(v pcommon.Value) { v.SetStr("bad utf8 \xff") },
		func(v pcommon.Value) { v.SetInt(42) },
		func(v pcommon.Value) { v.SetInt(-1 << 63) },
		func(v pcommon.Value) { v.SetInt(1<<63 - 1) },
		func(v pcommon.Value) { v.SetDouble(2) },
		func(v pcommon.Value) { v.SetDouble(0.1) },
		func(v pcommon.Value) { v.SetDouble(1e-300) },
		func(v pcommon.Value) { v.SetDouble(-1.5e300) },
		func(v pcommon.Value) { v.SetDouble(1e21) },
		func(v pcommon.Value) { v.SetDouble(math.NaN()) },
		func(v pcommon.Value) { v.SetDouble(math.Inf(1)) },
		func(v pcommon.Value) { v.SetBool(true) },
		func(v pcommon.Value) { v.SetBool(false) },
		func(v pcommon.Value) {},
		func(v pcommon.Value) { v.SetEmptyBytes().FromRaw([]byte{0, 1, 255}) },
		func(v pcommon.Value) {
			sl := v.SetEmptySlice()
			sl.AppendEmpty().SetInt(1)
			sl.AppendEmpty().SetDouble(1)
			sl.AppendEmpty().SetStr("x")
		},
		func(v pcommon.Value) {
			sl := v.SetEmptySlice()
			sl.AppendEmpty().SetStr(`x"],`)
			sl.AppendEmpty().SetEmptySlice().AppendEmpty().SetBool(true)
		},
		// One key: the memory store keeps maps as Go maps, in no order.
		func(v pcommon.Value) { v.SetEmptyMap().PutDouble("v", 3) },
	}
	keys := []string{"v", "a.b", `q"uote`, "sl/ash", "ti~lde", "", "k'ey", `back\slash`}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "svc")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	at := time.Duration(0)
	add := func() plog.LogRecord {
		at += time.Second
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(at)))
		lr.Body().SetStr("line")
		return lr
	}
	for _, set := range values {
		lr := add()
		for _, k := range keys {
			set(lr.Attributes().PutEmpty(k))
		}
	}
	// Without attributes (an empty map, which the SQL stores keep as "").
	add()
	// "v" nested before the top-level one, and inside an earlier key.
	lr := add()
	lr.Attributes().PutEmptyMap("m").PutInt("v", 1)
	lr.Attributes().PutInt("v", 2)
	lr = add()
	lr.Attributes().PutInt(`a"v`, 1)
	lr.Attributes().PutInt("v", 3)
	lr.Attributes().PutStr("a.b", "x")
	lr = add()
	lr.Attributes().PutEmptyMap("m").PutInt("v", 1)
	lr.Attributes().PutStr("a.b", "only nested v")
	mustWriteLogs(t, s, ld)
	streams := mustLogStreams(t, s, storage.LogQuery{})
	if len(streams) != 1 {
		t.Fatalf("LogStreams = %+v, want one stream", streams)
	}
	q := storage.LogCountQuery{
		Streams: []string{streams[0].Key},
		Origin:  base, Step: time.Hour, Start: base, End: base.Add(time.Hour),
		Attributes: keys,
	}
	got, err := c.CountLogs(t.Context(), q)
	if err != nil {
		t.Fatalf("CountLogs: %v", err)
	}
	want := expectedCounts(t, s, q)
	if g := countLines(t, q, got); !slices.Equal(g, want) {
		t.Errorf("CountLogs:\n got %q\nwant %q", g, want)
	}
	// The reference reads values back through FindLogs; pin a few as
	// attrenc writes them.
	seen := map[string]bool{}
	for _, c := range got {
		seen[c.Attributes[0]] = true
	}
	for _, v := range []string{`"text"`, `42`, `2.0`, `1e-300`, `true`, `null`, `""`, `[1,1.0,"x"]`, `{"v":3.0}`, `"\u0000d+Inf"`, `2`, `3`, ``} {
		if !seen[v] {
			t.Errorf("no count with value %s; got %q", v, slices.Sorted(maps.Keys(seen)))
		}
	}
}

// expectedCounts counts what FindLogs returns for q, as lines countLines
// makes.
func expectedCounts(t *testing.T, s storage.SpanLogStore, q storage.LogCountQuery) []string {
	t.Helper()
	type key struct {
		stream  string
		bin     int64
		sev     storage.Severity
		sevText string
		attrs   string
	}
	counts := map[key][2]int64{}
	origin, step := q.Origin.UnixNano(), q.Step.Nanoseconds()
	for _, stream := range q.Streams {
		// LogQuery's range is [Start, End), CountLogs' (Start, End].
		recs := collect(t, s, storage.LogQuery{Streams: []string{stream},
			Start: q.Start.Add(time.Nanosecond), End: q.End.Add(time.Nanosecond), Limit: math.MaxInt32})
		for _, r := range recs {
			if !containsEach(r.Body, q.Contains) || slices.ContainsFunc(q.NotContains, func(c string) bool { return strings.Contains(r.Body, c) }) {
				continue
			}
			at := r.Timestamp
			if at.IsZero() {
				at = r.ObservedTimestamp
			}
			d := at.UnixNano() - origin - 1
			bin := d / step
			if d%step != 0 && d < 0 {
				bin--
			}
			k := key{stream: stream, bin: bin, sev: storage.SeverityOf(r.SeverityNumber)}
			if k.sev == storage.SeverityUnset {
				k.sevText = r.SeverityText
			}
			var vals []string
			for _, a := range q.Attributes {
				raw, ok := r.Attributes[a]
				if !ok {
					vals = append(vals, "")
					continue
				}
				v := pcommon.NewValueEmpty()
				if err := v.FromRaw(raw); err != nil {
					t.Fatal(err)
				}
				vals = append(vals, string(attrenc.AppendValue(nil, v)))
			}
			k.attrs = fmt.Sprintf("%q", vals)
			n := counts[k]
			counts[k] = [2]int64{n[0] + 1, n[1] + int64(len(r.Body))}
		}
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%s %d %s %q %s %d/%d", k.stream, k.bin, k.sev, k.sevText, k.attrs, n[0], n[1]))
	}
	slices.Sort(out)
	return out
}

// countLines renders counts as expectedCounts does, checking that no
// group is repeated, empty, or missing attribute values.
func countLines(t *testing.T, q storage.LogCountQuery, got []storage.LogCount) []string {
	t.Helper()
	var out []string
	for _, c := range got {
		if len(c.Attributes) != len(q.Attributes) {
			t.Errorf("count %+v has %d attribute values, want %d", c, len(c.Attributes), len(q.Attributes))
		}
		if c.Entries <= 0 {
			t.Errorf("empty count %+v", c)
		}
		vals := c.Attributes
		if len(vals) == 0 {
			vals = nil
		}
		out = append(out, fmt.Sprintf("%s %d %s %q %q %d/%d", c.Stream, c.Bin, c.Severity, c.SeverityText, vals, c.Entries, c.Bytes))
	}
	slices.Sort(out)
	if len(slices.Compact(slices.Clone(out))) != len(out) {
		t.Errorf("repeated groups in %q", out)
	}
	return out
}

func containsEach(s string, subs []string) bool {
	for _, c := range subs {
		if !strings.Contains(s, c) {
			return false
		}
	}
	return true
}
