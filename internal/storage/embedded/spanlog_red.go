package embedded

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

var _ storage.REDReader = (*SpanLogStore)(nil)

// RED aggregates the spans of the range in SQL: totals and, with a Step,
// per-bin figures as two grouping sets of one scan. Per service it reads
// the request spans first and all spans only of the services without any. Measured
// on 10 million spans it answers for 50 services in milliseconds for an
// hour and well under a second for a day (docs/performance.md), far below
// what PromQL over the recorded span series costs for long ranges.
func (s *SpanLogStore) RED(ctx context.Context, q storage.REDQuery) ([]storage.REDRow, error) {
	if !q.Start.Before(q.End) {
		return nil, fmt.Errorf("%w: RED needs Start before End", storage.ErrInvalidQuery)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	if q.Service != "" {
		return s.red(ctx, q, "service = ?", []any{q.Service})
	}
	// Requests first: server and consumer spans, a fraction of all spans.
	out, err := s.red(ctx, q, "kind IN (2, 5)", nil)
	if err != nil {
		return nil, err
	}
	// Then every span of the services that had no request in the range.
	seen := map[string]bool{}
	for _, r := range out {
		seen[r.Service] = true
	}
	var rest []string
	for _, p := range s.snapshot() {
		for _, k := range p.operations() {
			if !seen[k.service] {
				seen[k.service] = true
				rest = append(rest, k.service)
			}
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	more, err := s.red(ctx, q, "list_contains(?, service)", []any{rest})
	if err != nil {
		return nil, err
	}
	out = append(out, more...)
	slices.SortFunc(out, func(a, b storage.REDRow) int { return cmp.Compare(a.Service, b.Service) })
	return out, nil
}

// red runs the aggregation over the spans of q's range that cond selects;
// rows are per service, or per operation when q.Service is set. The caller
// holds mu shared.
func (s *SpanLogStore) red(ctx context.Context, q storage.REDQuery, cond string, condArgs []any) ([]storage.REDRow, error) {
	start, end := q.Start.UnixNano(), q.End.UnixNano()
	var sub []string
	var args []any
	for _, p := range s.snapshot() {
		if !p.holdsSpans(start, end) {
			continue
		}
		sub = append(sub, fmt.Sprintf("SELECT service, name, kind, status_code, duration_ns, start_ns FROM %s.spans WHERE start_ns >= %d AND start_ns < %d AND %s",
			p.alias, start, end, cond))
		args = append(args, condArgs...)
	}
	if len(sub) == 0 {
		return nil, nil
	}
	k1, k2 := "service", "0::UTINYINT"
	if q.Service != "" {
		k1, k2 = "name", "kind"
	}
	bin, groups := "NULL::BIGINT", "GROUP BY k1, k2, bin"
	if q.Step > 0 {
		bin = fmt.Sprintf("(start_ns - %d) // %d", start, q.Step.Nanoseconds())
		groups = "GROUP BY GROUPING SETS ((k1, k2), (k1, k2, bin))"
	}
	query := fmt.Sprintf(`SELECT k1, k2, bin, calls, errs, first, q[1], q[2], q[3] FROM (
		SELECT k1, k2, bin, count(*) AS calls, count(*) FILTER (WHERE status_code = 2) AS errs, min(start_ns) AS first,
			quantile_cont(duration_ns, [0.5, 0.95, 0.99]) AS q
		FROM (SELECT %s AS k1, %s AS k2, %s AS bin, status_code, duration_ns, start_ns FROM (%s))
		%s)`, k1, k2, bin, strings.Join(sub, " UNION ALL "), groups)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("embedded: RED: %w", err)
	}
	defer rows.Close()
	type key struct {
		k1 string
		k2 uint8
	}
	byKey := map[key]*storage.REDRow{}
	for rows.Next() {
		var (
			k            key
			b            sql.NullInt64
			calls, errs  int64
			first        int64
			p50, p95, p9 float64
		)
		if err := rows.Scan(&k.k1, &k.k2, &b, &calls, &errs, &first, &p50, &p95, &p9); err != nil {
			return nil, fmt.Errorf("embedded: RED: %w", err)
		}
		r := byKey[k]
		if r == nil {
			r = &storage.REDRow{Service: k.k1}
			if q.Service != "" {
				r.Service, r.Operation, r.Kind = q.Service, k.k1, ptrace.SpanKind(k.k2)
			}
			byKey[k] = r
		}
		if b.Valid {
			r.Bins = append(r.Bins, storage.REDBin{
				Start: q.Start.Add(time.Duration(b.Int64) * q.Step), Calls: calls, Errors: errs, P99: nanos(p9),
			})
			continue
		}
		r.Calls, r.Errors, r.P50, r.P95, r.P99 = calls, errs, nanos(p50), nanos(p95), nanos(p9)
		r.First = time.Unix(0, first)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: RED: %w", err)
	}
	out := make([]storage.REDRow, 0, len(byKey))
	for _, r := range byKey {
		slices.SortFunc(r.Bins, func(a, b storage.REDBin) int { return a.Start.Compare(b.Start) })
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b storage.REDRow) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

func nanos(f float64) time.Duration { return time.Duration(math.Round(f)) }

// LogTraceStats counts per service in SQL over the day files the range
// touches.
func (s *SpanLogStore) LogTraceStats(ctx context.Context, start, end time.Time) ([]storage.ServiceLogs, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	lo, hi := start.UnixNano(), end.UnixNano()
	var sub []string
	for _, p := range s.snapshot() {
		if p.logMin > p.logMax || p.logMax < lo || p.logMin >= hi {
			continue
		}
		sub = append(sub, fmt.Sprintf(`SELECT service, count(*) AS n, count(*) FILTER (WHERE trace_hi <> 0 OR trace_lo <> 0) AS t
			FROM %s WHERE ts_ns >= %d AND ts_ns < %d GROUP BY service`, p.logsFrom(), lo, hi))
	}
	if len(sub) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, "SELECT service, sum(n)::BIGINT, sum(t)::BIGINT FROM ("+strings.Join(sub, " UNION ALL ")+") GROUP BY service ORDER BY service")
	if err != nil {
		return nil, fmt.Errorf("embedded: log trace stats: %w", err)
	}
	defer rows.Close()
	var out []storage.ServiceLogs
	for rows.Next() {
		var sl storage.ServiceLogs
		if err := rows.Scan(&sl.Service, &sl.Total, &sl.WithTrace); err != nil {
			return nil, fmt.Errorf("embedded: log trace stats: %w", err)
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: log trace stats: %w", err)
	}
	return out, nil
}
