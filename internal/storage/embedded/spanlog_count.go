package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

var _ storage.LogCounter = (*SpanLogStore)(nil)

// CountLogs counts records in SQL, one GROUP BY per day file that can
// hold records in (q.Start, q.End], so that a Loki metric query reads
// counts instead of every line. The day files' groups are merged by key.
func (s *SpanLogStore) CountLogs(ctx context.Context, q storage.LogCountQuery) ([]storage.LogCount, error) {
	if q.Step <= 0 {
		return nil, fmt.Errorf("%w: count step must be positive", storage.ErrInvalidQuery)
	}
	in, err := streamKeyList(q.Streams)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	if len(q.Streams) == 0 {
		return nil, nil
	}
	start, end := q.Start.UnixNano(), q.End.UnixNano()
	if end <= start {
		return nil, nil
	}
	cols, where, args := countSQL(q, in)
	// The summary (spanlog_logcounts.go) counts streams by second and
	// severity band: it answers for the whole seconds of the range when
	// the query asks for nothing else and its bins are whole seconds.
	var sp countSplit
	origin, step := q.Origin.UnixNano(), q.Step.Nanoseconds()
	if len(q.Contains) == 0 && len(q.NotContains) == 0 && len(q.Attributes) == 0 && origin%countSecond == 0 && step%countSecond == 0 {
		sp = splitCountRange(start, end, false)
	}
	edge := func(lo, hi int64) (string, string) {
		eq := q
		eq.Start, eq.End = time.Unix(0, lo), time.Unix(0, hi)
		_, w, _ := countSQL(eq, in)
		return cols, w
	}
	m := newCountMerger()
	// A file whose records all lie in the range and in one bin, with no
	// filter: its totals in memory.
	plain := len(q.Contains) == 0 && len(q.NotContains) == 0 && len(q.Attributes) == 0
	binOf := func(ts int64) int64 { return floorDiv(ts-origin-1, step) }
	wanted := map[uint64]bool{}
	for _, k := range q.Streams {
		h, _ := strconv.ParseUint(k, 16, 64) // checked by streamKeyList
		wanted[h] = true
	}
	var sub []string
	var allArgs []any
	fromTotals := false
	for _, p := range s.snapshot() {
		if p.logMin > p.logMax || p.logMax <= start || p.logMin > end {
			continue
		}
		if plain {
			var bin int64
			totals, ok, err := s.logTotalsWithin(ctx, p.day, func(lo, hi int64) bool {
				bin = binOf(lo)
				return lo > start && hi <= end && binOf(hi) == bin
			})
			if err != nil {
				return nil, err
			}
			if ok {
				fromTotals = true
				for _, t := range totals {
					if wanted[t.hash] {
						if err := m.add(formatStreamKey(t.hash), bin, storage.Severity(t.band), t.sevText, nil, t.n, t.bytes); err != nil {
							return nil, fmt.Errorf("embedded: count logs: %w", err)
						}
					}
				}
				continue
			}
		}
		if !sp.whole {
			sub = append(sub, "SELECT "+cols+" FROM "+p.logsFrom()+" WHERE "+where+" GROUP BY ALL")
			allArgs = append(allArgs, args...)
			continue
		}
		originSec, stepSec := floorDiv(origin, countSecond), step/countSecond
		bin := fmt.Sprintf("(sec - 1 - %d) // %d - CASE WHEN (sec - 1 - %d) %% %d < 0 THEN 1 ELSE 0 END", originSec, stepSec, originSec, stepSec)
		sub = append(sub, fmt.Sprintf("SELECT %s, %s, band, severity_text, sum(n)::BIGINT, sum(bytes)::BIGINT FROM %s.log_counts WHERE %s IN (%s) AND sec >= %d AND sec <= %d GROUP BY ALL",
			streamKeyExpr, bin, p.alias, streamKeyExpr, in, sp.secLo, sp.secHi))
		// The edges, (start, edgeLo] and (edgeHi, end], where the file
		// holds records there (no arguments: the query has no terms).
		if sp.edgeLo > start && p.logMin <= sp.edgeLo && p.logMax > start {
			c, w := edge(start, sp.edgeLo)
			sub = append(sub, "SELECT "+c+" FROM "+p.logsFrom()+" WHERE "+w+" GROUP BY ALL")
		}
		if end > sp.edgeHi && p.logMax > sp.edgeHi && p.logMin <= end {
			c, w := edge(sp.edgeHi, end)
			sub = append(sub, "SELECT "+c+" FROM "+p.logsFrom()+" WHERE "+w+" GROUP BY ALL")
		}
	}
	if len(sub) == 0 {
		if !fromTotals {
			return nil, nil
		}
		return m.result(), nil
	}
	rows, err := s.db.QueryContext(ctx, strings.Join(sub, " UNION ALL "), allArgs...)
	if err != nil {
		return nil, fmt.Errorf("embedded: count logs: %w", err)
	}
	defer rows.Close()
	raw := make([]sql.NullString, len(q.Attributes))
	dest := make([]any, 0, 6+len(raw))
	var (
		k         uint64
		bin, n, b int64
		band      uint8
		text      string
	)
	dest = append(dest, &k, &bin, &band, &text, &n, &b)
	for i := range raw {
		dest = append(dest, &raw[i])
	}
	keys := map[uint64]string{} // formatted once per stream, not per group
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("embedded: count logs: %w", err)
		}
		key, ok := keys[k]
		if !ok {
			key = formatStreamKey(k)
			keys[k] = key
		}
		if err := m.add(key, bin, storage.Severity(band), text, raw, n, b); err != nil {
			return nil, fmt.Errorf("embedded: count logs: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: count logs: %w", err)
	}
	return m.result(), nil
}

// countSQL returns the select list and WHERE clause of one day file's
// count query, and the WHERE clause's arguments. streams is q.Streams as
// streamKeyList renders them.
func countSQL(q storage.LogCountQuery, streams string) (cols, where string, args []any) {
	origin, step := q.Origin.UnixNano(), q.Step.Nanoseconds()
	// Bins are closed at their end, so a record on an edge belongs to the
	// earlier bin: hence the -1. Floor division keeps a record before
	// Origin out of bin 0 (DuckDB's // truncates toward zero).
	binExpr := fmt.Sprintf("(ts_ns - %d - 1) // %d - CASE WHEN (ts_ns - %d - 1) %% %d < 0 THEN 1 ELSE 0 END", origin, step, origin, step)
	sel := []string{
		streamKeyExpr,
		binExpr,
		// Widened first: UTINYINT arithmetic would overflow near 255.
		"CASE WHEN severity_number BETWEEN 1 AND 24 THEN (severity_number::INTEGER + 3) // 4 ELSE 0 END::UTINYINT",
		"CASE WHEN severity_number BETWEEN 1 AND 24 THEN '' ELSE severity_text END",
		"count(*)",
		// strlen counts bytes (length would count characters), as
		// LogStreams does.
		"sum(strlen(body))::BIGINT",
	}
	for _, a := range q.Attributes {
		// A row whose text lacks the key as attrenc writes it lacks the
		// key, and is not parsed; that includes an empty map, stored as
		// "", which is not JSON. NULL stands for a record without the
		// key, as json_extract gives for one whose map lacks it. The
		// path is a literal so that GROUP BY ALL sees one expression per
		// attribute. ::VARCHAR keeps the JSON text: the driver would
		// decode a JSON column into Go values.
		needle := string(attrenc.AppendString(nil, a)) + ":"
		sel = append(sel, "CASE WHEN NOT contains(attributes, "+sqlString(needle)+") THEN NULL ELSE json_extract(attributes, "+sqlString(jsonPointer(a))+")::VARCHAR END")
	}
	conds := []string{
		streamKeyExpr + " IN (" + streams + ")",
		fmt.Sprintf("ts_ns > %d AND ts_ns <= %d", q.Start.UnixNano(), q.End.UnixNano()),
	}
	for _, c := range q.Contains {
		// contains() matches literally and case-sensitively, unlike LIKE
		// with its % and _.
		conds = append(conds, "contains(body, ?)")
		args = append(args, c)
	}
	for _, c := range q.NotContains {
		conds = append(conds, "NOT contains(body, ?)")
		args = append(args, c)
	}
	return strings.Join(sel, ", "), strings.Join(conds, " AND "), args
}

// jsonPointer is the RFC 6901 pointer to the top-level key k: DuckDB's
// $."k" paths have no way to escape a quote in k, pointers escape only ~
// and /, and a dot in k is just a character.
func jsonPointer(k string) string {
	return "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}

// countMerger sums the groups of several day files by their key, and turns
// the JSON the database extracted into exactly what attrenc writes.
type countMerger struct {
	counts map[countKey]*storage.LogCount
	// canon caches canonical values by the database's text; a query has
	// few distinct values and many groups.
	canon map[string]string
	buf   []byte
}

type countKey struct {
	stream  string
	bin     int64
	sev     storage.Severity
	sevText string
	attrs   string // the values joined by NUL, which typed JSON escapes
}

func newCountMerger() *countMerger {
	return &countMerger{counts: map[countKey]*storage.LogCount{}, canon: map[string]string{}}
}

func (m *countMerger) add(stream string, bin int64, sev storage.Severity, sevText string, raw []sql.NullString, n, bytes int64) error {
	m.buf = m.buf[:0]
	for i, r := range raw {
		if i > 0 {
			m.buf = append(m.buf, 0)
		}
		if !r.Valid {
			continue
		}
		c, err := m.canonical(r.String)
		if err != nil {
			return err
		}
		m.buf = append(m.buf, c...)
	}
	k := countKey{stream: stream, bin: bin, sev: sev, sevText: sevText, attrs: string(m.buf)}
	c := m.counts[k]
	if c == nil {
		c = &storage.LogCount{Stream: stream, Bin: bin, Severity: sev, SeverityText: sevText}
		if len(raw) > 0 {
			c.Attributes = strings.Split(k.attrs, "\x00")
		}
		m.counts[k] = c
	}
	c.Entries += n
	c.Bytes += bytes
	return nil
}

// canonical re-encodes a value as attrenc would. The database re-serialises
// what it extracts (escapes, number formatting are its own), so its text
// is decoded and encoded again rather than trusted byte for byte.
func (m *countMerger) canonical(s string) (string, error) {
	if c, ok := m.canon[s]; ok {
		return c, nil
	}
	v := pcommon.NewValueEmpty()
	if err := attrenc.DecodeValue(s, v); err != nil {
		return "", fmt.Errorf("attribute value %q: %w", s, err)
	}
	c := string(attrenc.AppendValue(nil, v))
	m.canon[s] = c
	return c, nil
}

func (m *countMerger) result() []storage.LogCount {
	out := make([]storage.LogCount, 0, len(m.counts))
	for _, c := range m.counts {
		out = append(out, *c)
	}
	return out
}
