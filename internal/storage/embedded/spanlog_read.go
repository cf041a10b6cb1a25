package embedded

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

const spanColumns = `span_id, parent_span_id, start_ns, duration_ns, service, name, kind,
	status_code, status_message, http_method, http_route, http_status_code, http_keys,
	trace_state, flags, attributes, dropped_attributes, events, dropped_events, links,
	dropped_links, resource_attributes, resource_dropped, resource_schema_url,
	scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url`

// GetTrace finds through the trace index which days, and which start time
// range in each, hold the trace, then reads just those spans: the start_ns
// range lets DuckDB's zonemaps skip all but a few row groups.
func (s *SpanLogStore) GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ptrace.Traces{}, storage.ErrClosed
	}
	lim := storage.TraceReadLimitFrom(ctx)
	if td, ok, err := s.recent.get(id, lim); ok || err != nil {
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("embedded: %w", err)
		}
		return td, nil
	}
	key := traceIDKey(id)
	where, err := s.locateTraces(ctx, s.snapshot(), []traceKey{key})
	if err != nil {
		return ptrace.Traces{}, err
	}
	if len(where[key]) == 0 {
		return ptrace.Traces{}, storage.ErrTraceNotFound
	}
	union := func(columns string, upTo int64) string {
		var q strings.Builder
		for i, r := range where[key] {
			if i > 0 {
				q.WriteString(" UNION ALL ")
			}
			// Literals rather than parameters so the filters are constant
			// comparisons DuckDB pushes into the scan.
			fmt.Fprintf(&q, "SELECT %s FROM %s.spans WHERE start_ns BETWEEN %d AND %d AND trace_hi = %d::UBIGINT AND trace_lo = %d::UBIGINT",
				columns, r.alias, r.min, min(r.max, upTo), key.hi, key.lo)
		}
		return q.String()
	}
	upTo := int64(math.MaxInt64)
	if lim != nil && (lim.MaxSpans > 0 || lim.MaxBytes > 0) && !fitsLimit(where[key], lim) {
		// The earliest spans are the ones kept: the root and the start of
		// the story. The last start time within both bounds is found from
		// start times and sizes alone, then only the spans up to it are
		// read: DuckDB never sorts or even produces the large spans past
		// the bounds (20k spans of 15 KiB, read 8 at a time, took it far
		// past its memory limit).
		maxSpans, maxBytes := int64(lim.MaxSpans), lim.MaxBytes
		if maxSpans <= 0 {
			maxSpans = math.MaxInt64
		}
		if maxBytes <= 0 {
			maxBytes = math.MaxInt64
		}
		var total, kept int64
		var last, first sql.NullInt64
		err := s.db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE n <= %[2]d AND bytes <= %[3]d),
	max(start_ns) FILTER (WHERE n <= %[2]d AND bytes <= %[3]d), min(start_ns)
FROM (SELECT start_ns, row_number() OVER w AS n, sum(size) OVER w AS bytes
	FROM (SELECT min(start_ns) AS start_ns, max(size) AS size FROM (%[1]s) GROUP BY span_id)
	WINDOW w AS (ORDER BY start_ns ROWS UNBOUNDED PRECEDING))`,
			// Copies of a retried write count once, as the assembler
			// counts them; the size is traceassembly.Row.Size.
			union("span_id, start_ns, "+traceSizeSQL+" AS size", upTo),
			maxSpans, maxBytes)).Scan(&total, &kept, &last, &first)
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("embedded: size trace: %w", err)
		}
		if kept < total {
			lim.Truncated = true
			upTo = last.Int64
			if !last.Valid {
				// One span larger than the whole budget: it alone is sent.
				upTo = first.Int64
			}
		}
	}
	stmt := union(spanColumns, upTo)
	rows, err := s.db.QueryContext(ctx, stmt)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("embedded: query trace: %w", err)
	}
	defer rows.Close()

	var limits traceassembly.Limits
	if lim != nil {
		limits = traceassembly.Limits{MaxSpans: lim.MaxSpans, MaxBytes: lim.MaxBytes}
	}
	asm := traceassembly.New(id, limits)
	for rows.Next() {
		var (
			r                   traceassembly.Row
			colMethod, colRoute sql.NullString
			colStatus           sql.Null[uint16]
			httpKeys            uint8
		)
		if err := rows.Scan(&r.SpanID, &r.ParentID, &r.Start, &r.Duration, &r.Service, &r.Name, &r.Kind,
			&r.StatusCode, &r.StatusMessage, &colMethod, &colRoute, &colStatus, &httpKeys,
			&r.TraceState, &r.Flags, &r.Attributes, &r.DroppedAttributes, &r.Events, &r.DroppedEvents, &r.Links,
			&r.DroppedLinks, &r.ResourceAttributes, &r.ResourceDropped, &r.ResourceSchemaURL,
			&r.ScopeName, &r.ScopeVersion, &r.ScopeAttributes, &r.ScopeDropped, &r.ScopeSchemaURL); err != nil {
			return ptrace.Traces{}, fmt.Errorf("embedded: scan span: %w", err)
		}
		if httpKeys != 0 {
			r.Restore = func(a pcommon.Map) { restoreHTTP(a, httpKeys, colMethod.String, colRoute.String, colStatus.V) }
		}
		// Spans starting at the same time as the last one kept may be
		// one too many.
		if !asm.Add(r) {
			lim.Truncated = true
			break
		}
	}
	if err := rows.Err(); err != nil {
		return ptrace.Traces{}, fmt.Errorf("embedded: read trace: %w", err)
	}
	if lim != nil {
		lim.ReadBytes = asm.Bytes()
	}
	if asm.Spans() == 0 {
		return ptrace.Traces{}, storage.ErrTraceNotFound
	}
	td, err := asm.Traces()
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("embedded: %w", err)
	}
	return td, nil
}

// fitsLimit reports whether the trace index's counts show that the whole
// trace is within lim, so that it can be read without sizing it first:
// most traces are far smaller than the bounds, and the sizing query was a
// second round trip, parsed and planned, for each of them. The counts
// include the copies of retried writes, so they only ever overstate.
func fitsLimit(where []spanRange, lim *storage.TraceReadLimit) bool {
	var spans, bytes int64
	for _, r := range where {
		if r.spans < 0 || r.bytes < 0 {
			return false
		}
		spans += r.spans
		bytes += r.bytes
	}
	return (lim.MaxSpans <= 0 || spans <= int64(lim.MaxSpans)) && (lim.MaxBytes <= 0 || bytes <= lim.MaxBytes)
}

// restoreHTTP puts back the HTTP attributes kept in columns of their own.
func restoreHTTP(a pcommon.Map, keys uint8, method, route string, status uint16) {
	if keys&httpMethodStable != 0 {
		a.PutStr(keyHTTPMethod, method)
	}
	if keys&httpMethodLegacy != 0 {
		a.PutStr(keyHTTPMethodLegacy, method)
	}
	if keys&httpRoute != 0 {
		a.PutStr(keyHTTPRoute, route)
	}
	if keys&httpStatusStable != 0 {
		a.PutInt(keyHTTPStatus, int64(status))
	}
	if keys&httpStatusLegacy != 0 {
		a.PutInt(keyHTTPStatusLegacy, int64(status))
	}
}

// restoreResource rebuilds a resource, putting service.name back when
// encodeResource moved it into the service column.
func restoreResource(e encodedResource, r pcommon.Resource) error {
	r.SetDroppedAttributesCount(e.dropped)
	if err := decodeMap(e.attrs, r.Attributes()); err != nil {
		return err
	}
	if e.service != "" {
		if _, ok := r.Attributes().Get(keyServiceName); !ok {
			r.Attributes().PutStr(keyServiceName, e.service)
		}
	}
	return nil
}

// FindLogs yields matching records newest first (oldest first with
// q.Forward). Days are read in that order and reading stops as soon as no
// further day can contribute, so the usual "latest N" query touches one or
// two files. Records are read a page (storage.LogPageSize) at a time, and
// each page before its first record is yielded: the consumer may take its
// time or call the store again without holding anything open, and a large
// Limit costs one page of memory.
func (s *SpanLogStore) FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
	return storage.PageLogs(ctx, q, storage.LogPageSize, s.findLogs)
}

type foundLog struct {
	ts, day, rowid int64
	rec            storage.LogRecord
}

// logOrder compares a and b in FindLogs' order: newest first, then the
// later day file, then the later row.
func logOrder(a, b foundLog) int {
	return cmp.Or(cmp.Compare(b.ts, a.ts), cmp.Compare(b.day, a.day), cmp.Compare(b.rowid, a.rowid))
}

// logOrderForward is logOrder reversed, for LogQuery.Forward.
func logOrderForward(a, b foundLog) int { return logOrder(b, a) }

// logCursor is a record's position: its time, day file and row id, which
// DuckDB keeps stable because rows are never deleted from a day file.
func logCursor(f foundLog) string {
	return strconv.FormatInt(f.ts, 10) + "." + strconv.FormatInt(f.day, 10) + "." + strconv.FormatInt(f.rowid, 10)
}

func parseLogCursor(c string) (foundLog, error) {
	parts := strings.Split(c, ".")
	var f foundLog
	var err error
	if len(parts) == 3 {
		if f.ts, err = strconv.ParseInt(parts[0], 10, 64); err == nil {
			if f.day, err = strconv.ParseInt(parts[1], 10, 64); err == nil {
				f.rowid, err = strconv.ParseInt(parts[2], 10, 64)
			}
		}
	}
	if len(parts) != 3 || err != nil {
		return foundLog{}, fmt.Errorf("%w: malformed cursor %q", storage.ErrInvalidQuery, c)
	}
	return f, nil
}

// logConditions turns a log query, except After, into a WHERE clause.
func logConditions(q storage.LogQuery) (string, []any, error) {
	scond, sargs, err := logStreamConditions(q)
	if err != nil {
		return "", nil, err
	}
	rcond, rargs, err := logRecordConditions(q)
	if err != nil {
		return "", nil, err
	}
	return scond + " AND " + rcond, slices.Concat(sargs, rargs), nil
}

// logStreamConditions is the part of logConditions that selects by
// stream values alone (keys, service), which a day file with log_streams
// can resolve to stream ids before it reads a record.
func logStreamConditions(q storage.LogQuery) (string, []any, error) {
	conds := []string{"true"}
	var args []any
	if len(q.Streams) > 0 {
		in, err := streamKeyList(q.Streams)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, streamKeyExpr+" IN ("+in+")")
	}
	if q.Service != "" {
		conds = append(conds, "service = ?")
		args = append(args, q.Service)
	}
	if v, ok := q.Attributes[keyServiceName]; ok {
		conds = append(conds, "service = ?")
		args = append(args, v)
	}
	return strings.Join(conds, " AND "), args, nil
}

// logRecordConditions is the rest of logConditions.
func logRecordConditions(q storage.LogQuery) (string, []any, error) {
	conds := []string{"true"}
	var args []any
	if !q.TraceID.IsEmpty() {
		hi, lo := attrenc.TraceIDToUints(q.TraceID)
		conds = append(conds, fmt.Sprintf("trace_hi = %d::UBIGINT AND trace_lo = %d::UBIGINT", hi, lo))
	}
	for _, t := range q.Terms {
		if t == "" {
			continue
		}
		// contains() matches literally, unlike LIKE with its % and _.
		conds = append(conds, "contains(lower(body), ?)")
		args = append(args, strings.ToLower(t))
	}
	for _, c := range q.Contains {
		// Without lower(), which allocates a lowered copy of every body
		// it tests (a third of a scan's time in the profile).
		conds = append(conds, "contains(body, ?)")
		args = append(args, c)
	}
	if len(q.Severities) > 0 {
		var bands []string
		for _, sev := range q.Severities {
			lo, hi := sev.Range()
			bands = append(bands, fmt.Sprintf("severity_number BETWEEN %d AND %d", lo, hi))
		}
		conds = append(conds, "("+strings.Join(bands, " OR ")+")")
	}
	keys := make([]string, 0, len(q.Attributes))
	for k := range q.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := q.Attributes[k]
		if k == keyServiceName {
			continue // in logStreamConditions
		}
		c, cargs, err := ownOrResourceAttr(k, v)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, c)
		args = append(args, cargs...)
	}
	if !q.Start.IsZero() {
		conds = append(conds, fmt.Sprintf("ts_ns >= %d", q.Start.UnixNano()))
	}
	if !q.End.IsZero() {
		conds = append(conds, fmt.Sprintf("ts_ns < %d", q.End.UnixNano()))
	}
	return strings.Join(conds, " AND "), args, nil
}

func (s *SpanLogStore) findLogs(ctx context.Context, q storage.LogQuery) ([]storage.LogRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	limit := q.Limit
	// The two parts of logConditions apart: a file with log_streams
	// resolves the first to stream ids.
	scond, sargs, err := logStreamConditions(q)
	if err != nil {
		return nil, err
	}
	rcond, rargs, err := logRecordConditions(q)
	if err != nil {
		return nil, err
	}
	cond, args := scond+" AND "+rcond, slices.Concat(sargs, rargs)
	var after *foundLog
	if q.After != "" {
		c, err := parseLogCursor(q.After)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	start, end := nanosRange(q.Start, q.End)
	order := logOrder
	parts := s.snapshot()
	if q.Forward {
		order = logOrderForward
		if after != nil {
			start = max(start, after.ts)
		}
		slices.SortFunc(parts, func(a, b partition) int { return cmp.Compare(a.logMin, b.logMin) })
	} else {
		if after != nil {
			end = min(end, after.ts+1)
		}
		slices.SortFunc(parts, func(a, b partition) int { return cmp.Compare(b.logMax, a.logMax) })
	}
	var found []foundLog
	for _, p := range parts {
		if p.logMin > p.logMax || p.logMax < start || p.logMin >= end {
			continue
		}
		// Everything in this and the remaining days comes after what we
		// hold.
		if len(found) >= limit && (!q.Forward && p.logMax < found[limit-1].ts || q.Forward && p.logMin > found[limit-1].ts) {
			break
		}
		pcond, pargs, byID := cond, args, false
		// A file with log_streams: the streams the query selects found
		// first, so that the records are read from their table alone; a
		// join in the query keeps DuckDB from reading the columns of only
		// the rows its ORDER BY ... LIMIT keeps.
		if p.streams != nil && !namesStreamColumn(rcond) {
			ids, err := s.logStreamIDs(ctx, p, scond, sargs)
			if err != nil {
				return nil, err
			}
			if ids == "" {
				continue
			}
			pcond, pargs, byID = "stream IN ("+ids+") AND "+rcond, rargs, true
		}
		if after != nil {
			pcond += afterCond(*after, p.day, q.Forward)
		}
		hi := end
		if p.logMax < end {
			hi = p.logMax + 1
		}
		got, err := s.queryLogWindows(ctx, p, pcond, pargs, byID, limit, q.Forward, max(start, p.logMin), hi)
		if err != nil {
			return nil, err
		}
		found = append(found, got...)
		slices.SortStableFunc(found, order)
		found = found[:min(len(found), limit)]
	}
	out := make([]storage.LogRecord, len(found))
	for i, f := range found {
		out[i] = f.rec
		out[i].Cursor = logCursor(f)
	}
	return out, nil
}

// afterCond keeps the rows of day's file that come after the cursor c in
// FindLogs' order. Rows at the cursor's time come after it only in later
// days (in that order), or later in its own day.
func afterCond(c foundLog, day int64, forward bool) string {
	if forward {
		switch {
		case day > c.day:
			return fmt.Sprintf(" AND ts_ns >= %d", c.ts)
		case day == c.day:
			return fmt.Sprintf(" AND (ts_ns > %d OR (ts_ns = %d AND rowid > %d))", c.ts, c.ts, c.rowid)
		default:
			return fmt.Sprintf(" AND ts_ns > %d", c.ts)
		}
	}
	switch {
	case day < c.day:
		return fmt.Sprintf(" AND ts_ns <= %d", c.ts)
	case day == c.day:
		return fmt.Sprintf(" AND (ts_ns < %d OR (ts_ns = %d AND rowid < %d))", c.ts, c.ts, c.rowid)
	default:
		return fmt.Sprintf(" AND ts_ns < %d", c.ts)
	}
}

// streamKeyExpr is a log row's stream key as SQL. A stream is one
// (service, encoded resource attributes) pair, and its key DuckDB's hash of
// the two: a pure function of the stored text, so one resource has the
// same key in every day file, and filtering by keys compares one UBIGINT
// per row instead of the resource's text. Keys live as long as the DuckDB
// version that made them (the Loki API hands them back within one query).
// Two resources whose hashes collide (one chance in 2^64 per pair) share a
// stream.
const streamKeyExpr = "hash(service, resource_attributes)"

func formatStreamKey(h uint64) string { return fmt.Sprintf("%016x", h) }

// streamKeyList renders keys as a SQL list of UBIGINT literals; a key
// formatStreamKey did not make is an invalid query.
func streamKeyList(keys []string) (string, error) {
	var b strings.Builder
	for i, k := range keys {
		h, err := strconv.ParseUint(k, 16, 64)
		if err != nil || len(k) != 16 {
			return "", fmt.Errorf("%w: malformed stream key %q", storage.ErrInvalidQuery, k)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d::UBIGINT", h)
	}
	return b.String(), nil
}

// LogStreams counts the matching records and their body bytes per stream
// in SQL, the day files' counts merged by key.
func (s *SpanLogStore) LogStreams(ctx context.Context, q storage.LogQuery) ([]storage.LogStream, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	cond, args, err := logConditions(q)
	if err != nil {
		return nil, err
	}
	start, end := nanosRange(q.Start, q.End)
	if end <= start {
		return nil, nil
	}
	// The summary has records' streams, times and severity bands: it
	// answers a query that selects by nothing else. Its seconds are
	// closed at their end, so [start, end) is taken as (start-1, end-1].
	summary := q.TraceID.IsEmpty() && len(q.Severities) == 0 && len(q.Attributes) == 0 && !slices.ContainsFunc(q.Terms, func(t string) bool { return t != "" }) && len(q.Contains) == 0
	var sp countSplit
	var scond string
	var sargs []any
	if summary {
		sp = splitCountRange(start-1, end-1, start == minNanos)
		untimed := q
		untimed.Start, untimed.End = time.Time{}, time.Time{}
		if cond, args, err = logConditions(untimed); err != nil {
			return nil, err
		}
		if scond, sargs, err = logCountsConditions(q, sp); err != nil {
			return nil, err
		}
	}
	byKey := map[uint64]*storage.LogStream{}
	addStream := func(k uint64, res encodedResource, n, bytes int64) error {
		st := byKey[k]
		if st == nil {
			r := pcommon.NewResource()
			if err := restoreResource(res, r); err != nil {
				return fmt.Errorf("embedded: log stream resource: %w", err)
			}
			st = &storage.LogStream{Key: formatStreamKey(k), Service: res.service, Resource: r.Attributes().AsRaw()}
			byKey[k] = st
		}
		st.Entries += n
		st.Bytes += bytes
		return nil
	}
	var wanted map[uint64]bool
	if len(q.Streams) > 0 {
		wanted = map[uint64]bool{}
		for _, k := range q.Streams {
			h, err := strconv.ParseUint(k, 16, 64)
			if err != nil || len(k) != 16 {
				return nil, fmt.Errorf("%w: malformed stream key %q", storage.ErrInvalidQuery, k)
			}
			wanted[h] = true
		}
	}
	var sub []string
	var allArgs []any
	fromTotals := false
	raw := func(p partition, cond string) {
		// strlen counts bytes (length would count characters).
		sub = append(sub, "SELECT "+streamKeyExpr+" AS k, service, resource_attributes, count(*) AS n, sum(strlen(body))::BIGINT AS bytes FROM "+
			p.logsFrom()+" WHERE "+cond+" GROUP BY service, resource_attributes")
		allArgs = append(allArgs, args...)
	}
	for _, p := range s.snapshot() {
		if p.logMin > p.logMax || p.logMax < start || p.logMin >= end {
			continue
		}
		if !summary {
			raw(p, cond)
			continue
		}
		// A file whose records all lie in the range: its totals in memory.
		totals, ok, err := s.logTotalsWithin(ctx, p.day, func(lo, hi int64) bool { return lo >= start && hi < end })
		if err != nil {
			return nil, err
		}
		if ok {
			fromTotals = true
			for _, t := range totals {
				if wanted != nil && !wanted[t.hash] || q.Service != "" && t.service != q.Service {
					continue
				}
				if err := addStream(t.hash, encodedResource{service: t.service, attrs: t.attrs}, t.n, t.bytes); err != nil {
					return nil, err
				}
			}
			continue
		}
		if !sp.whole {
			raw(p, cond+fmt.Sprintf(" AND ts_ns >= %d AND ts_ns < %d", start, end))
			continue
		}
		sub = append(sub, "SELECT "+streamKeyExpr+" AS k, service, resource_attributes, sum(n)::BIGINT AS n, sum(bytes)::BIGINT AS bytes FROM "+
			p.alias+".log_counts WHERE "+scond+" GROUP BY service, resource_attributes")
		allArgs = append(allArgs, sargs...)
		// The edges, (start-1, edgeLo] and (edgeHi, end-1], where the
		// file holds records there.
		if start != minNanos && sp.edgeLo > start-1 && p.logMin <= sp.edgeLo && p.logMax >= start {
			raw(p, cond+fmt.Sprintf(" AND ts_ns >= %d AND ts_ns <= %d", start, sp.edgeLo))
		}
		if end-1 > sp.edgeHi && p.logMax > sp.edgeHi && p.logMin < end {
			raw(p, cond+fmt.Sprintf(" AND ts_ns > %d AND ts_ns < %d", sp.edgeHi, end))
		}
	}
	if len(sub) > 0 {
		rows, err := s.db.QueryContext(ctx, strings.Join(sub, " UNION ALL "), allArgs...)
		if err != nil {
			return nil, fmt.Errorf("embedded: log streams: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				k        uint64
				res      encodedResource
				n, bytes int64
			)
			if err := rows.Scan(&k, &res.service, &res.attrs, &n, &bytes); err != nil {
				return nil, fmt.Errorf("embedded: log streams: %w", err)
			}
			if err := addStream(k, res, n, bytes); err != nil {
				return nil, err
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("embedded: log streams: %w", err)
		}
	}
	if len(sub) == 0 && !fromTotals {
		return nil, nil
	}
	out := make([]storage.LogStream, 0, len(byKey))
	for _, st := range byKey {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b storage.LogStream) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// LogHistogram counts matching records per bin and severity band in SQL,
// one query per day file the range touches.
func (s *SpanLogStore) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, error) {
	if step <= 0 {
		return nil, fmt.Errorf("%w: histogram step must be positive", storage.ErrInvalidQuery)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	cond, args, err := logConditions(q)
	if err != nil {
		return nil, err
	}
	start, end := nanosRange(q.Start, q.End)
	var sub []string
	var allArgs []any
	for _, p := range s.snapshot() {
		if p.logMin > p.logMax || p.logMax < start || p.logMin >= end {
			continue
		}
		// floor division, so bins before 1970 align too
		sub = append(sub, fmt.Sprintf("SELECT (ts_ns // %d) - CASE WHEN ts_ns %% %d < 0 THEN 1 ELSE 0 END AS bin, severity_number AS sev, count(*) AS n FROM %s WHERE %s GROUP BY ALL",
			step.Nanoseconds(), step.Nanoseconds(), p.logsFrom(cond), cond))
		allArgs = append(allArgs, args...)
	}
	if len(sub) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, strings.Join(sub, " UNION ALL "), allArgs...)
	if err != nil {
		return nil, fmt.Errorf("embedded: log histogram: %w", err)
	}
	defer rows.Close()
	type key struct {
		bin int64
		sev storage.Severity
	}
	counts := map[key]int64{}
	for rows.Next() {
		var bin, n int64
		var sev uint8
		if err := rows.Scan(&bin, &sev, &n); err != nil {
			return nil, fmt.Errorf("embedded: log histogram: %w", err)
		}
		counts[key{bin, storage.SeverityOf(plog.SeverityNumber(sev))}] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: log histogram: %w", err)
	}
	out := make([]storage.LogBucket, 0, len(counts))
	for k, n := range counts {
		out = append(out, storage.LogBucket{Start: time.Unix(0, k.bin*step.Nanoseconds()).UTC(), Severity: k.sev, Count: n})
	}
	slices.SortFunc(out, func(a, b storage.LogBucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Severity, b.Severity))
	})
	return out, nil
}

const (
	minNanos = -1 << 63
	maxNanos = 1<<63 - 1
)

// Windows of queryLogWindows: the first spans firstLogWindow, each next
// one logWindowGrowth times the one before.
const (
	firstLogWindow  = int64(time.Second)
	logWindowGrowth = 4
)

// queryLogWindows reads up to limit records of a day file in [lo, hi) in
// FindLogs' order, a time window at a time from the end the order starts
// at, each window wider than the one before, until limit records are
// found or the range is read. One query over the whole range would make
// DuckDB filter (and test the terms of) every record of the range before
// it sorts them, when the newest 100 lines of a busy stream are in its
// last second; a window's time bounds let DuckDB skip the row groups
// outside it, since records are stored about in time order.
func (s *SpanLogStore) queryLogWindows(ctx context.Context, p partition, cond string, args []any, byID bool, limit int, forward bool, lo, hi int64) ([]foundLog, error) {
	var out []foundLog
	w := firstLogWindow
	for lo < hi && len(out) < limit {
		wlo, whi := lo, hi
		// hi-lo as unsigned cannot overflow.
		if uint64(hi)-uint64(lo) > uint64(w) {
			if forward {
				whi = lo + w
			} else {
				wlo = hi - w
			}
		}
		got, err := s.queryLogs(ctx, p, fmt.Sprintf("%s AND ts_ns >= %d AND ts_ns < %d", cond, wlo, whi), args, byID, limit-len(out), forward)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if forward {
			lo = whi
		} else {
			hi = wlo
		}
		if w < math.MaxInt64/logWindowGrowth {
			w *= logWindowGrowth
		}
	}
	return out, nil
}

// queryLogs reads up to limit records of a day file. byID reads them from
// a table with a stream column alone, cond selecting by stream id, and
// their streams' values after.
func (s *SpanLogStore) queryLogs(ctx context.Context, p partition, cond string, args []any, byID bool, limit int, forward bool) ([]foundLog, error) {
	alias := p.alias
	order := "ts_ns DESC, rowid DESC"
	if forward {
		order = "ts_ns, rowid"
	}
	streamCols, from := "service, resource_attributes, resource_dropped, scope_name", p.logsFrom()
	if byID {
		streamCols, from = "stream, '', 0::UINTEGER, ''", alias+".logs"
	}
	rows, err := s.db.QueryContext(ctx, `SELECT ts_ns, time_unset, observed_ns, trace_hi, trace_lo, span_id,
		severity_number, severity_text, body, attributes, `+streamCols+`, rowid
		FROM `+from+` WHERE `+cond+` ORDER BY `+order+` LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: query logs in %s: %w", alias, err)
	}
	defer rows.Close()
	var out []foundLog
	type streamOf struct {
		res   encodedResource
		scope string
	}
	var streams map[string]*streamOf // by id, when byID
	var ofRow []*streamOf
	for rows.Next() {
		var (
			f                    = foundLog{day: p.day}
			unset                bool
			observed             int64
			traceHi, traceLo, sp uint64
			sev                  uint8
			attrs                string
			st                   streamOf
		)
		if err := rows.Scan(&f.ts, &unset, &observed, &traceHi, &traceLo, &sp, &sev, &f.rec.SeverityText,
			&f.rec.Body, &attrs, &st.res.service, &st.res.attrs, &st.res.dropped, &st.scope, &f.rowid); err != nil {
			return nil, fmt.Errorf("embedded: scan log: %w", err)
		}
		if byID {
			// service holds the stream id.
			if streams == nil {
				streams = map[string]*streamOf{}
			}
			if streams[st.res.service] == nil {
				streams[st.res.service] = &streamOf{}
			}
			ofRow = append(ofRow, streams[st.res.service])
		} else {
			ofRow = append(ofRow, &st)
		}
		if !unset {
			f.rec.Timestamp = time.Unix(0, f.ts).UTC()
		}
		if observed != 0 {
			f.rec.ObservedTimestamp = time.Unix(0, observed).UTC()
		}
		f.rec.SeverityNumber = plogSeverity(sev)
		f.rec.TraceID = attrenc.UintsToTraceID(traceHi, traceLo)
		f.rec.SpanID = attrenc.UintToSpanID(sp)
		m := pcommon.NewMap()
		if err := decodeMap(attrs, m); err != nil {
			return nil, err
		}
		f.rec.Attributes = m.AsRaw()
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: read logs in %s: %w", alias, err)
	}
	if len(streams) > 0 {
		ids := make([]string, 0, len(streams))
		for id := range streams {
			ids = append(ids, id)
		}
		srows, err := s.db.QueryContext(ctx, "SELECT id::VARCHAR, service, resource_attributes, resource_dropped, scope_name FROM "+
			alias+".log_streams WHERE id IN ("+strings.Join(ids, ",")+")")
		if err != nil {
			return nil, fmt.Errorf("embedded: read log streams in %s: %w", alias, err)
		}
		defer srows.Close()
		for srows.Next() {
			var (
				id string
				st streamOf
			)
			if err := srows.Scan(&id, &st.res.service, &st.res.attrs, &st.res.dropped, &st.scope); err != nil {
				return nil, fmt.Errorf("embedded: read log streams in %s: %w", alias, err)
			}
			*streams[id] = st
		}
		if err := srows.Err(); err != nil {
			return nil, fmt.Errorf("embedded: read log streams in %s: %w", alias, err)
		}
	}
	for i := range out {
		st := ofRow[i]
		out[i].rec.Service, out[i].rec.ScopeName = st.res.service, st.scope
		r := pcommon.NewResource()
		if err := restoreResource(st.res, r); err != nil {
			return nil, err
		}
		out[i].rec.ResourceAttributes = r.Attributes().AsRaw()
	}
	return out, nil
}

func plogSeverity(v uint8) plog.SeverityNumber { return plog.SeverityNumber(v) }
