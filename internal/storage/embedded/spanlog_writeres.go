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
	textIdx  map[[2]string]uint16 // severity text, event name
	query    string               // %CATALOG% stands for the day file's catalog
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
	q := resourceInsert{resIdx: res.idx, scopeIdx: scopes.idx, textIdx: texts.idx}
	for k := range day {
		r := &day[k]
		if !res.add(r.res) || !scopes.add(r.scope) || !texts.add([2]string{r.severityText, r.eventName}) {
			return q, false
		}
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

// add numbers k if it is new; false when that would pass max.
func (x *literalIndex[K]) add(k K) bool {
	if _, ok := x.idx[k]; ok {
		return true
	}
	if len(x.vals) == x.max {
		return false
	}
	x.vals = append(x.vals, k)
	x.idx[k] = uint16(len(x.vals))
	return true
}

var resourceInsertColumns = []string{"ts_ns", "time_unset", "observed_ns", "trace_hi", "trace_lo", "span_id", "flags",
	"severity_number", "body", "attributes", "dropped_attributes", "res", "sc", "txt"}

var resourceInsertTypes = []duckdb.Type{duckdb.TYPE_BIGINT, duckdb.TYPE_BOOLEAN, duckdb.TYPE_BIGINT, duckdb.TYPE_UBIGINT,
	duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UINTEGER, duckdb.TYPE_UTINYINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_USMALLINT, duckdb.TYPE_USMALLINT, duckdb.TYPE_USMALLINT}

func (q resourceInsert) open(c driver.Conn, catalog string) (*duckdb.Appender, error) {
	types := make([]duckdb.TypeInfo, len(resourceInsertTypes))
	for i, t := range resourceInsertTypes {
		ti, err := duckdb.NewTypeInfo(t)
		if err != nil {
			return nil, err
		}
		types[i] = ti
	}
	return duckdb.NewQueryAppender(c, strings.Replace(q.query, "%CATALOG%", catalog, 1), "", types, resourceInsertColumns)
}

// spanResourceInsert appends a day's spans with their resource and scope
// as indexes into lists written once in the INSERT's text, as
// resourceInsert does for log records: seven string values a span fewer.
// With texts, the span's name, status message, trace state, HTTP method
// and route go the same way, as one index into the batch's distinct
// combinations of them: an instrumented service has a few dozen
// operations, so five more string values a span become one number.
type spanResourceInsert struct {
	resIdx   map[*encodedResource]uint16
	scopeIdx map[*encodedScope]uint16
	// txt is each span's index into the text lists, in day's order; nil
	// when the texts are passed a span at a time.
	txt   []uint16
	query string // %CATALOG% stands for the day file's catalog
}

// spanText is the part of a span the text lists hold. The HTTP method and
// route are NULL in the table when the span had no such attribute, which
// an empty string here would not tell apart.
type spanText struct {
	name, statusMsg, traceState, httpMethod, httpRoute string
	method, route                                      bool
}

func spanTextOf(r *spanRow) spanText {
	t := spanText{name: r.name, statusMsg: r.statusMsg, traceState: r.traceState}
	if r.httpKeys&(httpMethodStable|httpMethodLegacy) != 0 {
		t.httpMethod, t.method = r.httpMethod, true
	}
	if r.httpKeys&httpRoute != 0 {
		t.httpRoute, t.route = r.httpRoute, true
	}
	return t
}

// spansByResource plans the INSERT for day, or reports false when a
// string cannot be written as a literal (a NUL byte) or there are too
// many distinct resources or scopes for an index. It takes the texts by
// index too when they allow it (at most maxTextLiterals combinations, no
// NUL byte), and a span at a time otherwise.
func spansByResource(day []spanRow) (spanResourceInsert, bool) {
	if q, ok := planSpanInsert(day, true); ok {
		return q, true
	}
	return planSpanInsert(day, false)
}

func planSpanInsert(day []spanRow, texts bool) (spanResourceInsert, bool) {
	res, scopes := newLiteralIndex[*encodedResource](math.MaxUint16), newLiteralIndex[*encodedScope](math.MaxUint16)
	txts := newLiteralIndex[spanText](maxTextLiterals)
	q := spanResourceInsert{resIdx: res.idx, scopeIdx: scopes.idx}
	if texts {
		q.txt = make([]uint16, len(day))
	}
	for k := range day {
		r := &day[k]
		if !res.add(r.res) || !scopes.add(r.scope) {
			return q, false
		}
		if texts {
			t := spanTextOf(r)
			if !txts.add(t) {
				return q, false
			}
			q.txt[k] = txts.idx[t]
		}
	}
	var b literalBuilder
	b.WriteString("INSERT INTO %CATALOG%.main.spans SELECT trace_hi, trace_lo, span_id, parent_span_id, start_ns, duration_ns, ")
	b.list(len(res.vals), func(i int) string { return res.vals[i].service })
	b.WriteString("[res], ")
	if texts {
		t := txts.vals
		b.list(len(t), func(i int) string { return t[i].name })
		b.WriteString("[txt], kind, status_code, ")
		b.list(len(t), func(i int) string { return t[i].statusMsg })
		b.WriteString("[txt], ")
		b.nullableList(len(t), func(i int) (string, bool) { return t[i].httpMethod, t[i].method })
		b.WriteString("[txt], ")
		b.nullableList(len(t), func(i int) (string, bool) { return t[i].httpRoute, t[i].route })
		b.WriteString("[txt], http_status_code, http_keys, ")
		b.list(len(t), func(i int) string { return t[i].traceState })
		b.WriteString("[txt], ")
	} else {
		b.WriteString("name, kind, status_code, status_message, http_method, http_route, http_status_code, http_keys, trace_state, ")
	}
	// Events and links are NULL when empty (most spans have none): one
	// cgo call for the appender instead of the three of a string value.
	b.WriteString("flags, attributes, dropped_attributes, coalesce(events, ''), dropped_events, coalesce(links, ''), dropped_links, ")
	b.resourceAndScope(res.vals, scopes.vals)
	b.WriteString(" FROM appended_data")
	q.query = b.String()
	return q, !b.nul
}

// row sets v, of the INSERT's column count, to span k of the day.
func (q spanResourceInsert) row(v []driver.Value, k int, r *spanRow, at func([2]int32) string) []driver.Value {
	var httpStatus driver.Value
	if r.httpKeys&(httpStatusStable|httpStatusLegacy) != 0 {
		httpStatus = r.httpStatus
	}
	orNull := func(o [2]int32) driver.Value {
		if o[0] == o[1] {
			return nil
		}
		return at(o)
	}
	v = append(v[:0], r.traceHi, r.traceLo, r.spanID, r.parentID, r.start, r.duration)
	if q.txt != nil {
		v = append(v, r.kind, r.statusCode, httpStatus, r.httpKeys)
	} else {
		v = append(v, r.name, r.kind, r.statusCode, r.statusMsg,
			nullString(r.httpMethod, r.httpKeys&(httpMethodStable|httpMethodLegacy) != 0),
			nullString(r.httpRoute, r.httpKeys&httpRoute != 0), httpStatus, r.httpKeys, r.traceState)
	}
	v = append(v, r.flags, at(r.attrs), r.droppedAttrs, orNull(r.events), r.droppedEv, orNull(r.links), r.droppedLk,
		q.resIdx[r.res], q.scopeIdx[r.scope])
	if q.txt != nil {
		v = append(v, q.txt[k])
	}
	return v
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
		b.quote(s(i))
	}
	b.WriteString("]::VARCHAR[])")
}

// nullableList is list with NULL for the values whose ok is false.
func (b *literalBuilder) nullableList(n int, s func(int) (string, bool)) {
	b.WriteString("([")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		v, ok := s(i)
		if !ok {
			b.WriteString("NULL")
			continue
		}
		b.quote(v)
	}
	b.WriteString("]::VARCHAR[])")
}

func (b *literalBuilder) quote(v string) {
	if strings.IndexByte(v, 0) >= 0 {
		b.nul = true
	}
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(v, "'", "''"))
	b.WriteByte('\'')
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

// spanInsertColumns and spanInsertTypes are the appender's columns without
// the text index; spanTextColumns are those the index replaces.
var spanInsertColumns = []string{"trace_hi", "trace_lo", "span_id", "parent_span_id", "start_ns", "duration_ns",
	"name", "kind", "status_code", "status_message", "http_method", "http_route", "http_status_code", "http_keys",
	"trace_state", "flags", "attributes", "dropped_attributes", "events", "dropped_events", "links", "dropped_links", "res", "sc"}

var spanInsertTypes = []duckdb.Type{duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT, duckdb.TYPE_UBIGINT,
	duckdb.TYPE_BIGINT, duckdb.TYPE_BIGINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_UTINYINT, duckdb.TYPE_UTINYINT, duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_USMALLINT, duckdb.TYPE_UTINYINT,
	duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER, duckdb.TYPE_VARCHAR, duckdb.TYPE_UINTEGER,
	duckdb.TYPE_USMALLINT, duckdb.TYPE_USMALLINT}

var spanTextColumns = map[string]bool{"name": true, "status_message": true, "http_method": true, "http_route": true, "trace_state": true}

func (q spanResourceInsert) open(c driver.Conn, catalog string) (*duckdb.Appender, error) {
	var (
		names []string
		types []duckdb.TypeInfo
	)
	add := func(name string, t duckdb.Type) error {
		ti, err := duckdb.NewTypeInfo(t)
		if err != nil {
			return err
		}
		names, types = append(names, name), append(types, ti)
		return nil
	}
	for i, name := range spanInsertColumns {
		if q.txt != nil && spanTextColumns[name] {
			continue
		}
		if err := add(name, spanInsertTypes[i]); err != nil {
			return nil, err
		}
	}
	if q.txt != nil {
		if err := add("txt", duckdb.TYPE_USMALLINT); err != nil {
			return nil, err
		}
	}
	return duckdb.NewQueryAppender(c, strings.Replace(q.query, "%CATALOG%", catalog, 1), "", types, names)
}
