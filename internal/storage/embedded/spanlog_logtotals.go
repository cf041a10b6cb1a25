package embedded

import (
	"context"
	"fmt"
	"strings"
)

// logTotals is a day file's count summary summed over all its seconds, in
// memory: records and body bytes per stream and severity band. A count or
// a stream list whose range holds a whole day file (its known log time
// range), in one bin, reads it instead of running SQL: Loki's "count of
// all records" is then a few map reads. It is loaded from the summary
// when the file is attached and added to after each commit, under
// SpanLogStore.pmu together with the file's log time range, so that a
// reader sees both as of the same commit; retention drops it with its
// file, and the summary's compaction does not change its sums.
type logTotals map[logTotalKey]*logTotal

// logTotalKey is a summary key without its second.
type logTotalKey struct {
	service, attrs string
	band           uint8
	sevText        string
}

type logTotal struct {
	n, bytes int64
	// hash is the stream key (streamKeyExpr), known once hashed: DuckDB
	// computes it, for a stream first written after the file was
	// attached at the first read that needs it.
	hash   uint64
	hashed bool
}

// logTotalRow is a copy of one total, for a reader.
type logTotalRow struct {
	logTotalKey
	logTotal
}

// loadLogTotals sums p's summary. The caller holds pmu (attach).
func (s *SpanLogStore) loadLogTotals(ctx context.Context, p *partition) error {
	rows, err := s.db.QueryContext(ctx, "SELECT "+streamKeyExpr+", service, resource_attributes, band, severity_text, sum(n)::BIGINT, sum(bytes)::BIGINT FROM "+
		p.alias+".log_counts GROUP BY ALL")
	if err != nil {
		return fmt.Errorf("embedded: sum the log counts of %s: %w", p.path, err)
	}
	defer rows.Close()
	t := logTotals{}
	for rows.Next() {
		var k logTotalKey
		v := &logTotal{hashed: true}
		if err := rows.Scan(&v.hash, &k.service, &k.attrs, &k.band, &k.sevText, &v.n, &v.bytes); err != nil {
			return fmt.Errorf("embedded: sum the log counts of %s: %w", p.path, err)
		}
		t[k] = v
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: sum the log counts of %s: %w", p.path, err)
	}
	p.totals = t
	return nil
}

// logTotalsOf adds up a day's records by logTotalKey, as appendLogCounts
// does by second.
func logTotalsOf(day []logRow, body func(*logRow) string) map[logTotalKey]logTotal {
	out := make(map[logTotalKey]logTotal, 8)
	for k := range day {
		r := &day[k]
		key := logTotalKey{service: r.res.service, attrs: r.res.attrs}
		if r.severity >= 1 && r.severity <= 24 {
			key.band = (r.severity + 3) / 4
		} else {
			key.sevText = r.severityText
		}
		c := out[key]
		c.n++
		c.bytes += int64(len(body(r)))
		out[key] = c
	}
	return out
}

// logTotalsWithin returns a copy of the totals of the day file whose log
// time range satisfies inside, with every stream hashed, or false when
// the file holds no logs or its range does not.
func (s *SpanLogStore) logTotalsWithin(ctx context.Context, day int64, inside func(lo, hi int64) bool) ([]logTotalRow, bool, error) {
	s.pmu.Lock()
	p := s.parts[day]
	if p == nil || p.totals == nil || p.logMin > p.logMax || !inside(p.logMin, p.logMax) {
		s.pmu.Unlock()
		return nil, false, nil
	}
	out := make([]logTotalRow, 0, len(p.totals))
	var unhashed []int
	for k, v := range p.totals {
		if !v.hashed {
			unhashed = append(unhashed, len(out))
		}
		out = append(out, logTotalRow{k, *v})
	}
	s.pmu.Unlock()
	if len(unhashed) == 0 {
		return out, true, nil
	}
	// One query for the streams first written since the file was
	// attached; their hashes are kept.
	var b strings.Builder
	args := make([]any, 0, 2*len(unhashed))
	b.WriteString("SELECT i, hash(service, resource_attributes) FROM (VALUES ")
	for j, i := range unhashed {
		if j > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, ?::VARCHAR, ?::VARCHAR)", j)
		args = append(args, out[i].service, out[i].attrs)
	}
	b.WriteString(") AS t(i, service, resource_attributes)")
	rows, err := s.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, false, fmt.Errorf("embedded: hash log streams: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			j int
			h uint64
		)
		if err := rows.Scan(&j, &h); err != nil {
			return nil, false, fmt.Errorf("embedded: hash log streams: %w", err)
		}
		out[unhashed[j]].hash, out[unhashed[j]].hashed = h, true
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("embedded: hash log streams: %w", err)
	}
	s.pmu.Lock()
	for _, i := range unhashed {
		if v := p.totals[out[i].logTotalKey]; v != nil && out[i].hashed {
			v.hash, v.hashed = out[i].hash, true
		}
	}
	s.pmu.Unlock()
	return out, true, nil
}
