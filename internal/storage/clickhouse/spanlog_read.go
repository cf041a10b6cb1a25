package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"iter"
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

const spanReadColumns = `span_id, parent_span_id, start_ns, duration_ns, service, name, kind,
	status_code, status_message, trace_state, flags, attributes, dropped_attributes, events,
	dropped_events, links, dropped_links, resource_attributes, resource_dropped, resource_schema_url,
	scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url`

// GetTrace reads the trace index for the days, and the start range in
// each, that hold the trace, then only those spans: the date and start_ns
// conditions prune partitions and granules before the trace id is
// compared (with a bloom filter on modern servers).
func (s *SpanLogStore) GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	if err := s.begin(); err != nil {
		return ptrace.Traces{}, err
	}
	defer s.mu.RUnlock()
	hi, lo := attrenc.TraceIDToUints(id)
	idCond := fmt.Sprintf("trace_hi = %d AND trace_lo = %d", hi, lo)
	rows, err := s.c.Conn.Query(ctx, "SELECT toUInt32(date), min(start_min), max(start_max) FROM "+
		s.c.Table(traceIndexTable.name)+" WHERE "+idCond+" GROUP BY date")
	if err != nil {
		return ptrace.Traces{}, classify(ctx, "read trace index", err)
	}
	var ranges []string
	for rows.Next() {
		var day uint32
		var mn, mx int64
		if err := rows.Scan(&day, &mn, &mx); err != nil {
			rows.Close()
			return ptrace.Traces{}, classify(ctx, "read trace index", err)
		}
		ranges = append(ranges, fmt.Sprintf("(date = %s AND start_ns BETWEEN %d AND %d)", dateLiteral(int64(day)), mn, mx))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ptrace.Traces{}, classify(ctx, "read trace index", err)
	}
	if len(ranges) == 0 {
		return ptrace.Traces{}, storage.ErrTraceNotFound
	}
	rows, err = s.c.Conn.Query(ctx, "SELECT "+spanReadColumns+" FROM "+s.c.Table(spansTable.name)+
		" WHERE "+idCond+" AND ("+strings.Join(ranges, " OR ")+")")
	if err != nil {
		return ptrace.Traces{}, classify(ctx, "read trace", err)
	}
	defer rows.Close()
	// This store does not honour a TraceReadLimit (rows come in no
	// order); the caller trims what it returns.
	asm := traceassembly.New(id, traceassembly.Limits{})
	for rows.Next() {
		var r traceassembly.Row
		if err := rows.Scan(&r.SpanID, &r.ParentID, &r.Start, &r.Duration, &r.Service, &r.Name, &r.Kind,
			&r.StatusCode, &r.StatusMessage, &r.TraceState, &r.Flags, &r.Attributes, &r.DroppedAttributes, &r.Events,
			&r.DroppedEvents, &r.Links, &r.DroppedLinks, &r.ResourceAttributes, &r.ResourceDropped, &r.ResourceSchemaURL,
			&r.ScopeName, &r.ScopeVersion, &r.ScopeAttributes, &r.ScopeDropped, &r.ScopeSchemaURL); err != nil {
			return ptrace.Traces{}, classify(ctx, "scan span", err)
		}
		asm.Add(r)
	}
	if err := rows.Err(); err != nil {
		return ptrace.Traces{}, classify(ctx, "read trace", err)
	}
	if asm.Spans() == 0 {
		return ptrace.Traces{}, storage.ErrTraceNotFound
	}
	td, err := asm.Traces()
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("clickhouse: %w", err)
	}
	return td, nil
}

// FindLogs yields matching records newest first (oldest first with
// q.Forward; ties by a random row id, stable across calls). Records are
// read a page (storage.LogPageSize) at a time, and each page before its
// first record is yielded: the consumer may take its time or call the
// store again meanwhile, and a large Limit costs one page of memory.
func (s *SpanLogStore) FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
	return storage.PageLogs(ctx, q, storage.LogPageSize, s.findLogs)
}

// logFilter is a log query as SQL, plus the attribute filters SQL can only
// narrow down (typed JSON is not parsed server-side, which 18.16 cannot do
// exactly) and Go checks on each candidate.
type logFilter struct {
	where string
	args  []any
	attrs map[string]string
}

// logConditions turns a log query, except After, into a WHERE clause.
func (s *SpanLogStore) logConditions(q storage.LogQuery) (logFilter, error) {
	conds := []string{"1"}
	var f logFilter
	if len(q.Streams) > 0 {
		in, err := streamKeyList(q.Streams)
		if err != nil {
			return logFilter{}, err
		}
		conds = append(conds, streamKeyExpr+" IN ("+in+")")
	}
	if !q.TraceID.IsEmpty() {
		hi, lo := attrenc.TraceIDToUints(q.TraceID)
		conds = append(conds, fmt.Sprintf("trace_hi = %d AND trace_lo = %d", hi, lo))
	}
	if q.Service != "" {
		conds = append(conds, "service = ?")
		f.args = append(f.args, q.Service)
	}
	for _, t := range q.Terms {
		if t == "" {
			continue
		}
		if s.c.Features.SkipIndexes {
			// LIKE on the indexed expression lets the token bloom filter
			// skip granules; the pattern escapes LIKE's metacharacters.
			conds = append(conds, "lowerUTF8(body) LIKE ?")
			f.args = append(f.args, "%"+likeEscaper.Replace(strings.ToLower(t))+"%")
		} else {
			conds = append(conds, "position(lowerUTF8(body), lowerUTF8(?)) > 0")
			f.args = append(f.args, t)
		}
	}
	for _, c := range q.Contains {
		conds, f.args = s.appendContains(conds, f.args, c)
	}
	if len(q.Severities) > 0 {
		var bands []string
		for _, sev := range q.Severities {
			lo, hi := sev.Range()
			bands = append(bands, fmt.Sprintf("severity_number BETWEEN %d AND %d", lo, hi))
		}
		conds = append(conds, "("+strings.Join(bands, " OR ")+")")
	}
	for k, v := range q.Attributes {
		if k == keyServiceName {
			conds = append(conds, "service = ?")
			f.args = append(f.args, v)
			continue
		}
		c, args, err := attrPrefilter(k, v)
		if err != nil {
			return logFilter{}, err
		}
		conds = append(conds, c)
		f.args = append(f.args, args...)
		if f.attrs == nil {
			f.attrs = map[string]string{}
		}
		f.attrs[k] = v
	}
	start, end := nanosRange(q.Start, q.End)
	if start != minNanos {
		conds = append(conds, fmt.Sprintf("ts_ns >= %d", start))
	}
	if end != maxNanos {
		conds = append(conds, fmt.Sprintf("ts_ns < %d", end))
	}
	f.where = strings.Join(conds, " AND ") + s.dateCond(start, end)
	return f, nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// attrPrefilter narrows rows to those whose own or resource attributes
// contain key k (and v's text, when it stands verbatim in typed JSON); Go
// decides exactly (attrMatches).
func attrPrefilter(k, v string) (string, []any, error) {
	if k == "" {
		return "", nil, fmt.Errorf("%w: empty attribute key", storage.ErrInvalidQuery)
	}
	needle := string(attrenc.AppendString(nil, k)) + ":"
	cond := "(position(attributes, ?) > 0 OR position(resource_attributes, ?) > 0)"
	args := []any{needle, needle}
	if literalInJSON(v) {
		cond = "(" + cond + " AND (position(attributes, ?) > 0 OR position(resource_attributes, ?) > 0))"
		args = append(args, v, v)
	}
	return cond, args, nil
}

// literalInJSON reports whether attrenc writes v, as a string or as the
// text of a number or boolean, without escaping it.
func literalInJSON(v string) bool {
	if v == "" || v[0] == attrenc.Tag {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// attrMatches checks want against decoded attributes: each key's own
// attribute, else the resource's, compared as text.
func attrMatches(want map[string]string, own, res pcommon.Map) bool {
	for k, v := range want {
		a, ok := own.Get(k)
		if !ok {
			a, ok = res.Get(k)
		}
		if !ok || a.AsString() != v {
			return false
		}
	}
	return true
}

// slLog is a found record with its position.
type slLog struct {
	ts    int64
	rowID uint64
	rec   storage.LogRecord
}

func logCursor(l slLog) string {
	return strconv.FormatInt(l.ts, 10) + "." + strconv.FormatUint(l.rowID, 10)
}

func parseLogCursor(c string) (int64, uint64, error) {
	a, b, ok := strings.Cut(c, ".")
	ts, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: malformed cursor %q", storage.ErrInvalidQuery, c)
	}
	return ts, id, nil
}

const logReadColumns = `ts_ns, row_id, time_unset, observed_ns, trace_hi, trace_lo, span_id,
	severity_number, severity_text, service, body, attributes, resource_attributes, resource_dropped, scope_name`

func (s *SpanLogStore) findLogs(ctx context.Context, q storage.LogQuery) ([]storage.LogRecord, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	limit := q.Limit
	var (
		afterCond string
		order     = "ts_ns DESC, row_id DESC"
	)
	if q.Forward {
		order = "ts_ns, row_id"
	}
	if q.After != "" {
		ts, id, err := parseLogCursor(q.After)
		if err != nil {
			return nil, err
		}
		// Narrowing the time range to the cursor's side also narrows the
		// days (partitions) read.
		if q.Forward {
			afterCond = fmt.Sprintf(" AND (ts_ns > %d OR (ts_ns = %d AND row_id > %d))", ts, ts, id)
			if q.Start.IsZero() || q.Start.UnixNano() < ts {
				q.Start = time.Unix(0, ts)
			}
		} else {
			afterCond = fmt.Sprintf(" AND (ts_ns < %d OR (ts_ns = %d AND row_id < %d))", ts, ts, id)
			if ts < maxNanos && (q.End.IsZero() || q.End.UnixNano() > ts+1) {
				q.End = time.Unix(0, ts+1)
			}
		}
	}
	f, err := s.logConditions(q)
	if err != nil {
		return nil, err
	}
	where := f.where + afterCond
	query := "SELECT " + logReadColumns + " FROM " + s.c.Table(logsTable.name) + " WHERE " + where +
		" ORDER BY " + order
	// With attribute filters SQL only narrows down, so the limit is
	// applied while reading; the rest of the stream is abandoned.
	if f.attrs == nil {
		query += " LIMIT " + strconv.Itoa(limit)
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.c.Conn.Query(qctx, query, f.args...)
	if err != nil {
		return nil, classify(ctx, "query logs", err)
	}
	defer rows.Close()
	var out []storage.LogRecord
	for len(out) < limit && rows.Next() {
		var (
			l                        slLog
			unset, sev               uint8
			observed                 int64
			traceHi, traceLo, spanID uint64
			attrs, resAttrs          string
			resDropped               uint32
		)
		if err := rows.Scan(&l.ts, &l.rowID, &unset, &observed, &traceHi, &traceLo, &spanID, &sev,
			&l.rec.SeverityText, &l.rec.Service, &l.rec.Body, &attrs, &resAttrs, &resDropped, &l.rec.ScopeName); err != nil {
			return nil, classify(ctx, "scan log", err)
		}
		own := pcommon.NewMap()
		if err := attrenc.DecodeMap(attrs, own); err != nil {
			return nil, fmt.Errorf("clickhouse: log attributes: %w", err)
		}
		res := pcommon.NewResource()
		if err := restoreResource(l.rec.Service, resAttrs, resDropped, res); err != nil {
			return nil, fmt.Errorf("clickhouse: log resource: %w", err)
		}
		if f.attrs != nil && !attrMatches(f.attrs, own, res.Attributes()) {
			continue
		}
		if unset == 0 {
			l.rec.Timestamp = time.Unix(0, l.ts).UTC()
		}
		if observed != 0 {
			l.rec.ObservedTimestamp = time.Unix(0, observed).UTC()
		}
		l.rec.SeverityNumber = plog.SeverityNumber(sev)
		l.rec.TraceID = attrenc.UintsToTraceID(traceHi, traceLo)
		l.rec.SpanID = attrenc.UintToSpanID(spanID)
		l.rec.Attributes = own.AsRaw()
		l.rec.ResourceAttributes = res.Attributes().AsRaw()
		l.rec.Cursor = logCursor(l)
		out = append(out, l.rec)
	}
	if len(out) < limit {
		if err := rows.Err(); err != nil {
			return nil, classify(ctx, "read logs", err)
		}
	}
	return out, nil
}

// streamKeyExpr is a log row's stream key as SQL. A stream is one
// (service, encoded resource attributes) pair, and its key their
// cityHash64: a pure function of the stored text that ClickHouse keeps
// fixed across versions, so one resource has the same key on every shard
// and in every day partition, and filtering by keys compares one UInt64
// per row instead of the resource's text. Two resources whose hashes
// collide (one chance in 2^64 per pair) share a stream.
const streamKeyExpr = "cityHash64(service, resource_attributes)"

func formatStreamKey(h uint64) string { return fmt.Sprintf("%016x", h) }

// streamKeyList renders keys as a SQL list of UInt64 literals; a key
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
		b.WriteString(strconv.FormatUint(h, 10))
	}
	return b.String(), nil
}

// LogStreams counts the matching records and their body bytes per stream.
// Without attribute filters ClickHouse groups (across shards, through the
// Distributed table); with them it groups by the records' own attributes
// as well, so that Go, which decides those filters (attrMatches), checks
// each distinct attribute set once rather than each record.
func (s *SpanLogStore) LogStreams(ctx context.Context, q storage.LogQuery) ([]storage.LogStream, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	f, err := s.logConditions(q)
	if err != nil {
		return nil, err
	}
	cols, group := "''", "service, resource_attributes"
	if f.attrs != nil {
		cols, group = "attributes", group+", attributes"
	}
	// length counts bytes (lengthUTF8 would count characters).
	rows, err := s.c.Conn.Query(ctx, "SELECT "+streamKeyExpr+", service, resource_attributes, "+cols+", count(), sum(length(body)) FROM "+
		s.c.Table(logsTable.name)+" WHERE "+f.where+" GROUP BY "+group, f.args...)
	if err != nil {
		return nil, classify(ctx, "log streams", err)
	}
	defer rows.Close()
	byKey := map[uint64]*storage.LogStream{}
	for rows.Next() {
		var (
			k, n, bytes              uint64
			service, resAttrs, attrs string
		)
		if err := rows.Scan(&k, &service, &resAttrs, &attrs, &n, &bytes); err != nil {
			return nil, classify(ctx, "log streams", err)
		}
		st := byKey[k]
		if st == nil || f.attrs != nil {
			res := pcommon.NewResource()
			if err := restoreResource(service, resAttrs, 0, res); err != nil {
				return nil, fmt.Errorf("clickhouse: log stream resource: %w", err)
			}
			if f.attrs != nil {
				own := pcommon.NewMap()
				if err := attrenc.DecodeMap(attrs, own); err != nil {
					return nil, fmt.Errorf("clickhouse: log attributes: %w", err)
				}
				if !attrMatches(f.attrs, own, res.Attributes()) {
					continue
				}
			}
			if st == nil {
				st = &storage.LogStream{Key: formatStreamKey(k), Service: service, Resource: res.Attributes().AsRaw()}
				byKey[k] = st
			}
		}
		st.Entries += int64(n)
		st.Bytes += int64(bytes)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "log streams", err)
	}
	out := make([]storage.LogStream, 0, len(byKey))
	for _, st := range byKey {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b storage.LogStream) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// LogHistogram counts matching records per bin and severity band. Bins are
// computed with integer arithmetic (18.16 has no toStartOfInterval on
// nanoseconds), flooring so that bins before 1970 align too.
func (s *SpanLogStore) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, error) {
	if step <= 0 {
		return nil, fmt.Errorf("%w: histogram step must be positive", storage.ErrInvalidQuery)
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	f, err := s.logConditions(q)
	if err != nil {
		return nil, err
	}
	n := step.Nanoseconds()
	bin := fmt.Sprintf("intDiv(ts_ns, %d) - if(ts_ns %% %d < 0, 1, 0)", n, n)
	type key struct {
		bin int64
		sev storage.Severity
	}
	counts := map[key]int64{}
	if f.attrs == nil {
		rows, err := s.c.Conn.Query(ctx, "SELECT "+bin+" AS bin, severity_number, count() FROM "+
			s.c.Table(logsTable.name)+" WHERE "+f.where+" GROUP BY bin, severity_number", f.args...)
		if err != nil {
			return nil, classify(ctx, "log histogram", err)
		}
		defer rows.Close()
		for rows.Next() {
			var b int64
			var sev uint8
			var c uint64
			if err := rows.Scan(&b, &sev, &c); err != nil {
				return nil, classify(ctx, "log histogram", err)
			}
			counts[key{b, storage.SeverityOf(plog.SeverityNumber(sev))}] += int64(c)
		}
		if err := rows.Err(); err != nil {
			return nil, classify(ctx, "log histogram", err)
		}
	} else {
		rows, err := s.c.Conn.Query(ctx, "SELECT "+bin+" AS bin, severity_number, service, attributes, resource_attributes FROM "+
			s.c.Table(logsTable.name)+" WHERE "+f.where, f.args...)
		if err != nil {
			return nil, classify(ctx, "log histogram", err)
		}
		defer rows.Close()
		for rows.Next() {
			var b int64
			var sev uint8
			var service, attrs, resAttrs string
			if err := rows.Scan(&b, &sev, &service, &attrs, &resAttrs); err != nil {
				return nil, classify(ctx, "log histogram", err)
			}
			own, res := pcommon.NewMap(), pcommon.NewResource()
			if err := attrenc.DecodeMap(attrs, own); err != nil {
				return nil, fmt.Errorf("clickhouse: log attributes: %w", err)
			}
			if err := restoreResource(service, resAttrs, 0, res); err != nil {
				return nil, fmt.Errorf("clickhouse: log resource: %w", err)
			}
			if attrMatches(f.attrs, own, res.Attributes()) {
				counts[key{b, storage.SeverityOf(plog.SeverityNumber(sev))}]++
			}
		}
		if err := rows.Err(); err != nil {
			return nil, classify(ctx, "log histogram", err)
		}
	}
	out := make([]storage.LogBucket, 0, len(counts))
	for k, c := range counts {
		out = append(out, storage.LogBucket{Start: time.Unix(0, k.bin*n).UTC(), Severity: k.sev, Count: c})
	}
	slices.SortFunc(out, func(a, b storage.LogBucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Severity, b.Severity))
	})
	return out, nil
}
