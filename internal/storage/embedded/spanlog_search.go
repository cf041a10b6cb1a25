package embedded

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

var _ storage.TraceSearcher = (*SpanLogStore)(nil)

type traceKey struct{ hi, lo uint64 }

// spanRange is where a trace's spans lie in one day file, and at most how
// many spans and bytes it holds there (copies included; -1 when not known).
type spanRange struct {
	alias        string
	min, max     int64
	spans, bytes int64
}

// locateTraces finds in the trace index of every day where the traces'
// spans are: in memory for the days held there (spanlog_traceloc.go), in
// the days' trace_index tables for the rest. The caller holds mu shared.
//
// For the tables, the ids go in as two list parameters joined against the
// index, so the query's text is the same for one trace or thousands: a
// literal per id made its size, and with the summaries' one branch per
// trace DuckDB's expression depth, grow with the search limit.
func (s *SpanLogStore) locateTraces(ctx context.Context, parts []partition, ids []traceKey) (map[traceKey][]spanRange, error) {
	if len(ids) == 0 || len(parts) == 0 {
		return nil, nil
	}
	// Days whose index is in memory answer from it; only the rest are
	// queried.
	out := map[traceKey][]spanRange{}
	cold := parts[:0:0]
	for _, p := range parts {
		if p.locs == nil {
			cold = append(cold, p)
			continue
		}
		held := p.locs.each(ids, func(id traceKey, r traceLoc) {
			out[id] = append(out[id], r.spanRange(p.alias))
		})
		if !held {
			cold = append(cold, p)
		}
	}
	if len(cold) == 0 {
		return out, nil
	}
	parts = cold
	// One id (GetTrace) as constants, a filter DuckDB pushes into the scan:
	// measured a fifth faster than the join.
	filter := fmt.Sprintf("WHERE trace_hi = %d::UBIGINT AND trace_lo = %d::UBIGINT", ids[0].hi, ids[0].lo)
	var lists []any
	if len(ids) > 1 {
		his, los := idLists(ids)
		filter, lists = idJoin, []any{his, los}
	}
	var q strings.Builder
	var args []any
	for i, p := range parts {
		if i > 0 {
			q.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&q, "SELECT %s AS part, trace_hi, trace_lo, min(start_min), max(start_max), %s FROM %s.trace_index %s GROUP BY trace_hi, trace_lo",
			sqlString(p.alias), traceSpansSQL+", "+traceBytesSQL, p.alias, filter)
		args = append(args, lists...)
	}
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: read trace index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r spanRange
		var k traceKey
		if err := rows.Scan(&r.alias, &k.hi, &k.lo, &r.min, &r.max, &r.spans, &r.bytes); err != nil {
			return nil, fmt.Errorf("embedded: read trace index: %w", err)
		}
		out[k] = append(out[k], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: read trace index: %w", err)
	}
	return out, nil
}

// idJoin restricts a table with trace_hi and trace_lo columns to the trace
// ids bound as two UBIGINT list parameters (see idLists).
const idJoin = "SEMI JOIN (SELECT unnest(?::UBIGINT[]) AS id_hi, unnest(?::UBIGINT[]) AS id_lo) ON trace_hi = id_hi AND trace_lo = id_lo"

// idLists splits trace ids into the two list parameters of idJoin.
func idLists(ids []traceKey) (his, los []uint64) {
	his, los = make([]uint64, len(ids)), make([]uint64, len(ids))
	for i, id := range ids {
		his[i], los[i] = id.hi, id.lo
	}
	return his, los
}

var _ storage.TraceIDFinder = (*SpanLogStore)(nil)

// FindTraces finds the traces with a matching span in two steps: the
// matching spans' trace ids, newest first, from the days the time range
// touches (findTraceKeys); then, through the trace index, the light
// columns of every span of those traces to summarise them.
func (s *SpanLogStore) FindTraces(ctx context.Context, q storage.TraceQuery) ([]storage.TraceSummary, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	parts, ids, err := s.findTraceKeys(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.summarize(ctx, parts, ids)
}

// FindTraceIDs is the first step of FindTraces alone: the ids of the
// traces it would summarise, in its order.
func (s *SpanLogStore) FindTraceIDs(ctx context.Context, q storage.TraceQuery) ([]pcommon.TraceID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	_, ids, err := s.findTraceKeys(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]pcommon.TraceID, len(ids))
	for i, id := range ids {
		out[i] = attrenc.UintsToTraceID(id.hi, id.lo)
	}
	return out, nil
}

// findTraceKeys returns the attached days and the ids of the newest
// q.Limit traces with a span matching q, newest first. The caller holds mu
// shared.
func (s *SpanLogStore) findTraceKeys(ctx context.Context, q storage.TraceQuery) ([]partition, []traceKey, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = storage.DefaultTraceLimit
	}
	cond, args, err := spanConditions(q)
	if err != nil {
		return nil, nil, err
	}
	parts := s.snapshot()
	start, end := nanosRange(q.Start, q.End)
	// Files by their newest span, stopping once the traces found are all
	// newer than anything the next file holds: a search over a day usually
	// reads only the latest file or two. By the spans' real range, not the
	// file's day: a file also holds spans dated into later days.
	byNewest := slices.Clone(parts)
	slices.SortStableFunc(byNewest, func(a, b partition) int { return cmp.Compare(b.spanMax, a.spanMax) })
	best := map[traceKey]int64{}
	var ids []traceKey
	for _, p := range byNewest {
		if !p.holdsSpans(start, end) {
			continue
		}
		if len(ids) >= limit && p.spanMax < best[ids[limit-1]] {
			break
		}
		hi := end
		if p.spanMax < end {
			hi = p.spanMax + 1
		}
		if err := s.searchDay(ctx, p, cond, args, max(start, p.spanMin), hi, limit, best); err != nil {
			return nil, nil, err
		}
		ids = ids[:0]
		for k := range best {
			ids = append(ids, k)
		}
		slices.SortFunc(ids, func(a, b traceKey) int {
			return cmp.Or(cmp.Compare(best[b], best[a]), cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo))
		})
		ids = ids[:min(len(ids), limit)]
	}
	return parts, ids, nil
}

// firstSearchWindow is the span time the search of a day file reads
// first, back from its newest span. Each further window is wider by what
// the last one found foretells, from minSearchGrowth to maxSearchGrowth
// times.
const (
	firstSearchWindow = int64(time.Second)
	minSearchGrowth   = 4
	maxSearchGrowth   = 64
)

// searchDay adds to best the newest traces (up to limit) with a span in
// p matching cond and starting in [lo, hi). It reads growing windows of
// span time back from hi, a second first, and stops at the first that,
// with what best holds already, yields limit traces: every trace of p not
// read then has its newest match before the window, so older than all of
// these. The windows are start_ns ranges DuckDB's zonemaps prune row
// groups with, so a search over hours or days of spans, most of whose
// matches are found within its last seconds, no longer scans and groups
// every match of the day. A window grows by the traces it lacks over
// those found (twice that, at least 4 and at most 64 times; 64 when none
// was found), and past a quarter of the range it is the whole range, so
// that rare matches cost a few queries and at most about a third more
// scanning than the one read of the whole range they cost before.
func (s *SpanLogStore) searchDay(ctx context.Context, p partition, cond string, args []any, lo, hi int64, limit int, best map[traceKey]int64) error {
	if lo >= hi {
		return nil
	}
	got := map[traceKey]int64{}
	span := uint64(hi) - uint64(lo) // hi > lo, so the difference fits
	for w, growth := firstSearchWindow, int64(1); ; {
		// Past decades of span time the window is the whole range, and w
		// cannot overflow.
		if w <= math.MaxInt64/growth {
			w *= growth
		} else {
			w = math.MaxInt64
		}
		// A window past a quarter of the range is the whole range: a
		// window just short of it would read most of the range twice.
		from := lo
		if uint64(w) < span/4 {
			from = hi - w
		}
		query := fmt.Sprintf("SELECT trace_hi, trace_lo, max(start_ns) AS t FROM %s.spans WHERE %s AND start_ns >= %d AND start_ns < %d GROUP BY ALL ORDER BY t DESC, trace_hi, trace_lo LIMIT %d",
			p.alias, cond, from, hi, limit)
		clear(got)
		if err := s.collectTraces(ctx, query, args, got); err != nil {
			return err
		}
		// Traces of earlier days count too when newer than the window's
		// start; their times there are already final.
		n := len(got)
		for k, t := range best {
			if _, ok := got[k]; !ok && t >= from {
				n++
			}
		}
		if n >= limit || from == lo {
			break
		}
		growth = maxSearchGrowth
		if n > 0 {
			growth = int64(min(max(2*limit/n, minSearchGrowth), maxSearchGrowth))
		}
	}
	for k, t := range got {
		if old, ok := best[k]; !ok || t > old {
			best[k] = t
		}
	}
	return nil
}

// collectTraces runs a query yielding (trace_hi, trace_lo, t) and keeps
// each trace's latest t in best.
func (s *SpanLogStore) collectTraces(ctx context.Context, query string, args []any, best map[traceKey]int64) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("embedded: search traces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k traceKey
		var t int64
		if err := rows.Scan(&k.hi, &k.lo, &t); err != nil {
			return fmt.Errorf("embedded: search traces: %w", err)
		}
		if old, ok := best[k]; !ok || t > old {
			best[k] = t
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: search traces: %w", err)
	}
	return nil
}

// summarize reads the light columns of every span of the traces and
// returns their summaries in the order of ids.
func (s *SpanLogStore) summarize(ctx context.Context, parts []partition, ids []traceKey) ([]storage.TraceSummary, error) {
	where, err := s.locateTraces(ctx, parts, ids)
	if err != nil {
		return nil, err
	}
	// One branch per day file, whatever the number of traces: the day's
	// traces as list parameters, and the union of their start ranges as
	// constants DuckDB's zonemaps prune row groups with.
	type dayIDs struct {
		ids      []traceKey
		min, max int64
	}
	days := map[string]*dayIDs{}
	var order []string
	for _, id := range ids {
		for _, r := range where[id] {
			d := days[r.alias]
			if d == nil {
				d = &dayIDs{min: r.min, max: r.max}
				days[r.alias] = d
				order = append(order, r.alias)
			}
			d.ids = append(d.ids, id)
			d.min, d.max = min(d.min, r.min), max(d.max, r.max)
		}
	}
	if len(order) == 0 {
		return nil, nil
	}
	var sub []string
	var args []any
	for _, alias := range order {
		d := days[alias]
		sub = append(sub, fmt.Sprintf(`SELECT trace_hi, trace_lo, service, name, parent_span_id, status_code, start_ns, duration_ns, span_id
			FROM %s.spans %s WHERE start_ns BETWEEN %d AND %d`, alias, idJoin, d.min, d.max))
		his, los := idLists(d.ids)
		args = append(args, his, los)
	}
	rows, err := s.db.QueryContext(ctx, strings.Join(sub, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: summarize traces: %w", err)
	}
	defer rows.Close()
	// Copies of a retried write count once, as in GetTrace.
	sums := traceassembly.NewSummarizer()
	for rows.Next() {
		var (
			k traceKey
			r traceassembly.SummaryRow
		)
		if err := rows.Scan(&k.hi, &k.lo, &r.Service, &r.Name, &r.ParentID, &r.StatusCode, &r.Start, &r.Duration, &r.SpanID); err != nil {
			return nil, fmt.Errorf("embedded: summarize traces: %w", err)
		}
		r.TraceID = attrenc.UintsToTraceID(k.hi, k.lo)
		sums.Add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: summarize traces: %w", err)
	}
	tids := make([]pcommon.TraceID, len(ids))
	for i, id := range ids {
		tids[i] = attrenc.UintsToTraceID(id.hi, id.lo)
	}
	// A trace dropped by retention between the two steps has no summary.
	return sums.Summaries(tids), nil
}

// nanosRange converts a query's time range; zero times are unbounded.
func nanosRange(start, end time.Time) (int64, int64) {
	lo, hi := int64(minNanos), int64(maxNanos)
	if !start.IsZero() {
		lo = start.UnixNano()
	}
	if !end.IsZero() {
		hi = end.UnixNano()
	}
	return lo, hi
}

// spanConditions turns a trace query into a WHERE clause on the spans table.
func spanConditions(q storage.TraceQuery) (string, []any, error) {
	if len(q.Tags) > storage.MaxTraceTags {
		return "", nil, fmt.Errorf("%w: %d tags, at most %d can be searched at once", storage.ErrInvalidQuery, len(q.Tags), storage.MaxTraceTags)
	}
	conds := []string{"true"}
	var args []any
	// Service and operation as constants when they can be: DuckDB pushes
	// a constant comparison into the scan, a parameter's it does not.
	for _, c := range []struct{ col, v string }{{"service", q.Service}, {"name", q.Operation}} {
		switch {
		case c.v == "":
		case utf8.ValidString(c.v) && !strings.ContainsRune(c.v, 0):
			conds = append(conds, c.col+" = "+sqlString(c.v))
		default:
			conds = append(conds, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !q.Start.IsZero() {
		conds = append(conds, fmt.Sprintf("start_ns >= %d", q.Start.UnixNano()))
	}
	if !q.End.IsZero() {
		conds = append(conds, fmt.Sprintf("start_ns < %d", q.End.UnixNano()))
	}
	if q.MinDuration > 0 {
		conds = append(conds, fmt.Sprintf("duration_ns >= %d", q.MinDuration.Nanoseconds()))
	}
	if q.MaxDuration > 0 {
		conds = append(conds, fmt.Sprintf("duration_ns <= %d", q.MaxDuration.Nanoseconds()))
	}
	keys := make([]string, 0, len(q.Tags))
	for k := range q.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable query text
	for _, k := range keys {
		c, a, err := spanTagCondition(k, q.Tags[k])
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, c)
		args = append(args, a...)
	}
	return strings.Join(conds, " AND "), args, nil
}

var spanKinds = map[string]ptrace.SpanKind{
	"server": ptrace.SpanKindServer, "client": ptrace.SpanKindClient, "producer": ptrace.SpanKindProducer,
	"consumer": ptrace.SpanKindConsumer, "internal": ptrace.SpanKindInternal,
}

var statusCodes = map[string]ptrace.StatusCode{
	"OK": ptrace.StatusCodeOk, "ERROR": ptrace.StatusCodeError, "UNSET": ptrace.StatusCodeUnset,
}

func spanTagCondition(k, v string) (string, []any, error) {
	switch k {
	case "error":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", nil, fmt.Errorf("%w: tag error=%q: want true or false", storage.ErrInvalidQuery, v)
		}
		if b {
			return "status_code = 2", nil, nil
		}
		return "status_code <> 2", nil, nil
	case "span.kind":
		kind, ok := spanKinds[strings.ToLower(v)]
		if !ok {
			return "", nil, fmt.Errorf("%w: tag span.kind=%q: want server, client, producer, consumer or internal", storage.ErrInvalidQuery, v)
		}
		return fmt.Sprintf("kind = %d", kind), nil, nil
	case "otel.status_code":
		code, ok := statusCodes[strings.ToUpper(v)]
		if !ok {
			return "", nil, fmt.Errorf("%w: tag otel.status_code=%q: want OK, ERROR or UNSET", storage.ErrInvalidQuery, v)
		}
		return fmt.Sprintf("status_code = %d", code), nil, nil
	case keyServiceName:
		return "service = ?", []any{v}, nil
	}
	cond, args, err := ownOrResourceAttr(k, v)
	if err != nil {
		return "", nil, err
	}
	// The HTTP fields kept in columns (extractHTTP) are looked up there.
	col, bit := "", 0
	switch k {
	case keyHTTPMethod:
		col, bit = "http_method", httpMethodStable
	case keyHTTPMethodLegacy:
		col, bit = "http_method", httpMethodLegacy
	case keyHTTPRoute:
		col, bit = "http_route", httpRoute
	case keyHTTPStatus:
		col, bit = "CAST(http_status_code AS VARCHAR)", httpStatusStable
	case keyHTTPStatusLegacy:
		col, bit = "CAST(http_status_code AS VARCHAR)", httpStatusLegacy
	}
	if col != "" {
		cond = fmt.Sprintf("(%s OR (http_keys & %d <> 0 AND %s = ?))", cond, bit, col)
		args = append(args, v)
	}
	return cond, args, nil
}

// ownOrResourceAttr matches rows whose own attribute k, or else their
// resource's, is v as text.
func ownOrResourceAttr(k, v string) (string, []any, error) {
	a, args, err := attrCondition("attributes", k, v)
	if err != nil {
		return "", nil, err
	}
	r, rargs, _ := attrCondition("resource_attributes", k, v)
	return "(" + a + " OR " + r + ")", append(args, rargs...), nil
}

// attrCondition matches a top-level key of a typed-JSON attribute column
// whose value, as text, is v. The cheap substring test on the encoded key
// runs first and skips the JSON parse for most rows.
func attrCondition(col, k, v string) (string, []any, error) {
	if strings.ContainsAny(k, "\"\\") || k == "" {
		return "", nil, fmt.Errorf("%w: attribute key %q: keys with quotes or backslashes cannot be searched", storage.ErrInvalidQuery, k)
	}
	needle := string(appendString(nil, k)) + ":"
	if literalInJSON(v) {
		// The value's text also stands verbatim in the encoded map, so a
		// second substring test skips the JSON parse on rows where the key
		// is common (every span has it) but the value is rare.
		// Without the key test: a needle starting with '"' matches at
		// every quote of every row and measured twice as slow.
		return fmt.Sprintf("(contains(%s, ?) AND json_extract_string(%s, ?) = ?)", col, col),
			[]any{v, `$."` + k + `"`, v}, nil
	}
	return fmt.Sprintf("(contains(%s, ?) AND json_extract_string(%s, ?) = ?)", col, col),
		[]any{needle, `$."` + k + `"`, v}, nil
}

// literalInJSON reports whether appendValue writes v, as a string or as the
// text of a number or boolean, without escaping it.
func literalInJSON(v string) bool {
	if v == "" || v[0] == tag || !utf8.ValidString(v) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Services lists the services of every attached day from the days'
// operation lists.
func (s *SpanLogStore) Services(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	seen := map[string]bool{}
	for _, p := range s.snapshot() {
		for _, k := range p.operations() {
			seen[k.service] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Operations lists the service's operations of every attached day.
func (s *SpanLogStore) Operations(ctx context.Context, service string) ([]storage.Operation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	seen := map[storage.Operation]bool{}
	for _, p := range s.snapshot() {
		for _, k := range p.operations() {
			if k.service == service {
				seen[storage.Operation{Name: k.name, Kind: ptrace.SpanKind(k.kind)}] = true
			}
		}
	}
	out := make([]storage.Operation, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b storage.Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

// traceIDKey converts a pdata trace id.
func traceIDKey(id pcommon.TraceID) traceKey {
	hi, lo := attrenc.TraceIDToUints(id)
	return traceKey{hi, lo}
}
