package embedded

import (
	"cmp"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

// spansDDL creates a day's span table. Hot fields are real columns;
// everything else is typed JSON (see spanlog_attrs.go). Trace ids are two
// UBIGINTs (big-endian halves): fixed width, and GetTrace filters on
// trace_hi first. End time is stored as a duration, which packs into far
// fewer bits than a second absolute timestamp.
const spansDDL = `CREATE TABLE IF NOT EXISTS %s.spans (
	trace_hi            UBIGINT   NOT NULL,
	trace_lo            UBIGINT   NOT NULL,
	span_id             UBIGINT   NOT NULL,
	parent_span_id      UBIGINT   NOT NULL,
	start_ns            BIGINT    NOT NULL,
	duration_ns         BIGINT    NOT NULL,
	service             VARCHAR   NOT NULL,
	name                VARCHAR   NOT NULL,
	kind                UTINYINT  NOT NULL,
	status_code         UTINYINT  NOT NULL,
	status_message      VARCHAR   NOT NULL,
	http_method         VARCHAR,
	http_route          VARCHAR,
	http_status_code    USMALLINT,
	http_keys           UTINYINT  NOT NULL,
	trace_state         VARCHAR   NOT NULL,
	flags               UINTEGER  NOT NULL,
	attributes          VARCHAR   NOT NULL USING COMPRESSION zstd,
	dropped_attributes  UINTEGER  NOT NULL,
	events              VARCHAR   NOT NULL,
	dropped_events      UINTEGER  NOT NULL,
	links               VARCHAR   NOT NULL,
	dropped_links       UINTEGER  NOT NULL,
	resource_attributes VARCHAR   NOT NULL,
	resource_dropped    UINTEGER  NOT NULL,
	resource_schema_url VARCHAR   NOT NULL,
	scope_name          VARCHAR   NOT NULL,
	scope_version       VARCHAR   NOT NULL,
	scope_attributes    VARCHAR   NOT NULL,
	scope_dropped       UINTEGER  NOT NULL,
	scope_schema_url    VARCHAR   NOT NULL
)`

// logsDDL creates a day's log table. ts_ns is the record's Timestamp, or
// its ObservedTimestamp when the Timestamp is unset (time_unset), so that
// filters and ordering use one plain column. body is the text the read
// side returns (non-string bodies rendered as JSON). stream is the id of
// the record's resource and scope in log_streams (spanlog_streams.go).
const logsDDL = `CREATE TABLE IF NOT EXISTS %s.logs (
	ts_ns               BIGINT    NOT NULL,
	time_unset          BOOLEAN   NOT NULL,
	observed_ns         BIGINT    NOT NULL,
	trace_hi            UBIGINT   NOT NULL,
	trace_lo            UBIGINT   NOT NULL,
	span_id             UBIGINT   NOT NULL,
	flags               UINTEGER  NOT NULL,
	severity_number     UTINYINT  NOT NULL,
	severity_text       VARCHAR   NOT NULL,
	stream              UINTEGER  NOT NULL,
	body                VARCHAR   NOT NULL USING COMPRESSION zstd,
	attributes          VARCHAR   NOT NULL USING COMPRESSION zstd,
	dropped_attributes  UINTEGER  NOT NULL,
	event_name          VARCHAR   NOT NULL
)`

// inlineLogsDDL is the log table of day files created before
// log_streams, which hold each record's resource and scope in its own
// columns; they are still read and written in it.
const inlineLogsDDL = `CREATE TABLE IF NOT EXISTS %s.logs (
	ts_ns               BIGINT    NOT NULL,
	time_unset          BOOLEAN   NOT NULL,
	observed_ns         BIGINT    NOT NULL,
	trace_hi            UBIGINT   NOT NULL,
	trace_lo            UBIGINT   NOT NULL,
	span_id             UBIGINT   NOT NULL,
	flags               UINTEGER  NOT NULL,
	severity_number     UTINYINT  NOT NULL,
	severity_text       VARCHAR   NOT NULL,
	service             VARCHAR   NOT NULL,
	body                VARCHAR   NOT NULL USING COMPRESSION zstd,
	attributes          VARCHAR   NOT NULL USING COMPRESSION zstd,
	dropped_attributes  UINTEGER  NOT NULL,
	event_name          VARCHAR   NOT NULL,
	resource_attributes VARCHAR   NOT NULL,
	resource_dropped    UINTEGER  NOT NULL,
	resource_schema_url VARCHAR   NOT NULL,
	scope_name          VARCHAR   NOT NULL,
	scope_version       VARCHAR   NOT NULL,
	scope_attributes    VARCHAR   NOT NULL,
	scope_dropped       UINTEGER  NOT NULL,
	scope_schema_url    VARCHAR   NOT NULL
)`

// Bits of spans.http_keys: which attribute each http_* column came from,
// so GetTrace puts it back under the same key.
const (
	httpMethodStable = 1 << iota // http.request.method
	httpMethodLegacy             // http.method
	httpRoute                    // http.route
	httpStatusStable             // http.response.status_code
	httpStatusLegacy             // http.status_code
)

const (
	keyServiceName      = "service.name"
	keyHTTPMethod       = "http.request.method"
	keyHTTPMethodLegacy = "http.method"
	keyHTTPRoute        = "http.route"
	keyHTTPStatus       = "http.response.status_code"
	keyHTTPStatusLegacy = "http.status_code"
)

// encodedResource is a resource's column values, computed once per
// ResourceSpans/ResourceLogs and shared by its rows.
type encodedResource struct {
	service, attrs, schemaURL string
	dropped                   uint32
}

type encodedScope struct {
	name, version, attrs, schemaURL string
	dropped                         uint32
}

// encodeResource keeps a non-empty string service.name only in the service
// column; restoreResource puts it back.
func encodeResource(buf []byte, r pcommon.Resource, schemaURL string) ([]byte, encodedResource) {
	e := encodedResource{schemaURL: validUTF8(schemaURL), dropped: r.DroppedAttributesCount()}
	attrs := r.Attributes()
	var skip func(string, pcommon.Value) bool
	if v, ok := attrs.Get(keyServiceName); ok {
		e.service = validUTF8(v.AsString())
		if v.Type() == pcommon.ValueTypeStr && v.Str() != "" && utf8.ValidString(v.Str()) {
			skip = func(k string, _ pcommon.Value) bool { return k == keyServiceName }
		}
	}
	buf = appendMap(buf[:0], attrs, skip)
	e.attrs = string(buf)
	return buf, e
}

func encodeScope(buf []byte, sc pcommon.InstrumentationScope, schemaURL string) ([]byte, encodedScope) {
	buf = appendMap(buf[:0], sc.Attributes(), nil)
	return buf, encodedScope{
		name:      validUTF8(sc.Name()),
		version:   validUTF8(sc.Version()),
		attrs:     string(buf),
		schemaURL: validUTF8(schemaURL),
		dropped:   sc.DroppedAttributesCount(),
	}
}

// spanRow is one span's column values. Encoded JSON lives in the batch's
// arena (offsets here) so a batch makes a handful of allocations, not one
// per span and column.
type spanRow struct {
	day                                int64
	traceHi, traceLo, spanID, parentID uint64
	start, duration                    int64
	res                                *encodedResource
	scope                              *encodedScope
	name, statusMsg, traceState        string
	httpMethod, httpRoute              string
	httpStatus                         uint16
	kind, statusCode, httpKeys         uint8
	flags                              uint32
	droppedAttrs, droppedEv, droppedLk uint32
	attrs, events, links               [2]int32 // arena offsets
	// size is the row's size as traceassembly.Row.Size counts it.
	size int64
}

// WriteTraces appends every span of td in one transaction per UTC day it
// touches and returns once all are committed to DuckDB's WAL.
func (s *SpanLogStore) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	if td.SpanCount() == 0 {
		return nil
	}
	// Checked once per call, before a day file is created or written.
	if err := s.guard.check(); err != nil {
		return err
	}
	rows, arena := s.spanRows(td)
	// Sorting by trace id groups a trace's spans, which DuckDB stores as
	// runs; ordering by day first splits the batch into transactions.
	slices.SortFunc(rows, func(a, b spanRow) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.traceHi, b.traceHi),
			cmp.Compare(a.traceLo, b.traceLo), cmp.Compare(a.start, b.start))
	})
	at := func(o [2]int32) string {
		if o[0] == o[1] {
			return ""
		}
		return unsafe.String(&arena[o[0]], int(o[1]-o[0]))
	}
	vals := make([]driver.Value, 31)
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].day == rows[i].day {
			j++
		}
		day := rows[i:j:j]
		p, err := s.partitionFor(ctx, day[0].day)
		if err != nil {
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		newOps := p.newOperations(day)
		s.recent.admit(s.traceLocsOfAll(), day)
		s.noteTraces(p, day)
		spansFill := tableFill{"spans", func(a *duckdb.Appender) error {
			for k := range day {
				r := &day[k]
				vals[0], vals[1], vals[2], vals[3] = r.traceHi, r.traceLo, r.spanID, r.parentID
				vals[4], vals[5] = r.start, r.duration
				vals[6], vals[7] = r.res.service, r.name
				vals[8], vals[9], vals[10] = r.kind, r.statusCode, r.statusMsg
				vals[11], vals[12], vals[13] = nullString(r.httpMethod, r.httpKeys&(httpMethodStable|httpMethodLegacy) != 0),
					nullString(r.httpRoute, r.httpKeys&httpRoute != 0), nil
				if r.httpKeys&(httpStatusStable|httpStatusLegacy) != 0 {
					vals[13] = r.httpStatus
				}
				vals[14], vals[15], vals[16] = r.httpKeys, r.traceState, r.flags
				vals[17], vals[18] = at(r.attrs), r.droppedAttrs
				vals[19], vals[20] = at(r.events), r.droppedEv
				vals[21], vals[22] = at(r.links), r.droppedLk
				vals[23], vals[24], vals[25] = r.res.attrs, r.res.dropped, r.res.schemaURL
				vals[26], vals[27], vals[28], vals[29], vals[30] = r.scope.name, r.scope.version, r.scope.attrs, r.scope.dropped, r.scope.schemaURL
				if err := a.AppendRow(vals...); err != nil {
					return err
				}
			}
			return nil
		}, nil}
		if q, ok := spansByResource(day); ok {
			spansFill = tableFill{"spans", func(a *duckdb.Appender) error {
				v := vals[:24]
				for k := range day {
					r := &day[k]
					v[0], v[1], v[2], v[3] = r.traceHi, r.traceLo, r.spanID, r.parentID
					v[4], v[5], v[6] = r.start, r.duration, r.name
					v[7], v[8], v[9] = r.kind, r.statusCode, r.statusMsg
					v[10], v[11], v[12] = nullString(r.httpMethod, r.httpKeys&(httpMethodStable|httpMethodLegacy) != 0),
						nullString(r.httpRoute, r.httpKeys&httpRoute != 0), nil
					if r.httpKeys&(httpStatusStable|httpStatusLegacy) != 0 {
						v[12] = r.httpStatus
					}
					v[13], v[14], v[15] = r.httpKeys, r.traceState, r.flags
					v[16], v[17] = at(r.attrs), r.droppedAttrs
					v[18], v[19] = at(r.events), r.droppedEv
					v[20], v[21] = at(r.links), r.droppedLk
					v[22], v[23] = q.resIdx[r.res], q.scopeIdx[r.scope]
					if err := a.AppendRow(v...); err != nil {
						return err
					}
				}
				return nil
			}, q.open}
		}
		_, err = s.appendDay(ctx, day[0].day, spansFill, tableFill{"trace_index", func(a *duckdb.Appender) error {
			return appendTraceIndex(a, day)
		}, nil}, tableFill{"operations", func(a *duckdb.Appender) error {
			return appendOperations(a, newOps)
		}, nil})
		if err != nil {
			return err
		}
		p.addOperations(newOps)
		s.recent.add(day, arena)
		lo, hi := day[0].start, day[0].start
		for k := range day {
			lo, hi = min(lo, day[k].start), max(hi, day[k].start)
		}
		s.noteSpans(p, lo, hi)
		i = j
	}
	return nil
}

func nullString(s string, ok bool) driver.Value {
	if !ok {
		return nil
	}
	return s
}

// spanRows converts td into rows; JSON goes into the returned arena.
func (s *SpanLogStore) spanRows(td ptrace.Traces) ([]spanRow, []byte) {
	lo, hi := s.dayWindow()
	rows := make([]spanRow, 0, td.SpanCount())
	arena := make([]byte, 0, td.SpanCount()*256)
	var scratch []byte
	mark := func(start int) [2]int32 { return [2]int32{int32(start), int32(len(arena))} }
	for _, rs := range td.ResourceSpans().All() {
		var res encodedResource
		scratch, res = encodeResource(scratch, rs.Resource(), rs.SchemaUrl())
		for _, ss := range rs.ScopeSpans().All() {
			var sc encodedScope
			scratch, sc = encodeScope(scratch, ss.Scope(), ss.SchemaUrl())
			for _, sp := range ss.Spans().All() {
				start := int64(sp.StartTimestamp())
				r := spanRow{
					day:          s.dayOf(start, lo, hi),
					spanID:       attrenc.SpanIDToUint(sp.SpanID()),
					parentID:     attrenc.SpanIDToUint(sp.ParentSpanID()),
					start:        start,
					duration:     int64(sp.EndTimestamp() - sp.StartTimestamp()),
					res:          &res,
					scope:        &sc,
					name:         validUTF8(sp.Name()),
					statusMsg:    validUTF8(sp.Status().Message()),
					traceState:   validUTF8(sp.TraceState().AsRaw()),
					kind:         attrenc.Enum8(int32(sp.Kind())),
					statusCode:   attrenc.Enum8(int32(sp.Status().Code())),
					flags:        sp.Flags(),
					droppedAttrs: sp.DroppedAttributesCount(),
					droppedEv:    sp.DroppedEventsCount(),
					droppedLk:    sp.DroppedLinksCount(),
				}
				r.traceHi, r.traceLo = attrenc.TraceIDToUints(sp.TraceID())
				attrs := sp.Attributes()
				r.httpKeys = extractHTTP(attrs, &r)
				o := len(arena)
				arena = appendMap(arena, attrs, func(k string, _ pcommon.Value) bool { return httpSkip(k, r.httpKeys) })
				r.attrs = mark(o)
				o = len(arena)
				arena = appendEvents(arena, sp.Events(), sp.StartTimestamp())
				r.events = mark(o)
				o = len(arena)
				arena = appendLinks(arena, sp.Links())
				r.links = mark(o)
				r.size = int64(r.attrs[1]-r.attrs[0]+r.events[1]-r.events[0]+r.links[1]-r.links[0]) +
					int64(len(r.res.attrs)+len(r.name)) + traceassembly.RowOverhead
				rows = append(rows, r)
			}
		}
	}
	return rows, arena
}

// extractHTTP moves the HTTP fields dashboards group by into columns when
// they have the type semantic conventions give them; otherwise they stay in
// the attribute JSON untouched.
func extractHTTP(attrs pcommon.Map, r *spanRow) uint8 {
	var keys uint8
	if v, ok := attrs.Get(keyHTTPMethod); ok && isCleanStr(v) {
		r.httpMethod, keys = v.Str(), keys|httpMethodStable
	} else if v, ok := attrs.Get(keyHTTPMethodLegacy); ok && isCleanStr(v) {
		r.httpMethod, keys = v.Str(), keys|httpMethodLegacy
	}
	if v, ok := attrs.Get(keyHTTPRoute); ok && isCleanStr(v) {
		r.httpRoute, keys = v.Str(), keys|httpRoute
	}
	if v, ok := attrs.Get(keyHTTPStatus); ok && isStatus(v) {
		r.httpStatus, keys = uint16(v.Int()), keys|httpStatusStable
	} else if v, ok := attrs.Get(keyHTTPStatusLegacy); ok && isStatus(v) {
		r.httpStatus, keys = uint16(v.Int()), keys|httpStatusLegacy
	}
	return keys
}

func httpSkip(k string, keys uint8) bool {
	if keys == 0 || !strings.HasPrefix(k, "http.") {
		return false
	}
	switch k {
	case keyHTTPMethod:
		return keys&httpMethodStable != 0
	case keyHTTPMethodLegacy:
		return keys&httpMethodLegacy != 0
	case keyHTTPRoute:
		return keys&httpRoute != 0
	case keyHTTPStatus:
		return keys&httpStatusStable != 0
	case keyHTTPStatusLegacy:
		return keys&httpStatusLegacy != 0
	}
	return false
}

func isCleanStr(v pcommon.Value) bool {
	return v.Type() == pcommon.ValueTypeStr && utf8.ValidString(v.Str())
}

func isStatus(v pcommon.Value) bool {
	return v.Type() == pcommon.ValueTypeInt && v.Int() >= 0 && v.Int() <= 0xffff
}

// logRow is one log record's column values.
type logRow struct {
	day                      int64
	ts, observed             int64
	timeUnset                bool
	traceHi, traceLo, spanID uint64
	flags                    uint32
	severity                 uint8
	severityText, eventName  string
	res                      *encodedResource
	scope                    *encodedScope
	droppedAttrs             uint32
	body, attrs              [2]int32
}

// WriteLogs appends every record of ld in one transaction per UTC day it
// touches and returns once all are committed to DuckDB's WAL.
func (s *SpanLogStore) WriteLogs(ctx context.Context, ld plog.Logs) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	if ld.LogRecordCount() == 0 {
		return nil
	}
	// Checked once per call, before a day file is created or written.
	if err := s.guard.check(); err != nil {
		return err
	}
	rows, arena := s.logRows(ld)
	// Arrival order, then time: a batch's records share a handful of
	// observed times (one a Loki push request), which then compress to
	// runs instead of bit-packed values a record, while each request's
	// records stay in time order for their own compression and the
	// zonemaps, whose row groups span many batches anyway.
	rows = sortLogRows(rows)
	at := func(o [2]int32) string {
		if o[0] == o[1] {
			return ""
		}
		return unsafe.String(&arena[o[0]], int(o[1]-o[0]))
	}
	vals := make([]driver.Value, 22)
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].day == rows[i].day {
			j++
		}
		day := rows[i:j:j]
		p, err := s.partitionFor(ctx, day[0].day)
		if err != nil {
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		var fills []tableFill
		var fresh []newLogStream
		if p.streams == nil {
			fills = append(fills, inlineLogsFill(day, at, vals))
		} else {
			var ids map[streamPair]uint32
			ids, fresh = p.streams.assign(day)
			if len(fresh) > 0 {
				fills = append(fills, tableFill{"log_streams", func(a *duckdb.Appender) error {
					return appendLogStreams(a, fresh)
				}, nil})
			}
			fills = append(fills, streamLogsFill(day, at, vals, ids))
		}
		fills = append(fills, tableFill{logCountsTable, func(a *duckdb.Appender) error {
			return appendLogCounts(a, day, func(r *logRow) string { return at(r.body) })
		}, nil})
		if _, err := s.appendDay(ctx, day[0].day, fills...); err != nil {
			return err
		}
		if p.streams != nil {
			p.streams.learn(fresh)
		}
		lo, hi := day[0].ts, day[0].ts
		for k := range day {
			lo, hi = min(lo, day[k].ts), max(hi, day[k].ts)
		}
		s.noteLogs(p, lo, hi, logTotalsOf(day, func(r *logRow) string { return at(r.body) }))
		if err := s.maybeCompactLogCounts(ctx, p, len(day)); err != nil {
			// The records are stored; the summary is only larger than
			// it could be.
			s.log.Warn("compacting the log count summary failed", "file", p.path, "err", err)
		}
		i = j
	}
	return nil
}

// sortLogRows orders rows by day, observed time and time. It sorts small
// keys and then moves each row once: a logRow is over a hundred bytes,
// and swapping rows made the sort 4.5% of the server's CPU.
func sortLogRows(rows []logRow) []logRow {
	type key struct {
		day, observed, ts int64
		i                 int
	}
	keys := make([]key, len(rows))
	for i := range rows {
		keys[i] = key{rows[i].day, rows[i].observed, rows[i].ts, i}
	}
	order := func(a, b key) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.observed, b.observed), cmp.Compare(a.ts, b.ts))
	}
	if slices.IsSortedFunc(keys, order) {
		return rows
	}
	slices.SortFunc(keys, order)
	out := make([]logRow, len(rows))
	for j, k := range keys {
		out[j] = rows[k.i]
	}
	return out
}

// inlineLogsFill appends day to a log table in the layout before
// log_streams.
func inlineLogsFill(day []logRow, at func([2]int32) string, vals []driver.Value) tableFill {
	if q, ok := logsByResource(day); ok {
		return tableFill{"logs", func(a *duckdb.Appender) error {
			v := vals[:14]
			for k := range day {
				r := &day[k]
				v[0], v[1], v[2] = r.ts, r.timeUnset, r.observed
				v[3], v[4], v[5], v[6] = r.traceHi, r.traceLo, r.spanID, r.flags
				v[7], v[8], v[9], v[10] = r.severity, at(r.body), at(r.attrs), r.droppedAttrs
				v[11], v[12], v[13] = q.resIdx[r.res], q.scopeIdx[r.scope], q.txt[k]
				if err := a.AppendRow(v...); err != nil {
					return err
				}
			}
			return nil
		}, q.open}
	}
	return tableFill{"logs", func(a *duckdb.Appender) error {
		for k := range day {
			r := &day[k]
			vals[0], vals[1], vals[2] = r.ts, r.timeUnset, r.observed
			vals[3], vals[4], vals[5], vals[6] = r.traceHi, r.traceLo, r.spanID, r.flags
			vals[7], vals[8], vals[9] = r.severity, r.severityText, r.res.service
			vals[10], vals[11], vals[12], vals[13] = at(r.body), at(r.attrs), r.droppedAttrs, r.eventName
			vals[14], vals[15], vals[16] = r.res.attrs, r.res.dropped, r.res.schemaURL
			vals[17], vals[18], vals[19], vals[20], vals[21] = r.scope.name, r.scope.version, r.scope.attrs, r.scope.dropped, r.scope.schemaURL
			if err := a.AppendRow(vals...); err != nil {
				return err
			}
		}
		return nil
	}, nil}
}

// streamLogsFill appends day to a log table with a stream column, ids
// giving each record's stream.
func streamLogsFill(day []logRow, at func([2]int32) string, vals []driver.Value, ids map[streamPair]uint32) tableFill {
	if q, ok := logsByText(day); ok {
		return tableFill{"logs", func(a *duckdb.Appender) error {
			v := vals[:13]
			for k := range day {
				r := &day[k]
				v[0], v[1], v[2] = r.ts, r.timeUnset, r.observed
				v[3], v[4], v[5], v[6] = r.traceHi, r.traceLo, r.spanID, r.flags
				v[7], v[8], v[9], v[10] = r.severity, at(r.body), at(r.attrs), r.droppedAttrs
				v[11], v[12] = ids[streamPair{r.res, r.scope}], q.txt[k]
				if err := a.AppendRow(v...); err != nil {
					return err
				}
			}
			return nil
		}, q.open}
	}
	return tableFill{"logs", func(a *duckdb.Appender) error {
		v := vals[:14]
		for k := range day {
			r := &day[k]
			v[0], v[1], v[2] = r.ts, r.timeUnset, r.observed
			v[3], v[4], v[5], v[6] = r.traceHi, r.traceLo, r.spanID, r.flags
			v[7], v[8], v[9] = r.severity, r.severityText, ids[streamPair{r.res, r.scope}]
			v[10], v[11], v[12], v[13] = at(r.body), at(r.attrs), r.droppedAttrs, r.eventName
			if err := a.AppendRow(v...); err != nil {
				return err
			}
		}
		return nil
	}, nil}
}

func (s *SpanLogStore) logRows(ld plog.Logs) ([]logRow, []byte) {
	lo, hi := s.dayWindow()
	rows := make([]logRow, 0, ld.LogRecordCount())
	arena := make([]byte, 0, ld.LogRecordCount()*256)
	var scratch []byte
	for _, rl := range ld.ResourceLogs().All() {
		var res encodedResource
		scratch, res = encodeResource(scratch, rl.Resource(), rl.SchemaUrl())
		for _, sl := range rl.ScopeLogs().All() {
			var sc encodedScope
			scratch, sc = encodeScope(scratch, sl.Scope(), sl.SchemaUrl())
			for _, lr := range sl.LogRecords().All() {
				ts := int64(lr.Timestamp())
				r := logRow{
					ts:           ts,
					observed:     int64(lr.ObservedTimestamp()),
					timeUnset:    ts == 0,
					spanID:       attrenc.SpanIDToUint(lr.SpanID()),
					flags:        uint32(lr.Flags()),
					severity:     attrenc.Enum8(int32(lr.SeverityNumber())),
					severityText: validUTF8(lr.SeverityText()),
					eventName:    validUTF8(lr.EventName()),
					res:          &res,
					scope:        &sc,
					droppedAttrs: lr.DroppedAttributesCount(),
				}
				if r.timeUnset {
					r.ts = r.observed
				}
				r.day = s.dayOf(r.ts, lo, hi)
				r.traceHi, r.traceLo = attrenc.TraceIDToUints(lr.TraceID())
				o := len(arena)
				arena = append(arena, validUTF8(lr.Body().AsString())...)
				r.body = [2]int32{int32(o), int32(len(arena))}
				o = len(arena)
				arena = appendMap(arena, lr.Attributes(), nil)
				r.attrs = [2]int32{int32(o), int32(len(arena))}
				rows = append(rows, r)
			}
		}
	}
	return rows, arena
}

// tableFill appends rows to one table of a day's file.
type tableFill struct {
	table string
	fill  func(*duckdb.Appender) error
	// open makes the appender instead of a plain one on table, given the
	// day file's catalog name.
	open func(c driver.Conn, catalog string) (*duckdb.Appender, error)
}

// appendDay runs each fill against an Appender on its table of the day's
// file inside one transaction and commits it, so a batch's spans and their
// index rows become visible (and durable) together. It returns the
// partition it wrote to.
func (s *SpanLogStore) appendDay(ctx context.Context, day int64, fills ...tableFill) (p *partition, err error) {
	defer func() {
		if err != nil && ctx.Err() == nil {
			s.guard.failed()
		}
	}()
	p, err = s.partitionFor(ctx, day)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: embedded: get connection: %w", storage.ErrUnavailable, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return nil, fmt.Errorf("%w: embedded: begin: %w", storage.ErrUnavailable, err)
	}
	committed := false
	defer func() {
		if !committed {
			// Rollback must run even when ctx is what failed.
			if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("embedded: rollback: %w", rerr))
				// A connection with a dangling transaction must not go back to the pool.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
	}()
	for _, f := range fills {
		err = conn.Raw(func(dc any) error {
			var a *duckdb.Appender
			var err error
			if f.open != nil {
				a, err = f.open(dc.(driver.Conn), p.alias)
			} else {
				a, err = duckdb.NewAppender(dc.(driver.Conn), p.alias, "main", f.table)
			}
			if err != nil {
				return err
			}
			if err := f.fill(a); err != nil {
				_ = a.Close()
				return err
			}
			return a.Close()
		})
		if err != nil {
			// Rows are validated while being built, so what fails here is
			// DuckDB itself (memory, disk): worth a retry.
			return nil, fmt.Errorf("%w: embedded: append %s to %s: %w", storage.ErrUnavailable, f.table, p.alias, err)
		}
	}
	// The commit must not be interrupted half way by a cancelled ctx: the
	// caller would not know whether the data is stored.
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return nil, fmt.Errorf("%w: embedded: commit to %s: %w", storage.ErrUnavailable, p.alias, err)
	}
	committed = true
	s.noteWritten(day)
	return p, nil
}

// validUTF8 makes s storable in a VARCHAR column. OTLP requires UTF-8, so
// this only alters malformed input; attribute values keep invalid bytes
// exactly through their own encoding.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
