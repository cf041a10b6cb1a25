package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

var _ storage.LogCounter = (*SpanLogStore)(nil)

// CountLogs counts records in one GROUP BY through the Distributed table
// (as LogStreams does), so that a Loki metric query reads counts instead
// of every line.
//
// Attribute values are taken with visitParamExtractRaw, the one JSON
// function 18.16 has. It finds the first `"key":` anywhere in the text,
// which is the top-level key only when no object is nested in the map and
// the match is not inside another key (it then follows '{' or ','), and
// it misreads a string ending in a backslash. Rows where any of these
// could fail are grouped by their whole attribute text instead, and Go
// reads their values: exact always, fast for the flat attribute maps most
// logs have.
func (s *SpanLogStore) CountLogs(ctx context.Context, q storage.LogCountQuery) ([]storage.LogCount, error) {
	if q.Step <= 0 {
		return nil, fmt.Errorf("%w: count step must be positive", storage.ErrInvalidQuery)
	}
	in, err := streamKeyList(q.Streams)
	if err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if len(q.Streams) == 0 {
		return nil, nil
	}
	query, args := s.countSQL(q, in)
	rows, err := s.c.Conn.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(ctx, "count logs", err)
	}
	defer rows.Close()
	m := newCountMerger(q.Attributes)
	var (
		k, n, bytes uint64
		bin         int64
		band        uint8
		text, whole string
		raw         = make([]string, len(q.Attributes))
		fast        uint8 // selected only to be named; whole says the same
	)
	dest := []any{&k, &bin, &band, &text, &whole, &n, &bytes}
	for i := range raw {
		dest = append(dest, &raw[i])
	}
	dest = append(dest, &fast)
	keys := map[uint64]string{} // formatted once per stream, not per group
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, classify(ctx, "count logs", err)
		}
		key, ok := keys[k]
		if !ok {
			key = formatStreamKey(k)
			keys[k] = key
		}
		if err := m.add(key, bin, storage.Severity(band), text, whole, raw, int64(n), int64(bytes)); err != nil {
			return nil, fmt.Errorf("clickhouse: count logs: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "count logs", err)
	}
	return m.result(), nil
}

// countSQL is the count query for q and its arguments; streams is
// q.Streams as streamKeyList renders them.
func (s *SpanLogStore) countSQL(q storage.LogCountQuery, streams string) (string, []any) {
	origin, step := q.Origin.UnixNano(), q.Step.Nanoseconds()
	// fast: no object nested in the map (no '{' past the first byte; one
	// inside a string value sends the row down the slow path for nothing,
	// which is only slower), and no escaped backslash, since 18.16's
	// visitParamExtractRaw takes the quote of `\\"` (a string ending in a
	// backslash) for an escaped one and reads on past the value.
	fast := []string{"position(substring(attributes, 2), '{') = 0", "position(attributes, ?) = 0"}
	var vals []string
	var nameArgs []any
	fastArgs := []any{`\\`}
	for i, a := range q.Attributes {
		enc := string(attrenc.AppendString(nil, a))
		needle := enc + ":"
		// The first match starts the text after '{' or follows a ',', or
		// there is none (the record lacks the key).
		fast = append(fast, "(position(attributes, ?) = 0 OR substring(attributes, position(attributes, ?) - 1, 1) IN ('{', ','))")
		fastArgs = append(fastArgs, needle, needle)
		// visitParamExtractRaw wants the key as it stands in the text,
		// escaped, without its quotes.
		vals = append(vals, fmt.Sprintf("if(fast, visitParamExtractRaw(attributes, ?), '') AS v%d", i))
		nameArgs = append(nameArgs, enc[1:len(enc)-1])
	}
	if len(q.Attributes) == 0 {
		// Nothing to extract: every row may group without its map.
		fast, fastArgs = []string{"1"}, nil
	}
	// Bins are closed at their end, so a record on an edge belongs to the
	// earlier bin: hence the -1; floored as LogHistogram's.
	d := fmt.Sprintf("(ts_ns - %d - 1)", origin)
	sel := []string{
		streamKeyExpr + " AS k",
		fmt.Sprintf("intDiv(%s, %d) - if(%s %% %d < 0, 1, 0) AS bin", d, step, d, step),
		"toUInt8(if(severity_number BETWEEN 1 AND 24, intDiv(toUInt16(severity_number) + 3, 4), 0)) AS band",
		"if(severity_number BETWEEN 1 AND 24, '', severity_text) AS text",
		"if(fast, '', attributes) AS whole",
		"count()",
		// length counts bytes (lengthUTF8 would count characters), as
		// LogStreams does.
		"sum(length(body))",
	}
	sel = append(sel, vals...)
	group := []string{"k", "bin", "band", "text", "whole"}
	for i := range q.Attributes {
		group = append(group, fmt.Sprintf("v%d", i))
	}
	conds := []string{
		streamKeyExpr + " IN (" + streams + ")",
		fmt.Sprintf("ts_ns > %d AND ts_ns <= %d", q.Start.UnixNano(), q.End.UnixNano()),
	}
	var condArgs []any
	for _, c := range q.Contains {
		conds, condArgs = s.appendContains(conds, condArgs, c)
	}
	for _, c := range q.NotContains {
		conds = append(conds, "position(body, ?) = 0")
		condArgs = append(condArgs, c)
	}
	// fast is a column of its own so that each extraction can test it;
	// ClickHouse resolves aliases across the SELECT list.
	query := "SELECT " + strings.Join(sel, ", ") + ", " + strings.Join(fast, " AND ") + " AS fast FROM " + s.c.Table(logsTable.name) +
		" WHERE " + strings.Join(conds, " AND ") + s.dateCond(q.Start.UnixNano(), q.End.UnixNano()) +
		" GROUP BY " + strings.Join(group, ", ") + ", fast"
	// Arguments bind in the order their ? stand in the text.
	return query, slices.Concat(nameArgs, fastArgs, condArgs)
}

// countMerger sums groups by their LogCount key and turns what ClickHouse
// extracted into exactly what attrenc writes.
type countMerger struct {
	attrs  []string
	counts map[countKey]*storage.LogCount
	// canon caches canonical values by ClickHouse's text; a query has few
	// distinct values and many groups.
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

func newCountMerger(attrs []string) *countMerger {
	return &countMerger{attrs: attrs, counts: map[countKey]*storage.LogCount{}, canon: map[string]string{}}
}

// add sums one group. whole, when not empty, is the group's attribute map,
// from which the values are read instead of raw.
func (m *countMerger) add(stream string, bin int64, sev storage.Severity, sevText, whole string, raw []string, n, bytes int64) error {
	m.buf = m.buf[:0]
	if whole != "" {
		own := pcommon.NewMap()
		if err := attrenc.DecodeMap(whole, own); err != nil {
			return fmt.Errorf("log attributes: %w", err)
		}
		for i, a := range m.attrs {
			if i > 0 {
				m.buf = append(m.buf, 0)
			}
			if v, ok := own.Get(a); ok {
				m.buf = attrenc.AppendValue(m.buf, v)
			}
		}
	} else {
		for i, r := range raw {
			if i > 0 {
				m.buf = append(m.buf, 0)
			}
			c, err := m.canonical(r)
			if err != nil {
				return err
			}
			m.buf = append(m.buf, c...)
		}
	}
	k := countKey{stream: stream, bin: bin, sev: sev, sevText: sevText, attrs: string(m.buf)}
	c := m.counts[k]
	if c == nil {
		c = &storage.LogCount{Stream: stream, Bin: bin, Severity: sev, SeverityText: sevText}
		if len(m.attrs) > 0 {
			c.Attributes = strings.Split(k.attrs, "\x00")
		}
		m.counts[k] = c
	}
	c.Entries += n
	c.Bytes += bytes
	return nil
}

// canonical re-encodes a value as attrenc would; "" (no such key) stays "".
// visitParamExtractRaw returns the stored text, but decoding it again
// costs little per distinct value and does not depend on that.
func (m *countMerger) canonical(s string) (string, error) {
	if s == "" {
		return "", nil
	}
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

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendContains adds the conditions of a case-sensitive substring of the
// body (LogQL's |=): position decides; with skip indexes, a lowered LIKE
// before it lets the token bloom filter on lowerUTF8(body) skip granules.
// ASCII only, where lowerUTF8 and strings.ToLower surely agree, so that
// the filter never drops a record position keeps.
func (s *SpanLogStore) appendContains(conds []string, args []any, c string) ([]string, []any) {
	if s.c.Features.SkipIndexes && isASCII(c) {
		conds = append(conds, "lowerUTF8(body) LIKE ?")
		args = append(args, "%"+likeEscaper.Replace(strings.ToLower(c))+"%")
	}
	return append(conds, "position(body, ?) > 0"), append(args, c)
}
