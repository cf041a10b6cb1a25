package embedded

import (
	"database/sql/driver"
	"math"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// resourceInsert appends a day's log records with their resource, scope
// and severity text and event name as indexes into lists written once in
// the INSERT's text, instead of as nine string values a record: each
// string value costs three cgo calls in the appender (copy to C, assign,
// free) and these take few values in a batch.
type resourceInsert struct {
	resIdx   map[*encodedResource]uint16
	scopeIdx map[*encodedScope]uint16
	txt      []uint16 // each record's severity text and event name, by index
	query    string   // %CATALOG% stands for the day file's catalog
}

// maxTextLiterals bounds the distinct severity texts and event names a
// batch may write as literals: more take the plain appender.
const maxTextLiterals = 1024

// logsByResource plans the INSERT for day, or reports false when a string
// cannot be written as a literal (a NUL byte) or there are too many
// distinct values for an index.
func logsByResource(day []logRow) (resourceInsert, bool) {
	res, scopes := newLiteralIndex[*encodedResource](math.MaxUint16), newLiteralIndex[*encodedScope](math.MaxUint16)
	texts := newLiteralIndex[[2]string](maxTextLiterals)
	q := resourceInsert{resIdx: res.idx, scopeIdx: scopes.idx}
	for k := range day {
		r := &day[k]
		if _, ok := res.add(r.res); !ok {
			return q, false
		}
		if _, ok := scopes.add(r.scope); !ok {
			return q, false
		}
	}
	var ok bool
	if q.txt, ok = textIndexes(day, texts); !ok {
		return q, false
	}
	var b literalBuilder
	b.WriteString("INSERT INTO %CATALOG%.main.logs SELECT ts_ns, time_unset, observed_ns, trace_hi, trace_lo, span_id, flags, severity_number, ")
	b.list(len(texts.vals), func(i int) string { return texts.vals[i][0] })
	b.WriteString("[txt], ")
	b.list(len(res.vals), func(i int) string { return res.vals[i].service })
	b.WriteString("[res], body, attributes, dropped_attributes, ")
	b.list(len(texts.vals), func(i int) string { return texts.vals[i][1] })
	b.WriteString("[txt], ")
	b.resourceAndScope(res.vals, scopes.vals)
	b.WriteString(" FROM appended_data")
	q.query = b.String()
	return q, !b.nul
}

// textInsert appends a day's log records to a log table with a stream
// column, with severity text and event name as indexes into lists written
// once in the INSERT's text, as resourceInsert does.
type textInsert struct {
	txt   []uint16 // each record's severity text and event name, by index
	query string   // %CATALOG% stands for the day file's catalog
}

// logsByText plans the INSERT for day, or reports false when a severity
// text or event name cannot be written as a literal (a NUL byte) or there
// are more than maxTextLiterals.
func logsByText(day []logRow) (textInsert, bool) {
	texts := newLiteralIndex[[2]string](maxTextLiterals)
	var q textInsert
	var ok bool
	if q.txt, ok = textIndexes(day, texts); !ok {
		return q, false
	}
	var b literalBuilder
	b.WriteString("INSERT INTO %CATALOG%.main.logs SELECT ts_ns, time_unset, observed_ns, trace_hi, trace_lo, span_id, flags, severity_number, ")
	b.list(len(texts.vals), func(i int) string { return texts.vals[i][0] })
	b.WriteString("[txt], stream, body, attributes, dropped_attributes, ")
	b.list(len(texts.vals), func(i int) string { return texts.vals[i][1] })
	b.WriteString("[txt] FROM appended_data")
	q.query = b.String()
	return q, !b.nul
}

var textInsertColumns = []string{"ts_ns", "time_unset", "observed_ns", "trace_hi", "trace_lo", "span_id", "flags",
	"severity_number", "body", "attributes", "dropped_attributes", "stream", "txt"}

var textInsertTypes = []duckdb.Type{duckdb.TYPE_BIGINT, duckdb.TYPE_BOOLEAN, duckdb.TYPE_BIGINT, duckdb.TYPE_UBIGINT,
	duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UINTEGER, duckdb.TYPE_UTINYINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_UINTEGER, duckdb.TYPE_USMALLINT}

func (q textInsert) open(c driver.Conn, catalog string) (*duckdb.Appender, error) {
	return openQueryAppender(c, strings.Replace(q.query, "%CATALOG%", catalog, 1), textInsertTypes, textInsertColumns)
}

// openQueryAppender opens a query appender whose appended_data has the
// given columns and types, for one of the INSERTs above.
func openQueryAppender(c driver.Conn, query string, ts []duckdb.Type, columns []string) (*duckdb.Appender, error) {
	types := make([]duckdb.TypeInfo, len(ts))
	for i, t := range ts {
		ti, err := duckdb.NewTypeInfo(t)
		if err != nil {
			return nil, err
		}
		types[i] = ti
	}
	return duckdb.NewQueryAppender(c, query, "", types, columns)
}

// textIndexes numbers the severity text and event name pairs of day in
// texts and returns each record's number, or false when there are too
// many. A record is compared with the one before it first: records of a
// batch mostly repeat the pair of the one before, and hashing two
// strings a record cost 5% of the server's CPU under Loki push.
func textIndexes(day []logRow, texts *literalIndex[[2]string]) ([]uint16, bool) {
	txt := make([]uint16, len(day))
	var last [2]string
	var n uint16
	for k := range day {
		r := &day[k]
		if k == 0 || r.severityText != last[0] || r.eventName != last[1] {
			last = [2]string{r.severityText, r.eventName}
			var ok bool
			if n, ok = texts.add(last); !ok {
				return nil, false
			}
		}
		txt[k] = n
	}
	return txt, true
}

// literalIndex numbers distinct values from 1 in the order they come, up
// to max of them.
type literalIndex[K comparable] struct {
	idx  map[K]uint16
	vals []K
	max  int
}

func newLiteralIndex[K comparable](limit int) *literalIndex[K] {
	return &literalIndex[K]{idx: map[K]uint16{}, max: limit}
}

// add numbers k if it is new and returns its number; false when that
// would pass max.
func (x *literalIndex[K]) add(k K) (uint16, bool) {
	if n, ok := x.idx[k]; ok {
		return n, true
	}
	if len(x.vals) == x.max {
		return 0, false
	}
	x.vals = append(x.vals, k)
	n := uint16(len(x.vals))
	x.idx[k] = n
	return n, true
}

var resourceInsertColumns = []string{"ts_ns", "time_unset", "observed_ns", "trace_hi", "trace_lo", "span_id", "flags",
	"severity_number", "body", "attributes", "dropped_attributes", "res", "sc", "txt"}

var resourceInsertTypes = []duckdb.Type{duckdb.TYPE_BIGINT, duckdb.TYPE_BOOLEAN, duckdb.TYPE_BIGINT, duckdb.TYPE_UBIGINT,
	duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UINTEGER, duckdb.TYPE_UTINYINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_USMALLINT, duckdb.TYPE_USMALLINT, duckdb.TYPE_USMALLINT}

func (q resourceInsert) open(c driver.Conn, catalog string) (*duckdb.Appender, error) {
	return openQueryAppender(c, strings.Replace(q.query, "%CATALOG%", catalog, 1), resourceInsertTypes, resourceInsertColumns)
}

// spanResourceInsert appends a day's spans with their resource and scope
// as indexes into lists written once in the INSERT's text, as
// resourceInsert does for log records: seven string values a span fewer.
type spanResourceInsert struct {
	resIdx   map[*encodedResource]uint16
	scopeIdx map[*encodedScope]uint16
	query    string // %CATALOG% stands for the day file's catalog
}

// spansByResource plans the INSERT for day, or reports false when a
// string cannot be written as a literal (a NUL byte) or there are too
// many distinct resources or scopes for an index.
func spansByResource(day []spanRow) (spanResourceInsert, bool) {
	res, scopes := newLiteralIndex[*encodedResource](math.MaxUint16), newLiteralIndex[*encodedScope](math.MaxUint16)
	q := spanResourceInsert{resIdx: res.idx, scopeIdx: scopes.idx}
	for k := range day {
		r := &day[k]
		if _, ok := res.add(r.res); !ok {
			return q, false
		}
		if _, ok := scopes.add(r.scope); !ok {
			return q, false
		}
	}
	var b literalBuilder
	b.WriteString("INSERT INTO %CATALOG%.main.spans SELECT trace_hi, trace_lo, span_id, parent_span_id, start_ns, duration_ns, ")
	b.list(len(res.vals), func(i int) string { return res.vals[i].service })
	b.WriteString("[res], name, kind, status_code, status_message, http_method, http_route, http_status_code, http_keys, trace_state, flags, attributes, dropped_attributes, events, dropped_events, links, dropped_links, ")
	b.resourceAndScope(res.vals, scopes.vals)
	b.WriteString(" FROM appended_data")
	q.query = b.String()
	return q, !b.nul
}

// literalBuilder writes SQL list literals; nul records a string with a
// NUL byte, which SQL text cannot carry.
type literalBuilder struct {
	strings.Builder
	nul bool
}

func (b *literalBuilder) list(n int, s func(int) string) {
	b.WriteString("([")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		v := s(i)
		if strings.IndexByte(v, 0) >= 0 {
			b.nul = true
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(v, "'", "''"))
		b.WriteByte('\'')
	}
	b.WriteString("]::VARCHAR[])")
}

// resourceAndScope writes the columns both tables end with: the
// resource's attributes, dropped count and schema URL, then the scope's
// name, version, attributes, dropped count and schema URL, each picked
// from its list by the res and sc columns.
func (b *literalBuilder) resourceAndScope(res []*encodedResource, scopes []*encodedScope) {
	b.list(len(res), func(i int) string { return res[i].attrs })
	b.WriteString("[res], ")
	b.nums(len(res), func(i int) uint32 { return res[i].dropped })
	b.WriteString("[res], ")
	b.list(len(res), func(i int) string { return res[i].schemaURL })
	b.WriteString("[res], ")
	b.list(len(scopes), func(i int) string { return scopes[i].name })
	b.WriteString("[sc], ")
	b.list(len(scopes), func(i int) string { return scopes[i].version })
	b.WriteString("[sc], ")
	b.list(len(scopes), func(i int) string { return scopes[i].attrs })
	b.WriteString("[sc], ")
	b.nums(len(scopes), func(i int) uint32 { return scopes[i].dropped })
	b.WriteString("[sc], ")
	b.list(len(scopes), func(i int) string { return scopes[i].schemaURL })
	b.WriteString("[sc]")
}

func (b *literalBuilder) nums(n int, s func(int) uint32) {
	b.WriteString("([")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(s(i)), 10))
	}
	b.WriteString("]::UINTEGER[])")
}

var spanResourceInsertColumns = []string{"trace_hi", "trace_lo", "span_id", "parent_span_id", "start_ns", "duration_ns",
	"name", "kind", "status_code", "status_message", "http_method", "http_route", "http_status_code", "http_keys",
	"trace_state", "flags", "attributes", "dropped_attributes", "events", "dropped_events", "links", "dropped_links", "res", "sc"}

var spanResourceInsertTypes = []duckdb.Type{duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT,
	duckdb.TYPE_BIGINT, duckdb.TYPE_BIGINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_UTINYINT, duckdb.TYPE_UTINYINT, duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_USMALLINT, duckdb.TYPE_UTINYINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER,
	duckdb.TYPE_USMALLINT, duckdb.TYPE_USMALLINT}

func (q spanResourceInsert) open(c driver.Conn, catalog string) (*duckdb.Appender, error) {
	return openQueryAppender(c, strings.Replace(q.query, "%CATALOG%", catalog, 1), spanResourceInsertTypes, spanResourceInsertColumns)
}
