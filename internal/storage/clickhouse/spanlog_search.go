package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

type slTraceKey struct{ hi, lo uint64 }

func compareTraceKeys(a, b slTraceKey) int {
	return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo))
}

var spanKinds = map[string]ptrace.SpanKind{
	"server": ptrace.SpanKindServer, "client": ptrace.SpanKindClient, "producer": ptrace.SpanKindProducer,
	"consumer": ptrace.SpanKindConsumer, "internal": ptrace.SpanKindInternal,
}

var statusCodes = map[string]ptrace.StatusCode{
	"OK": ptrace.StatusCodeOk, "ERROR": ptrace.StatusCodeError, "UNSET": ptrace.StatusCodeUnset,
}

// spanConditions turns a trace query into a WHERE clause plus the
// attribute tags Go must check exactly on each candidate span.
func (s *SpanLogStore) spanConditions(q storage.TraceQuery) (logFilter, error) {
	if len(q.Tags) > storage.MaxTraceTags {
		return logFilter{}, fmt.Errorf("%w: %d tags, at most %d can be searched at once", storage.ErrInvalidQuery, len(q.Tags), storage.MaxTraceTags)
	}
	conds := []string{"1"}
	var f logFilter
	if q.Service != "" {
		conds = append(conds, "service = ?")
		f.args = append(f.args, q.Service)
	}
	if q.Operation != "" {
		conds = append(conds, "name = ?")
		f.args = append(f.args, q.Operation)
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
	slices.Sort(keys)
	for _, k := range keys {
		v := q.Tags[k]
		switch k {
		case "error":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return logFilter{}, fmt.Errorf("%w: tag error=%q: want true or false", storage.ErrInvalidQuery, v)
			}
			if b {
				conds = append(conds, "status_code = 2")
			} else {
				conds = append(conds, "status_code != 2")
			}
		case "span.kind":
			kind, ok := spanKinds[strings.ToLower(v)]
			if !ok {
				return logFilter{}, fmt.Errorf("%w: tag span.kind=%q: want server, client, producer, consumer or internal", storage.ErrInvalidQuery, v)
			}
			conds = append(conds, fmt.Sprintf("kind = %d", kind))
		case "otel.status_code":
			code, ok := statusCodes[strings.ToUpper(v)]
			if !ok {
				return logFilter{}, fmt.Errorf("%w: tag otel.status_code=%q: want OK, ERROR or UNSET", storage.ErrInvalidQuery, v)
			}
			conds = append(conds, fmt.Sprintf("status_code = %d", code))
		case keyServiceName:
			conds = append(conds, "service = ?")
			f.args = append(f.args, v)
		default:
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
	}
	start, end := nanosRange(q.Start, q.End)
	if start != minNanos {
		conds = append(conds, fmt.Sprintf("start_ns >= %d", start))
	}
	if end != maxNanos {
		conds = append(conds, fmt.Sprintf("start_ns < %d", end))
	}
	f.where = strings.Join(conds, " AND ") + s.dateCond(start, end)
	return f, nil
}

// FindTraces finds the traces with a matching span in two steps: the
// matching spans' trace ids, newest first, then the light columns of every
// span of those traces to summarise them.
func (s *SpanLogStore) FindTraces(ctx context.Context, q storage.TraceQuery) ([]storage.TraceSummary, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	ids, err := s.findTraceKeys(ctx, q)
	if err != nil {
		return nil, err
	}
	sums, err := s.summarize(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]storage.TraceSummary, 0, len(ids))
	for _, k := range ids {
		if sum, ok := sums[k]; ok {
			out = append(out, *sum)
		}
	}
	return out, nil
}

var _ storage.TraceIDFinder = (*SpanLogStore)(nil)

// FindTraceIDs is the first step of FindTraces alone: the ids of the
// traces it would summarise, in its order.
func (s *SpanLogStore) FindTraceIDs(ctx context.Context, q storage.TraceQuery) ([]pcommon.TraceID, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	ids, err := s.findTraceKeys(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]pcommon.TraceID, len(ids))
	for i, k := range ids {
		out[i] = attrenc.UintsToTraceID(k.hi, k.lo)
	}
	return out, nil
}

// findTraceKeys returns the ids of the newest q.Limit traces with a span
// matching q, newest first. The caller holds mu shared.
func (s *SpanLogStore) findTraceKeys(ctx context.Context, q storage.TraceQuery) ([]slTraceKey, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = storage.DefaultTraceLimit
	}
	f, err := s.spanConditions(q)
	if err != nil {
		return nil, err
	}
	best := map[slTraceKey]int64{}
	spans := s.c.Table(spansTable.name)
	if f.attrs == nil {
		rows, err := s.c.Conn.Query(ctx, "SELECT trace_hi, trace_lo, max(start_ns) AS t FROM "+spans+" WHERE "+f.where+
			" GROUP BY trace_hi, trace_lo ORDER BY t DESC, trace_hi, trace_lo LIMIT "+strconv.Itoa(limit), f.args...)
		if err != nil {
			return nil, classify(ctx, "find traces", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k slTraceKey
			var t int64
			if err := rows.Scan(&k.hi, &k.lo, &t); err != nil {
				return nil, classify(ctx, "find traces", err)
			}
			best[k] = t
		}
		if err := rows.Err(); err != nil {
			return nil, classify(ctx, "find traces", err)
		}
	} else {
		// Tags on attributes: SQL narrows down, Go decides on each span.
		rows, err := s.c.Conn.Query(ctx, "SELECT trace_hi, trace_lo, start_ns, service, attributes, resource_attributes FROM "+
			spans+" WHERE "+f.where, f.args...)
		if err != nil {
			return nil, classify(ctx, "find traces", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k slTraceKey
			var t int64
			var service, attrs, resAttrs string
			if err := rows.Scan(&k.hi, &k.lo, &t, &service, &attrs, &resAttrs); err != nil {
				return nil, classify(ctx, "find traces", err)
			}
			if old, ok := best[k]; ok && old >= t {
				continue
			}
			own, res := pcommon.NewMap(), pcommon.NewResource()
			if err := attrenc.DecodeMap(attrs, own); err != nil {
				return nil, fmt.Errorf("clickhouse: span attributes: %w", err)
			}
			if err := restoreResource(service, resAttrs, 0, res); err != nil {
				return nil, fmt.Errorf("clickhouse: span resource: %w", err)
			}
			if attrMatches(f.attrs, own, res.Attributes()) {
				best[k] = t
			}
		}
		if err := rows.Err(); err != nil {
			return nil, classify(ctx, "find traces", err)
		}
	}
	ids := make([]slTraceKey, 0, len(best))
	for k := range best {
		ids = append(ids, k)
	}
	slices.SortFunc(ids, func(a, b slTraceKey) int {
		return cmp.Or(cmp.Compare(best[b], best[a]), compareTraceKeys(a, b))
	})
	return ids[:min(limit, len(ids))], nil
}

// summarize reads the light columns of every span of the traces, within
// the days and start range the trace index gives for them.
func (s *SpanLogStore) summarize(ctx context.Context, ids []slTraceKey) (map[slTraceKey]*storage.TraceSummary, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// The ids travel as external data, a temporary table sent with the
	// query (and on to every shard of a cluster), so the query's text is the
	// same for one trace or the API's largest limit.
	found, err := traceIDTable(ids)
	if err != nil {
		return nil, err
	}
	in := "(trace_hi, trace_lo) IN " + found.Name()
	ctx = clickhouse.Context(ctx, clickhouse.WithExternalTable(found))
	var days []string
	var lo, hi int64 = maxNanos, minNanos
	rows, err := s.c.Conn.Query(ctx, "SELECT toUInt32(date), min(start_min), max(start_max) FROM "+
		s.c.Table(traceIndexTable.name)+" WHERE "+in+" GROUP BY date")
	if err != nil {
		return nil, classify(ctx, "read trace index", err)
	}
	for rows.Next() {
		var day uint32
		var mn, mx int64
		if err := rows.Scan(&day, &mn, &mx); err != nil {
			rows.Close()
			return nil, classify(ctx, "read trace index", err)
		}
		days = append(days, dateLiteral(int64(day)))
		lo, hi = min(lo, mn), max(hi, mx)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "read trace index", err)
	}
	if len(days) == 0 {
		return nil, nil
	}
	rows, err = s.c.Conn.Query(ctx, fmt.Sprintf(
		"SELECT trace_hi, trace_lo, start_ns, duration_ns, service, name, status_code, parent_span_id, span_id FROM %s WHERE date IN (%s) AND start_ns BETWEEN %d AND %d AND %s",
		s.c.Table(spansTable.name), strings.Join(days, ","), lo, hi, in))
	if err != nil {
		return nil, classify(ctx, "summarize traces", err)
	}
	defer rows.Close()
	// Copies of a retried write count once, as in GetTrace.
	sums := traceassembly.NewSummarizer()
	for rows.Next() {
		var (
			hi, lo uint64
			r      traceassembly.SummaryRow
		)
		if err := rows.Scan(&hi, &lo, &r.Start, &r.Duration, &r.Service, &r.Name, &r.StatusCode, &r.ParentID, &r.SpanID); err != nil {
			return nil, classify(ctx, "summarize traces", err)
		}
		r.TraceID = attrenc.UintsToTraceID(hi, lo)
		sums.Add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "summarize traces", err)
	}
	tids := make([]pcommon.TraceID, len(ids))
	for i, k := range ids {
		tids[i] = attrenc.UintsToTraceID(k.hi, k.lo)
	}
	out := make(map[slTraceKey]*storage.TraceSummary, len(ids))
	for _, sum := range sums.Summaries(tids) {
		hi, lo := attrenc.TraceIDToUints(sum.TraceID)
		out[slTraceKey{hi: hi, lo: lo}] = &sum
	}
	return out, nil
}

// traceIDTable is external data holding trace ids, for "(trace_hi,
// trace_lo) IN found_traces".
func traceIDTable(ids []slTraceKey) (*ext.Table, error) {
	t, err := ext.NewTable("found_traces", ext.Column("hi", "UInt64"), ext.Column("lo", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: trace id table: %w", err)
	}
	for _, k := range ids {
		if err := t.Append(k.hi, k.lo); err != nil {
			return nil, fmt.Errorf("clickhouse: trace id table: %w", err)
		}
	}
	return t, nil
}

// Services lists every service with stored spans.
func (s *SpanLogStore) Services(ctx context.Context) ([]string, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rows, err := s.c.Conn.Query(ctx, "SELECT DISTINCT service FROM "+s.c.Table(spansTable.name))
	if err != nil {
		return nil, classify(ctx, "list services", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var svc string
		if err := rows.Scan(&svc); err != nil {
			return nil, classify(ctx, "list services", err)
		}
		out = append(out, svc)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "list services", err)
	}
	slices.Sort(out)
	return out, nil
}

// Operations lists the service's span names and kinds.
func (s *SpanLogStore) Operations(ctx context.Context, service string) ([]storage.Operation, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rows, err := s.c.Conn.Query(ctx, "SELECT DISTINCT name, kind FROM "+s.c.Table(spansTable.name)+" WHERE service = ?", service)
	if err != nil {
		return nil, classify(ctx, "list operations", err)
	}
	defer rows.Close()
	var out []storage.Operation
	for rows.Next() {
		var name string
		var kind uint8
		if err := rows.Scan(&name, &kind); err != nil {
			return nil, classify(ctx, "list operations", err)
		}
		out = append(out, storage.Operation{Name: name, Kind: ptrace.SpanKind(kind)})
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "list operations", err)
	}
	slices.SortFunc(out, func(a, b storage.Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

// RED counts calls and errors in SQL and collects durations per group and
// bin; quantiles are interpolated in Go, as every backend does, because
// 18.16's quantile functions do not interpolate between ranks.
func (s *SpanLogStore) RED(ctx context.Context, q storage.REDQuery) ([]storage.REDRow, error) {
	if !q.Start.Before(q.End) {
		return nil, fmt.Errorf("%w: RED needs Start before End", storage.ErrInvalidQuery)
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	start, end := q.Start.UnixNano(), q.End.UnixNano()
	where := fmt.Sprintf("start_ns >= %d AND start_ns < %d", start, end) + s.dateCond(start, end)
	var args []any
	if q.Service != "" {
		where += " AND service = ?"
		args = append(args, q.Service)
	}
	bin := "toInt64(0)"
	if q.Step > 0 {
		bin = fmt.Sprintf("toInt64(intDiv(start_ns - %d, %d))", start, q.Step.Nanoseconds())
	}
	rows, err := s.c.Conn.Query(ctx, "SELECT service, name, kind, "+bin+" AS bin, count(), countIf(status_code = 2), min(start_ns), groupArray(duration_ns) FROM "+
		s.c.Table(spansTable.name)+" WHERE "+where+" GROUP BY service, name, kind, bin", args...)
	if err != nil {
		return nil, classify(ctx, "red", err)
	}
	defer rows.Close()
	type groupKey struct {
		service, op string
		kind        ptrace.SpanKind
		entry       bool
	}
	type binAcc struct {
		calls, errors int64
		durs          []int64
	}
	type group struct {
		calls, errors int64
		first         int64
		durs          []int64
		bins          map[int64]*binAcc
	}
	groups := map[groupKey]*group{}
	for rows.Next() {
		var (
			service, name string
			kind          uint8
			b             int64
			calls, errs   uint64
			first         int64
			durs          []int64
		)
		if err := rows.Scan(&service, &name, &kind, &b, &calls, &errs, &first, &durs); err != nil {
			return nil, classify(ctx, "red", err)
		}
		k := groupKey{service: service}
		if q.Service != "" {
			k.op, k.kind = name, ptrace.SpanKind(kind)
		} else {
			k.entry = kind == uint8(ptrace.SpanKindServer) || kind == uint8(ptrace.SpanKindConsumer)
		}
		g := groups[k]
		if g == nil {
			g = &group{bins: map[int64]*binAcc{}}
			groups[k] = g
		}
		if g.calls == 0 || first < g.first {
			g.first = first
		}
		g.calls += int64(calls)
		g.errors += int64(errs)
		g.durs = append(g.durs, durs...)
		if q.Step > 0 {
			ba := g.bins[b]
			if ba == nil {
				ba = &binAcc{}
				g.bins[b] = ba
			}
			ba.calls += int64(calls)
			ba.errors += int64(errs)
			ba.durs = append(ba.durs, durs...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "red", err)
	}
	var out []storage.REDRow
	for k, g := range groups {
		if q.Service == "" && !k.entry {
			if _, ok := groups[groupKey{service: k.service, entry: true}]; ok {
				continue // the service has requests; its other spans do not count
			}
		}
		row := storage.REDRow{Service: k.service, Operation: k.op, Kind: k.kind, Calls: g.calls, Errors: g.errors, First: time.Unix(0, g.first)}
		row.P50, row.P95, row.P99 = storage.DurationQuantile(g.durs, 0.5), storage.DurationQuantile(g.durs, 0.95), storage.DurationQuantile(g.durs, 0.99)
		for b, ba := range g.bins {
			row.Bins = append(row.Bins, storage.REDBin{
				Start: q.Start.Add(time.Duration(b) * q.Step),
				Calls: ba.calls, Errors: ba.errors, P99: storage.DurationQuantile(ba.durs, 0.99),
			})
		}
		slices.SortFunc(row.Bins, func(a, b storage.REDBin) int { return a.Start.Compare(b.Start) })
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b storage.REDRow) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

// LogTraceStats counts records per service, and those with a trace id.
func (s *SpanLogStore) LogTraceStats(ctx context.Context, start, end time.Time) ([]storage.ServiceLogs, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := nanosRange(start, end)
	rows, err := s.c.Conn.Query(ctx, fmt.Sprintf(
		"SELECT service, count(), countIf(NOT (trace_hi = 0 AND trace_lo = 0)) FROM %s WHERE ts_ns >= %d AND ts_ns < %d%s GROUP BY service ORDER BY service",
		s.c.Table(logsTable.name), lo, hi, s.dateCond(lo, hi)))
	if err != nil {
		return nil, classify(ctx, "log stats", err)
	}
	defer rows.Close()
	var out []storage.ServiceLogs
	for rows.Next() {
		var sl storage.ServiceLogs
		var total, with uint64
		if err := rows.Scan(&sl.Service, &total, &with); err != nil {
			return nil, classify(ctx, "log stats", err)
		}
		sl.Total, sl.WithTrace = int64(total), int64(with)
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "log stats", err)
	}
	return out, nil
}

// SpanShapes reads the spans that started in the range, oldest first (ties
// by trace and span id), with the attributes only of the kinds that have a
// peer.
func (s *SpanLogStore) SpanShapes(ctx context.Context, q storage.SpanShapeQuery) ([]storage.SpanShape, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := nanosRange(q.Start, q.End)
	query := fmt.Sprintf(`SELECT trace_hi, trace_lo, span_id, parent_span_id, service, name, kind, start_ns, duration_ns,
		if(kind IN (2, 3, 4, 5), attributes, '') FROM %s WHERE start_ns >= %d AND start_ns < %d%s
		ORDER BY start_ns, trace_hi, trace_lo, span_id`, s.c.Table(spansTable.name), lo, hi, s.dateCond(lo, hi))
	if q.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(q.Limit)
	}
	rows, err := s.c.Conn.Query(ctx, query)
	if err != nil {
		return nil, classify(ctx, "span shapes", err)
	}
	defer rows.Close()
	var out []storage.SpanShape
	for rows.Next() {
		var (
			th, tl, sid, pid uint64
			sh               storage.SpanShape
			kind             uint8
			dur              int64
			attrs            string
		)
		if err := rows.Scan(&th, &tl, &sid, &pid, &sh.Service, &sh.Name, &kind, &sh.Start, &dur, &attrs); err != nil {
			return nil, classify(ctx, "span shapes", err)
		}
		sh.TraceID, sh.SpanID, sh.ParentSpanID = attrenc.UintsToTraceID(th, tl), attrenc.UintToSpanID(sid), attrenc.UintToSpanID(pid)
		sh.Kind = ptrace.SpanKind(kind)
		sh.End = sh.Start + dur
		if attrs != "" {
			m := pcommon.NewMap()
			if err := attrenc.DecodeMap(attrs, m); err != nil {
				return nil, fmt.Errorf("clickhouse: span attributes: %w", err)
			}
			sh.Peer = storage.SpanPeer(sh.Kind, m)
		}
		out = append(out, sh)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "span shapes", err)
	}
	return out, nil
}

// maxMissingSamples is how many missing trace ids ServiceLogTraces carries.
const maxMissingSamples = 5

// LogTraceCoverage finds the distinct (service, trace id) pairs of the
// logs and whether a span of each trace started in the span window, in one
// query; GLOBAL IN sends the window's trace ids to every shard.
func (s *SpanLogStore) LogTraceCoverage(ctx context.Context, q storage.LogTraceQuery) ([]storage.ServiceLogTraces, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := nanosRange(q.Start, q.End)
	slo, shi := nanosRange(q.SpanStart, q.SpanEnd)
	query := fmt.Sprintf(`SELECT service, trace_hi, trace_lo,
		(trace_hi, trace_lo) GLOBAL IN (SELECT trace_hi, trace_lo FROM %s WHERE start_ns >= %d AND start_ns < %d%s)
		FROM (SELECT DISTINCT service, trace_hi, trace_lo FROM %s
			WHERE ts_ns >= %d AND ts_ns < %d%s AND NOT (trace_hi = 0 AND trace_lo = 0))`,
		s.c.Table(spansTable.name), slo, shi, s.dateCond(slo, shi),
		s.c.Table(logsTable.name), lo, hi, s.dateCond(lo, hi))
	rows, err := s.c.Conn.Query(ctx, query)
	if err != nil {
		return nil, classify(ctx, "log trace coverage", err)
	}
	defer rows.Close()
	type acc struct {
		ids     map[slTraceKey]bool
		missing []slTraceKey
	}
	by := map[string]*acc{}
	for rows.Next() {
		var service string
		var k slTraceKey
		var present uint8
		if err := rows.Scan(&service, &k.hi, &k.lo, &present); err != nil {
			return nil, classify(ctx, "log trace coverage", err)
		}
		a := by[service]
		if a == nil {
			a = &acc{ids: map[slTraceKey]bool{}}
			by[service] = a
		}
		if a.ids[k] {
			continue // the same pair from two shards
		}
		a.ids[k] = true
		if present == 0 {
			a.missing = append(a.missing, k)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "log trace coverage", err)
	}
	out := make([]storage.ServiceLogTraces, 0, len(by))
	for svc, a := range by {
		st := storage.ServiceLogTraces{Service: svc, TraceIDs: int64(len(a.ids)), Missing: int64(len(a.missing))}
		slices.SortFunc(a.missing, compareTraceKeys)
		for _, k := range a.missing[:min(len(a.missing), maxMissingSamples)] {
			st.Samples = append(st.Samples, attrenc.UintsToTraceID(k.hi, k.lo))
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b storage.ServiceLogTraces) int { return cmp.Compare(a.Service, b.Service) })
	return out, nil
}
