package embedded

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// logsWithResources makes one record per resource and scope, the body
// naming them, with strings an SQL literal must escape.
func logsWithResources(at time.Time, tag, odd string) plog.Logs {
	ld := plog.NewLogs()
	for r := range 3 {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.SetSchemaUrl(fmt.Sprintf("https://schema/%d'", r))
		res := rl.Resource()
		res.Attributes().PutStr("service.name", fmt.Sprintf("svc-%d%s", r, odd))
		res.Attributes().PutStr("host.name", `it's \\ hôst `+tag)
		res.SetDroppedAttributesCount(uint32(r))
		for c := range 2 {
			sl := rl.ScopeLogs().AppendEmpty()
			sl.SetSchemaUrl(fmt.Sprintf("scope-schema-%d", c))
			sl.Scope().SetName(fmt.Sprintf("scope-%d-%d'%s", r, c, odd))
			sl.Scope().SetVersion(fmt.Sprintf("v%d", c))
			sl.Scope().Attributes().PutInt("n", int64(c))
			sl.Scope().SetDroppedAttributesCount(uint32(c + 1))
			lr := sl.LogRecords().AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Duration(r*2+c) * time.Millisecond)))
			lr.Body().SetStr(fmt.Sprintf("%s %d %d", tag, r, c))
			lr.SetSeverityText(fmt.Sprintf("INFO'%d", c))
			lr.SetEventName(fmt.Sprintf("event %d'%s", r, odd))
		}
	}
	return ld
}

// Both layouts, and the INSERTs that take resources, scopes or texts by
// index, store what the plain appender stored, and a batch they cannot
// write as literals (a NUL byte) goes through the plain appender: the
// values read back are the record's, quotes and backslashes included.
func TestWriteLogsResourceColumns(t *testing.T) {
	for _, layout := range []struct {
		name   string
		inline bool
	}{{"streams", false}, {"inline", true}} {
		t.Run(layout.name, func(t *testing.T) {
			s, err := OpenSpanLogStore(t.Context(), SpanLogOptions{Dir: t.TempDir(), MemoryLimit: "256MB", Threads: 2, InlineLogStreams: layout.inline})
			if err != nil {
				t.Fatalf("OpenSpanLogStore: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			at := time.Now().Add(-time.Hour)
			for _, tt := range []struct{ tag, odd string }{{"lit", ""}, {"nul", "\x00"}} {
				ld := logsWithResources(at, tt.tag, tt.odd)
				rows, _ := s.logRows(ld)
				if _, ok := logsByResource(rows); ok != (tt.odd == "") {
					t.Fatalf("%s: logsByResource ok = %v", tt.tag, ok)
				}
				if _, ok := logsByText(rows); ok != (tt.odd == "") {
					t.Fatalf("%s: logsByText ok = %v", tt.tag, ok)
				}
				if err := s.WriteLogs(t.Context(), ld); err != nil {
					t.Fatalf("%s: WriteLogs: %v", tt.tag, err)
				}
				p := s.snapshot()[0]
				if (p.streams == nil) != layout.inline {
					t.Fatalf("day file in the streams layout: %v, want %v", p.streams != nil, !layout.inline)
				}
				for r := range 3 {
					for c := range 2 {
						var (
							service, resAttrs, resSchema, scName, scVersion, scAttrs, scSchema, sevText, event string
							resDropped, scDropped                                                              uint32
						)
						err := s.db.QueryRowContext(t.Context(), "SELECT severity_text, event_name, service, resource_attributes, resource_dropped, resource_schema_url, scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url FROM "+
							p.logsFrom()+" WHERE body = ?", fmt.Sprintf("%s %d %d", tt.tag, r, c)).Scan(
							&sevText, &event, &service, &resAttrs, &resDropped, &resSchema, &scName, &scVersion, &scAttrs, &scDropped, &scSchema)
						if err != nil {
							t.Fatalf("%s %d %d: %v", tt.tag, r, c, err)
						}
						got := []any{sevText, event, service, resAttrs, resDropped, resSchema, scName, scVersion, scAttrs, scDropped, scSchema}
						// The plain appender passes strings as C strings, which
						// end at a NUL.
						want := []any{fmt.Sprintf("INFO'%d", c), fmt.Sprintf("event %d'", r), fmt.Sprintf("svc-%d", r), `{"host.name":"it's \\\\ hôst ` + tt.tag + `"}`, uint32(r), fmt.Sprintf("https://schema/%d'", r),
							fmt.Sprintf("scope-%d-%d'", r, c), fmt.Sprintf("v%d", c), `{"n":` + fmt.Sprint(c) + `}`, uint32(c + 1), fmt.Sprintf("scope-schema-%d", c)}
						if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
							t.Errorf("%s %d %d:\n got %q\nwant %q", tt.tag, r, c, got, want)
						}
					}
				}
			}
		})
	}
}

func TestLogsByResourceTooManyTexts(t *testing.T) {
	day := make([]logRow, maxTextLiterals+1)
	res, sc := &encodedResource{}, &encodedScope{}
	for i := range day {
		day[i] = logRow{res: res, scope: sc, eventName: fmt.Sprint(i)}
	}
	if _, ok := logsByResource(day[:maxTextLiterals]); !ok {
		t.Errorf("%d event names: want the INSERT", maxTextLiterals)
	}
	if _, ok := logsByResource(day); ok {
		t.Errorf("%d event names: want the plain appender", len(day))
	}
}

// tracesWithResources makes one span per resource and scope, its name
// naming them, with strings an SQL literal must escape; the spans of
// scope 0 carry HTTP columns, those of scope 1 leave them NULL.
func tracesWithResources(at time.Time, tag, odd string) ptrace.Traces {
	td := ptrace.NewTraces()
	for r := range 3 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl(fmt.Sprintf("https://schema/%d'", r))
		res := rs.Resource()
		res.Attributes().PutStr("service.name", fmt.Sprintf("svc-%d%s", r, odd))
		res.Attributes().PutStr("host.name", `it's \\ hôst `+tag)
		res.SetDroppedAttributesCount(uint32(r))
		for c := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.SetSchemaUrl(fmt.Sprintf("scope-schema-%d", c))
			ss.Scope().SetName(fmt.Sprintf("scope-%d-%d'%s", r, c, odd))
			ss.Scope().SetVersion(fmt.Sprintf("v%d", c))
			ss.Scope().Attributes().PutInt("n", int64(c))
			ss.Scope().SetDroppedAttributesCount(uint32(c + 1))
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{byte(r + 1), byte(c + 1), 1})
			sp.SetSpanID(pcommon.SpanID{byte(r + 1), byte(c + 1)})
			sp.SetName(fmt.Sprintf("%s %d %d", tag, r, c))
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Duration(r*2+c) * time.Millisecond)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Second)))
			if c == 0 {
				sp.Attributes().PutStr("http.request.method", "GET")
				sp.Attributes().PutStr("http.route", "/a'b")
				sp.Attributes().PutInt("http.response.status_code", 200)
			}
		}
	}
	return td
}

// The INSERT that takes a span's resource and scope by index stores what
// the plain appender stored, NULLs included, and a batch it cannot write
// as literals (a NUL byte) goes through the plain appender.
func TestWriteTracesResourceColumns(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	at := time.Now().Add(-time.Hour)
	for _, tt := range []struct{ tag, odd string }{{"lit", ""}, {"nul", "\x00"}} {
		td := tracesWithResources(at, tt.tag, tt.odd)
		rows, _ := s.spanRows(td)
		if _, ok := spansByResource(rows); ok != (tt.odd == "") {
			t.Fatalf("%s: spansByResource ok = %v", tt.tag, ok)
		}
		if err := s.WriteTraces(t.Context(), td); err != nil {
			t.Fatalf("%s: WriteTraces: %v", tt.tag, err)
		}
		p := s.snapshot()[0]
		for r := range 3 {
			for c := range 2 {
				var (
					service, resAttrs, resSchema, scName, scVersion, scAttrs, scSchema string
					method, route                                                      sql.NullString
					status                                                             sql.NullInt64
					resDropped, scDropped                                              uint32
				)
				err := s.db.QueryRowContext(t.Context(), "SELECT service, http_method, http_route, http_status_code, resource_attributes, resource_dropped, resource_schema_url, scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url FROM "+
					p.alias+".spans WHERE name = ?", fmt.Sprintf("%s %d %d", tt.tag, r, c)).Scan(
					&service, &method, &route, &status, &resAttrs, &resDropped, &resSchema, &scName, &scVersion, &scAttrs, &scDropped, &scSchema)
				if err != nil {
					t.Fatalf("%s %d %d: %v", tt.tag, r, c, err)
				}
				got := []any{service, method, route, status, resAttrs, resDropped, resSchema, scName, scVersion, scAttrs, scDropped, scSchema}
				http := []any{sql.NullString{}, sql.NullString{}, sql.NullInt64{}}
				if c == 0 {
					http = []any{sql.NullString{String: "GET", Valid: true}, sql.NullString{String: "/a'b", Valid: true}, sql.NullInt64{Int64: 200, Valid: true}}
				}
				// The plain appender passes strings as C strings, which
				// end at a NUL.
				want := append(append([]any{fmt.Sprintf("svc-%d", r)}, http...), `{"host.name":"it's \\\\ hôst `+tt.tag+`"}`, uint32(r), fmt.Sprintf("https://schema/%d'", r),
					fmt.Sprintf("scope-%d-%d'", r, c), fmt.Sprintf("v%d", c), `{"n":`+fmt.Sprint(c)+`}`, uint32(c+1), fmt.Sprintf("scope-schema-%d", c))
				if fmt.Sprintf("%v", got) != fmt.Sprintf("%v", want) {
					t.Errorf("%s %d %d:\n got %v\nwant %v", tt.tag, r, c, got, want)
				}
			}
		}
	}
}

// spansWithTexts makes n spans of one resource whose names, status
// messages, trace states, HTTP attributes, events and links vary (quotes,
// a backslash, non-ASCII text, absent and empty values), each named
// "<tag> <i>"; odd is appended to the service name.
func spansWithTexts(at time.Time, tag, odd string, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc"+odd)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{byte(i), byte(i >> 8), 2})
		sp.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), 1})
		sp.SetName(fmt.Sprintf("%s %d", tag, i))
		start := at.Add(time.Duration(i) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
		a := sp.Attributes()
		switch i % 4 {
		case 0:
			a.PutStr("http.request.method", "GET")
			a.PutStr("http.route", "/o'k\\")
			a.PutInt("http.response.status_code", 200)
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Status().SetMessage("it's brôken")
		case 1:
			a.PutStr("http.method", "")
			a.PutStr("http.route", "")
			sp.TraceState().FromRaw("vendor=a'b")
			ev := sp.Events().AppendEmpty()
			ev.SetName("retry")
			ev.SetTimestamp(pcommon.NewTimestampFromTime(start))
		case 2:
			l := sp.Links().AppendEmpty()
			l.SetTraceID(pcommon.TraceID{9})
			l.SetSpanID(pcommon.SpanID{9})
		}
	}
	return td
}

// The text columns a span passes one by one hold what the span had, with
// its resource taken by index or through the plain appender: NULL for an
// absent HTTP attribute, an empty string for an empty one.
func TestWriteTracesTextColumns(t *testing.T) {
	at := time.Now().Add(-time.Hour)
	for _, tt := range []struct {
		name, odd string
		literal   bool // the resource is taken by index
	}{
		{name: "by-index", literal: true},
		{name: "plain", odd: "\x00"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t, t.TempDir())
			const n = 40
			td := spansWithTexts(at, tt.name, tt.odd, n)
			rows, _ := s.spanRows(td)
			if _, ok := spansByResource(rows); ok != tt.literal {
				t.Fatalf("spansByResource: ok = %v", ok)
			}
			if err := s.WriteTraces(t.Context(), td); err != nil {
				t.Fatalf("WriteTraces: %v", err)
			}
			p := s.snapshot()[0]
			got, err := s.db.QueryContext(t.Context(), "SELECT name, status_message, trace_state, http_method, http_route, http_status_code, http_keys, events, links FROM "+
				p.alias+".spans ORDER BY start_ns")
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
			i := 0
			for ; got.Next(); i++ {
				var (
					name, msg, state, events, links string
					method, route                   sql.NullString
					status                          sql.NullInt64
					keys                            uint8
				)
				if err := got.Scan(&name, &msg, &state, &method, &route, &status, &keys, &events, &links); err != nil {
					t.Fatal(err)
				}
				sp := spans.At(i)
				want := []any{sp.Name(), sp.Status().Message(), sp.TraceState().AsRaw(), sql.NullString{}, sql.NullString{}, sql.NullInt64{}, uint8(0),
					string(appendEvents(nil, sp.Events(), sp.StartTimestamp())), string(appendLinks(nil, sp.Links()))}
				switch i % 4 {
				case 0:
					want[3], want[4], want[5], want[6] = sql.NullString{String: "GET", Valid: true}, sql.NullString{String: "/o'k\\", Valid: true},
						sql.NullInt64{Int64: 200, Valid: true}, uint8(httpMethodStable|httpRoute|httpStatusStable)
				case 1:
					want[3], want[4], want[6] = sql.NullString{Valid: true}, sql.NullString{Valid: true}, uint8(httpMethodLegacy|httpRoute)
				}
				g := []any{name, msg, state, method, route, status, keys, events, links}
				if fmt.Sprintf("%q", g) != fmt.Sprintf("%q", want) {
					t.Errorf("span %d:\n got %#v\nwant %#v", i, g, want)
				}
			}
			if err := got.Err(); err != nil {
				t.Fatal(err)
			}
			if i != n {
				t.Errorf("%d spans stored, want %d", i, n)
			}
		})
	}
}
