package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

var _ storage.DiagnosisReader = (*SpanLogStore)(nil)

// maxMissingSamples is how many missing trace ids ServiceLogTraces carries.
const maxMissingSamples = 5

// peerKeys are the span attributes storage.SpanShape.Peer is made of, in
// the order of the list peerAttrsSQL extracts (DuckDB lists count from 1).
var peerKeys = []string{
	"peer.service",                  // 1
	"server.address", "server.port", // 2, 3
	"net.peer.name", "net.peer.port", // 4, 5
	"net.host.name", "net.host.port", // 6, 7
}

// peerAttrsSQL extracts peerKeys from one parse of the attribute JSON, for
// the kinds that have a peer only. Measured on generated calls, testing
// the JSON for the keys' text first cost twice the parse it meant to save.
var peerAttrsSQL = func() string {
	paths := make([]string, len(peerKeys))
	for i, k := range peerKeys {
		paths[i] = sqlString(`$."` + k + `"`)
	}
	return fmt.Sprintf("CASE WHEN kind BETWEEN %d AND %d AND attributes <> '' THEN json_extract_string(attributes, [%s]) END",
		ptrace.SpanKindServer, ptrace.SpanKindConsumer, strings.Join(paths, ", "))
}()

// peerSQL computes Peer from the list a that peerAttrsSQL made.
var peerSQL = func() string {
	// hp is "host[:port]", NULL without a host; empty values count as unset.
	hp := func(h, p int) string {
		return fmt.Sprintf("CASE WHEN nullif(a[%d], '') IS NOT NULL THEN a[%d] || coalesce(':' || nullif(a[%d], ''), '') END", h, h, p)
	}
	return fmt.Sprintf("CASE WHEN a IS NULL THEN NULL WHEN kind IN (%d, %d) THEN coalesce(nullif(a[1], ''), %s, %s) ELSE coalesce(%s, %s) END",
		ptrace.SpanKindClient, ptrace.SpanKindProducer, hp(2, 3), hp(4, 5), hp(2, 3), hp(6, 7))
}()

// SpanShapes reads the light columns of the range's spans from the days it
// touches, ordered and cut in DuckDB. The attribute JSON is parsed only for
// calls (see peerAttrsSQL), and with a Limit only up to the start time of
// the last span kept.
func (s *SpanLogStore) SpanShapes(ctx context.Context, q storage.SpanShapeQuery) ([]storage.SpanShape, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	start, end := q.Start.UnixNano(), q.End.UnixNano()
	var parts []partition
	for _, p := range s.snapshot() {
		if p.holdsSpans(start, end) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 || start >= end {
		return nil, nil
	}
	union := func(cols string, lo, hi int64) string {
		sub := make([]string, len(parts))
		for i, p := range parts {
			sub[i] = fmt.Sprintf("SELECT %s FROM %s.spans WHERE start_ns >= %d AND start_ns < %d", cols, p.alias, lo, hi)
		}
		return strings.Join(sub, " UNION ALL ")
	}
	limit := ""
	if q.Limit > 0 {
		// The start time of the last span kept, found on one column,
		// narrows the range so that the spans past the limit are not
		// parsed. Spans tied with it may still exceed the limit; the
		// final LIMIT cuts those.
		var last sql.NullInt64
		err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT max(start_ns) FROM (SELECT start_ns FROM (%s) ORDER BY start_ns LIMIT %d)",
			union("start_ns", start, end), q.Limit)).Scan(&last)
		if err != nil {
			return nil, fmt.Errorf("embedded: span shapes: %w", err)
		}
		if !last.Valid {
			return nil, nil
		}
		end = last.Int64 + 1
		limit = fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	const cols = "trace_hi, trace_lo, span_id, parent_span_id, service, name, kind, start_ns, duration_ns"
	query := fmt.Sprintf("SELECT %s, %s FROM (SELECT %s, %s AS a FROM (%s)) ORDER BY start_ns, trace_hi, trace_lo, span_id%s",
		cols, peerSQL, cols, peerAttrsSQL, union(cols+", attributes", start, end), limit)
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("embedded: span shapes: %w", err)
	}
	defer rows.Close()
	var out []storage.SpanShape
	if q.Limit > 0 {
		out = make([]storage.SpanShape, 0, q.Limit)
	}
	// Declared once: Scan's pointers move them to the heap.
	var (
		hi, lo, id, parent uint64
		kind               uint8
		dur                int64
		peer               sql.NullString
		sh                 storage.SpanShape
	)
	for rows.Next() {
		if err := rows.Scan(&hi, &lo, &id, &parent, &sh.Service, &sh.Name, &kind, &sh.Start, &dur, &peer); err != nil {
			return nil, fmt.Errorf("embedded: span shapes: %w", err)
		}
		sh.TraceID = attrenc.UintsToTraceID(hi, lo)
		sh.SpanID = attrenc.UintToSpanID(id)
		sh.ParentSpanID = attrenc.UintToSpanID(parent)
		sh.Kind = ptrace.SpanKind(kind)
		// The duration was stored as end-start in wrapping arithmetic, so
		// the same undoes it, an unset end included.
		sh.End = sh.Start + dur
		sh.Peer = peer.String
		out = append(out, sh)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: span shapes: %w", err)
	}
	return out, nil
}

// LogTraceCoverage anti-joins, in one query, the distinct (service, trace
// id) pairs of the logs of the range with the trace ids of the spans that
// started in the span range, counting per service and keeping the smallest
// missing ids.
func (s *SpanLogStore) LogTraceCoverage(ctx context.Context, q storage.LogTraceQuery) ([]storage.ServiceLogTraces, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	lo, hi := q.Start.UnixNano(), q.End.UnixNano()
	slo, shi := q.SpanStart.UnixNano(), q.SpanEnd.UnixNano()
	var logs, spans []string
	for _, p := range s.snapshot() {
		if p.logMin <= p.logMax && p.logMax >= lo && p.logMin < hi {
			logs = append(logs, fmt.Sprintf(`SELECT service, trace_hi, trace_lo FROM %s
				WHERE ts_ns >= %d AND ts_ns < %d AND (trace_hi <> 0 OR trace_lo <> 0)`, p.logsFrom(), lo, hi))
		}
		if slo < shi && p.holdsSpans(slo, shi) {
			spans = append(spans, fmt.Sprintf("SELECT trace_hi, trace_lo FROM %s.spans WHERE start_ns >= %d AND start_ns < %d",
				p.alias, slo, shi))
		}
	}
	if len(logs) == 0 || lo >= hi {
		return nil, nil
	}
	if len(spans) == 0 {
		spans = []string{"SELECT NULL::UBIGINT AS trace_hi, NULL::UBIGINT AS trace_lo WHERE false"}
	}
	query := fmt.Sprintf(`WITH l AS (SELECT DISTINCT service, trace_hi, trace_lo FROM (%s)),
		s AS (%s),
		m AS (SELECT * FROM l ANTI JOIN s USING (trace_hi, trace_lo))
		SELECT service, ids, coalesce(n, 0), samples FROM (SELECT service, count(*) AS ids FROM l GROUP BY service)
		LEFT JOIN (SELECT service, count(*) AS n, min({'h': trace_hi, 'l': trace_lo}, %d) AS samples FROM m GROUP BY service)
		USING (service) ORDER BY service`,
		strings.Join(logs, " UNION ALL "), strings.Join(spans, " UNION ALL "), maxMissingSamples)
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("embedded: log trace coverage: %w", err)
	}
	defer rows.Close()
	var out []storage.ServiceLogTraces
	for rows.Next() {
		var (
			st      storage.ServiceLogTraces
			samples any
		)
		if err := rows.Scan(&st.Service, &st.TraceIDs, &st.Missing, &samples); err != nil {
			return nil, fmt.Errorf("embedded: log trace coverage: %w", err)
		}
		if st.Samples, err = traceIDList(samples); err != nil {
			return nil, fmt.Errorf("embedded: log trace coverage: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: log trace coverage: %w", err)
	}
	return out, nil
}

// traceIDList converts a scanned LIST of {h, l} structs.
func traceIDList(v any) ([]pcommon.TraceID, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("trace id list: unexpected %T", v)
	}
	out := make([]pcommon.TraceID, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		h, okh := m["h"].(uint64)
		l, okl := m["l"].(uint64)
		if !ok || !okh || !okl {
			return nil, fmt.Errorf("trace id list: unexpected element %#v", e)
		}
		out = append(out, attrenc.UintsToTraceID(h, l))
	}
	return out, nil
}
