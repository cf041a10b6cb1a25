package storagetest

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
)

// streamResource is one resource of the stream fixture, named for the
// tests' messages.
type streamResource struct {
	name  string
	attrs map[string]any
}

// The stream fixture's resources: two share a service, one has a non-string
// attribute, one has no service at all.
var (
	resCheckoutProd = streamResource{"checkout/prod", map[string]any{"service.name": "checkout", "env": "prod"}}
	resCheckoutDev  = streamResource{"checkout/dev", map[string]any{"service.name": "checkout", "env": "dev"}}
	resPayments     = streamResource{"payments", map[string]any{"service.name": "payments", "env": "prod", "shard": int64(3)}}
	resNoService    = streamResource{"host", map[string]any{"host": "h1"}}
)

// streamRecord is one record of the stream fixture; id goes to the
// attribute log.id, as in logs.json, so logIDs names it.
type streamRecord struct {
	id    string
	at    time.Duration // from base
	body  string
	sev   plog.SeverityNumber
	attrs map[string]any
}

// streamFixture writes, in two calls, records of the four resources on
// base's day and on the day before, so that one resource's records lie in
// two daily partitions. Bodies hold multi-byte characters, so that Bytes
// counting characters would show.
func streamFixture(t *testing.T, s storage.SpanLogStore, base time.Time) {
	t.Helper()
	old := -30 * time.Hour
	mustWriteLogs(t, s, streamLogs(t, base, map[*streamResource][]streamRecord{
		&resCheckoutProd: {
			{id: "S1", at: time.Second, body: "order created", sev: plog.SeverityNumberInfo, attrs: map[string]any{"user": "u1"}},
			{id: "S2", at: 2 * time.Second, body: "order failed: ünïcødé", sev: plog.SeverityNumberError},
		},
		&resCheckoutDev: {
			{id: "S3", at: 3 * time.Second, body: "dev order", sev: plog.SeverityNumberDebug},
		},
		&resPayments: {
			{id: "S4", at: 4 * time.Second, body: "payment ok", sev: plog.SeverityNumberInfo, attrs: map[string]any{"user": "u1"}},
			{id: "S5", at: 5 * time.Second, body: "payment failed", sev: plog.SeverityNumberError},
		},
		&resNoService: {
			{id: "S6", at: 6 * time.Second, body: "disk full", sev: plog.SeverityNumberWarn},
		},
	}))
	mustWriteLogs(t, s, streamLogs(t, base, map[*streamResource][]streamRecord{
		&resCheckoutProd: {{id: "S0", at: old + time.Second, body: "old order €", sev: plog.SeverityNumberInfo}},
		&resPayments:     {{id: "S00", at: old + 2*time.Second, body: "old payment", sev: plog.SeverityNumberWarn}},
	}))
}

// streamFixtureNewestFirst is every record of streamFixture, newest first.
var streamFixtureNewestFirst = []string{"S6", "S5", "S4", "S3", "S2", "S1", "S00", "S0"}

func streamLogs(t *testing.T, base time.Time, recs map[*streamResource][]streamRecord) plog.Logs {
	t.Helper()
	ld := plog.NewLogs()
	for res, rs := range recs {
		rl := ld.ResourceLogs().AppendEmpty()
		// In sorted order, not the map's: the stores may tell resources
		// apart by the order of their attributes (see LogStreams).
		for _, k := range slices.Sorted(maps.Keys(res.attrs)) {
			if err := rl.Resource().Attributes().PutEmpty(k).FromRaw(res.attrs[k]); err != nil {
				t.Fatal(err)
			}
		}
		lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
		for _, r := range rs {
			lr := lrs.AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(r.at)))
			lr.Body().SetStr(r.body)
			lr.SetSeverityNumber(r.sev)
			if err := lr.Attributes().FromRaw(r.attrs); err != nil {
				t.Fatal(err)
			}
			lr.Attributes().PutStr("log.id", r.id)
		}
	}
	return ld
}

func mustLogStreams(t *testing.T, s storage.SpanLogStore, q storage.LogQuery) []storage.LogStream {
	t.Helper()
	got, err := s.LogStreams(t.Context(), q)
	if err != nil {
		t.Fatalf("LogStreams(%+v): %v", q, err)
	}
	if !slices.IsSortedFunc(got, func(a, b storage.LogStream) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("LogStreams(%+v) not sorted by key: %+v", q, got)
	}
	return got
}

// streamCounts is a LogStreams result as "resource name: entries/bytes",
// sorted, keys checked to be unique and non-empty.
func streamCounts(t *testing.T, got []storage.LogStream) []string {
	t.Helper()
	var out []string
	keys := map[string]bool{}
	for _, st := range got {
		if st.Key == "" || keys[st.Key] {
			t.Errorf("stream key %q empty or repeated in %+v", st.Key, got)
		}
		keys[st.Key] = true
		name := ""
		for _, r := range []streamResource{resCheckoutProd, resCheckoutDev, resPayments, resNoService} {
			if reflect.DeepEqual(st.Resource, r.attrs) {
				name = r.name
			}
		}
		if name == "" {
			t.Errorf("stream %+v has a resource the fixture did not write", st)
			continue
		}
		if want, _ := st.Resource["service.name"].(string); st.Service != want {
			t.Errorf("stream %s: Service = %q, want %q", name, st.Service, want)
		}
		out = append(out, fmt.Sprintf("%s: %d/%d", name, st.Entries, st.Bytes))
	}
	slices.Sort(out)
	return out
}

// keyOf returns the key LogStreams gave the resource.
func keyOf(t *testing.T, got []storage.LogStream, r streamResource) string {
	t.Helper()
	for _, st := range got {
		if reflect.DeepEqual(st.Resource, r.attrs) {
			return st.Key
		}
	}
	t.Fatalf("no stream of %s in %+v", r.name, got)
	return ""
}

func testLogStreams(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	streamFixture(t, s, base)
	day := base.Truncate(24 * time.Hour)
	n := func(s string) int { return len(s) } // bytes, not characters
	all := mustLogStreams(t, s, storage.LogQuery{})
	tests := []struct {
		name string
		q    storage.LogQuery
		want []string
	}{
		{"all", storage.LogQuery{}, []string{
			fmt.Sprintf("checkout/dev: 1/%d", n("dev order")),
			fmt.Sprintf("checkout/prod: 3/%d", n("order created")+n("order failed: ünïcødé")+n("old order €")),
			fmt.Sprintf("host: 1/%d", n("disk full")),
			fmt.Sprintf("payments: 3/%d", n("payment ok")+n("payment failed")+n("old payment")),
		}},
		{"limit, after and forward are ignored", storage.LogQuery{Limit: 1, Forward: true, After: "1.2.3"}, nil}, // compared with "all" below
		{"service", storage.LogQuery{Service: "checkout"}, []string{"checkout/dev: 1/9", "checkout/prod: 3/" + fmt.Sprint(n("order created")+n("order failed: ünïcødé")+n("old order €"))}},
		{"service.name attribute", storage.LogQuery{Attributes: map[string]string{"service.name": "payments"}}, []string{"payments: 3/35"}},
		{"base's day", storage.LogQuery{Start: day, End: day.Add(24 * time.Hour)}, []string{
			"checkout/dev: 1/9", fmt.Sprintf("checkout/prod: 2/%d", n("order created")+n("order failed: ünïcødé")), "host: 1/9", "payments: 2/24",
		}},
		{"the day before", storage.LogQuery{End: day}, []string{fmt.Sprintf("checkout/prod: 1/%d", n("old order €")), "payments: 1/11"}},
		{"start inclusive end exclusive", storage.LogQuery{Start: base.Add(2 * time.Second), End: base.Add(4 * time.Second)}, []string{
			"checkout/dev: 1/9", fmt.Sprintf("checkout/prod: 1/%d", n("order failed: ünïcødé")),
		}},
		{"terms", storage.LogQuery{Terms: []string{"FAILED"}}, []string{fmt.Sprintf("checkout/prod: 1/%d", n("order failed: ünïcødé")), "payments: 1/14"}},
		{"record attribute", storage.LogQuery{Attributes: map[string]string{"user": "u1"}}, []string{"checkout/prod: 1/13", "payments: 1/10"}},
		{"resource attribute", storage.LogQuery{Attributes: map[string]string{"env": "prod"}}, []string{
			fmt.Sprintf("checkout/prod: 3/%d", n("order created")+n("order failed: ünïcødé")+n("old order €")), "payments: 3/35",
		}},
		{"non-string resource attribute", storage.LogQuery{Attributes: map[string]string{"shard": "3"}}, []string{"payments: 3/35"}},
		{"severity", storage.LogQuery{Severities: []storage.Severity{storage.SeverityWarn, storage.SeverityDebug}}, []string{"checkout/dev: 1/9", "host: 1/9", "payments: 1/11"}},
		{"streams", storage.LogQuery{Streams: []string{keyOf(t, all, resNoService), keyOf(t, all, resPayments)}}, []string{"host: 1/9", "payments: 3/35"}},
		{"streams and terms", storage.LogQuery{Streams: []string{keyOf(t, all, resPayments)}, Terms: []string{"old"}}, []string{"payments: 1/11"}},
		{"nothing", storage.LogQuery{Service: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := streamCounts(t, mustLogStreams(t, s, tt.q))
			want := tt.want
			if tt.name == "limit, after and forward are ignored" {
				want = tests[0].want
			}
			if !slices.Equal(got, want) {
				t.Errorf("LogStreams(%+v) =\n %v\nwant\n %v", tt.q, got, want)
			}
		})
	}
	// A resource's key is the same whichever day its records lie in, so
	// streams listed over one range select its records over another.
	for _, r := range []streamResource{resCheckoutProd, resPayments} {
		whole := keyOf(t, all, r)
		if k := keyOf(t, mustLogStreams(t, s, storage.LogQuery{End: day}), r); k != whole {
			t.Errorf("%s: key over the day before = %q, over both days %q", r.name, k, whole)
		}
		if k := keyOf(t, mustLogStreams(t, s, storage.LogQuery{Start: day}), r); k != whole {
			t.Errorf("%s: key over base's day = %q, over both days %q", r.name, k, whole)
		}
	}
	for _, q := range []storage.LogQuery{{Streams: []string{"no such key"}}, {Streams: []string{""}}} {
		if _, err := s.LogStreams(t.Context(), q); !errors.Is(err, storage.ErrInvalidQuery) {
			t.Errorf("LogStreams(%+v) = %v, want ErrInvalidQuery", q, err)
		}
		for r, err := range s.FindLogs(t.Context(), q) {
			if !errors.Is(err, storage.ErrInvalidQuery) {
				t.Errorf("FindLogs(%+v) = %+v, %v; want ErrInvalidQuery", q, r, err)
			}
		}
	}
}

// testLogStreamsFilter checks FindLogs' Streams filter, with and without
// the other filters and in both directions.
func testLogStreamsFilter(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	streamFixture(t, s, base)
	all := mustLogStreams(t, s, storage.LogQuery{})
	prod, dev, pay, host := keyOf(t, all, resCheckoutProd), keyOf(t, all, resCheckoutDev), keyOf(t, all, resPayments), keyOf(t, all, resNoService)
	tests := []struct {
		name string
		q    storage.LogQuery
		want []string
	}{
		{"one stream over two days", storage.LogQuery{Streams: []string{prod}}, []string{"S2", "S1", "S0"}},
		{"a stream apart from its service's other", storage.LogQuery{Streams: []string{dev}}, []string{"S3"}},
		{"several", storage.LogQuery{Streams: []string{host, prod}}, []string{"S6", "S2", "S1", "S0"}},
		{"every stream", storage.LogQuery{Streams: []string{prod, dev, pay, host}}, streamFixtureNewestFirst},
		{"forward", storage.LogQuery{Streams: []string{prod, pay}, Forward: true}, []string{"S0", "S00", "S1", "S2", "S4", "S5"}},
		{"with terms", storage.LogQuery{Streams: []string{prod, pay}, Terms: []string{"failed"}}, []string{"S5", "S2"}},
		{"with attributes", storage.LogQuery{Streams: []string{prod, dev}, Attributes: map[string]string{"user": "u1"}}, []string{"S1"}},
		{"with service of another stream", storage.LogQuery{Streams: []string{pay}, Service: "checkout"}, nil},
		{"with time", storage.LogQuery{Streams: []string{pay}, Start: base}, []string{"S5", "S4"}},
		{"with limit", storage.LogQuery{Streams: []string{pay, prod}, Limit: 2}, []string{"S5", "S4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := logIDs(collect(t, s, tt.q)); !slices.Equal(got, tt.want) {
				t.Errorf("FindLogs(%+v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	// The histogram takes the filter too.
	h, err := s.LogHistogram(t.Context(), storage.LogQuery{Streams: []string{pay}}, 24*time.Hour)
	if err != nil {
		t.Fatalf("LogHistogram: %v", err)
	}
	var total int64
	for _, b := range h {
		total += b.Count
	}
	if total != 3 {
		t.Errorf("LogHistogram of the payments stream counts %d records, want 3: %+v", total, h)
	}
}

// testLogForward checks that Forward yields exactly the reverse of the
// default order, ties included, and that forward pages continue where the
// last one stopped.
func testLogForward(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	// Written twice: every timestamp appears twice, so the two directions
	// must break ties between equal timestamps as each other's reverse.
	streamFixture(t, s, base)
	streamFixture(t, s, base)
	for _, q := range []storage.LogQuery{{}, {Service: "payments"}, {Terms: []string{"order"}}, {Start: base.Add(2 * time.Second)}} {
		q.Limit = 1000
		back := collect(t, s, q)
		q.Forward = true
		fwd := collect(t, s, q)
		if len(back) == 0 {
			t.Fatalf("query %+v matched nothing", q)
		}
		want := slices.Clone(back)
		slices.Reverse(want)
		if !slices.EqualFunc(fwd, want, func(a, b storage.LogRecord) bool { return a.Cursor == b.Cursor }) {
			t.Errorf("FindLogs(%+v) = %v, want the reverse of newest first %v", q, logIDs(fwd), logIDs(want))
		}
		for i := 1; i < len(fwd); i++ {
			if fwd[i].Timestamp.Before(fwd[i-1].Timestamp) {
				t.Fatalf("forward record %d at %v before record %d at %v", i, fwd[i].Timestamp, i-1, fwd[i-1].Timestamp)
			}
		}
		for _, limit := range []int{1, 3, 5} {
			pq := q
			pq.Limit = limit
			var paged []storage.LogRecord
			for page := 0; page < 100; page++ {
				recs := collect(t, s, pq)
				if len(recs) > limit {
					t.Fatalf("page of %d records, limit %d", len(recs), limit)
				}
				if len(recs) == 0 {
					break
				}
				paged = append(paged, recs...)
				pq.After = recs[len(recs)-1].Cursor
			}
			if !slices.EqualFunc(paged, fwd, func(a, b storage.LogRecord) bool { return a.Cursor == b.Cursor }) {
				t.Errorf("forward pages of %d of %+v = %v, want %v", limit, q, logIDs(paged), logIDs(fwd))
			}
		}
	}
	// A forward search from a cursor of the default order continues
	// forward from that record: the records after it in time, not before.
	back := collect(t, s, storage.LogQuery{})
	mid := back[len(back)/2]
	got := collect(t, s, storage.LogQuery{After: mid.Cursor, Forward: true, Limit: 1000})
	want := slices.Clone(back[:len(back)/2])
	slices.Reverse(want)
	if !slices.EqualFunc(got, want, func(a, b storage.LogRecord) bool { return a.Cursor == b.Cursor }) {
		t.Errorf("forward after %s = %v, want %v", mid.Cursor, logIDs(got), logIDs(want))
	}
}

// testLogLargeLimit checks a Limit far above what is stored, and limits
// around the pages backends read in, in both directions.
func testLogLargeLimit(t *testing.T, s storage.SpanLogStore, base time.Time) {
	defer s.Close()
	n := 2*storage.LogPageSize + 123
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "bulk")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for i := range n {
		lr := lrs.AppendEmpty()
		// Every third timestamp repeats, so that pages break ties.
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(-time.Duration(i-i%3) * time.Millisecond)))
		lr.Body().SetStr(fmt.Sprintf("bulk %d", i))
	}
	mustWriteLogs(t, s, ld)
	for _, forward := range []bool{false, true} {
		got := collect(t, s, storage.LogQuery{Limit: 1_000_000, Forward: forward})
		if len(got) != n {
			t.Fatalf("Limit 1000000, Forward %v: %d records, want %d", forward, len(got), n)
		}
		seen := map[string]bool{}
		for i, r := range got {
			if seen[r.Cursor] {
				t.Fatalf("Forward %v: record %d repeats cursor %q", forward, i, r.Cursor)
			}
			seen[r.Cursor] = true
			if i > 0 && (!forward && r.Timestamp.After(got[i-1].Timestamp) || forward && r.Timestamp.Before(got[i-1].Timestamp)) {
				t.Fatalf("Forward %v: record %d at %v out of order after %v", forward, i, r.Timestamp, got[i-1].Timestamp)
			}
		}
		if first := got[0].Body; !forward && first != "bulk 0" && first != "bulk 1" && first != "bulk 2" {
			t.Errorf("newest first starts with %q, want one of bulk 0-2", first)
		}
		for _, limit := range []int{storage.LogPageSize - 1, storage.LogPageSize, storage.LogPageSize + 1, n - 1, n} {
			part := collect(t, s, storage.LogQuery{Limit: limit, Forward: forward})
			if !slices.EqualFunc(part, got[:limit], func(a, b storage.LogRecord) bool { return a.Cursor == b.Cursor }) {
				t.Errorf("Limit %d, Forward %v: %d records, not the first %d of the whole search", limit, forward, len(part), limit)
			}
		}
		// A consumer that stops after the first page leaves the store usable.
		i := 0
		for _, err := range s.FindLogs(t.Context(), storage.LogQuery{Limit: 1_000_000, Forward: forward}) {
			if err != nil {
				t.Fatalf("FindLogs: %v", err)
			}
			if i++; i > storage.LogPageSize {
				break
			}
		}
	}
	streams := mustLogStreams(t, s, storage.LogQuery{Limit: 1})
	if len(streams) != 1 || streams[0].Entries != int64(n) {
		t.Errorf("LogStreams over %d bulk records = %+v", n, streams)
	}
}
