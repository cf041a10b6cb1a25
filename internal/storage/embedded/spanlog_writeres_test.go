package embedded

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
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

// The INSERT that takes resources and scopes by index stores what the
// plain appender stored, and a batch it cannot write as literals (a NUL
// byte) goes through the plain appender.
func TestWriteLogsResourceColumns(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	at := time.Now().Add(-time.Hour)
	for _, tt := range []struct{ tag, odd string }{{"lit", ""}, {"nul", "\x00"}} {
		ld := logsWithResources(at, tt.tag, tt.odd)
		rows, _ := s.logRows(ld)
		if _, ok := logsByResource(rows); ok != (tt.odd == "") {
			t.Fatalf("%s: logsByResource ok = %v", tt.tag, ok)
		}
		if err := s.WriteLogs(t.Context(), ld); err != nil {
			t.Fatalf("%s: WriteLogs: %v", tt.tag, err)
		}
		p := s.snapshot()[0]
		for r := range 3 {
			for c := range 2 {
				var (
					service, resAttrs, resSchema, scName, scVersion, scAttrs, scSchema, sevText, event string
					resDropped, scDropped                                                              uint32
				)
				err := s.db.QueryRowContext(t.Context(), "SELECT severity_text, event_name, service, resource_attributes, resource_dropped, resource_schema_url, scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url FROM "+
					p.alias+".logs WHERE body = ?", fmt.Sprintf("%s %d %d", tt.tag, r, c)).Scan(
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
