package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// metricIDsPerQuery bounds the series ids in one samples query: the IN
// list must fit ClickHouse's max_query_size (256 KiB), at up to 21 bytes
// an id.
const metricIDsPerQuery = 5000

// Querier returns a querier over [mint, maxt] (ms, inclusive).
func (s *MetricStore) Querier(mint, maxt int64) (storage.Querier, error) {
	return &metricQuerier{s: s, mint: mint, maxt: maxt}, nil
}

type metricQuerier struct {
	s          *MetricStore
	mint, maxt int64
}

func (*metricQuerier) Close() error { return nil }

// metricSeries is a series found in the index.
type metricSeries struct {
	id     uint64
	labels labels.Labels
}

// Select finds the matching series in the index for the days of the range,
// then reads their samples, a few thousand series per query. Matchers that
// SQL evaluates cheaply (equality, inequality, sets of alternatives) narrow
// the index read; every matcher is then checked in Go, so regular
// expressions keep Prometheus's exact semantics.
func (q *metricQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	limit := 0
	if hints != nil {
		if hints.Start > mint {
			mint = hints.Start
		}
		if hints.End != 0 && hints.End < maxt {
			maxt = hints.End
		}
		limit = hints.Limit
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	found, err := q.s.findSeries(ctx, mint, maxt, matchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if hints != nil && hints.ShardCount > 0 {
		found = slices.DeleteFunc(found, func(s metricSeries) bool {
			return labels.StableHash(s.labels)%hints.ShardCount != hints.ShardIndex
		})
	}
	// Sorting always costs little next to the read and makes results
	// deterministic.
	slices.SortFunc(found, func(a, b metricSeries) int { return labels.Compare(a.labels, b.labels) })
	if hints != nil && hints.Func == "series" {
		// The series API wants labels only.
		if limit > 0 && len(found) > limit {
			found = found[:limit]
		}
		out := make([]storage.Series, len(found))
		for i, s := range found {
			out[i] = newMetricSeries(s.labels, nil)
		}
		return &metricSeriesSet{series: out}
	}
	samples, err := q.s.readSamples(ctx, mint, maxt, found)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	var out []storage.Series
	for _, s := range found {
		smp := samples[s.id]
		if len(smp) == 0 {
			continue
		}
		out = append(out, newMetricSeries(s.labels, smp))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return &metricSeriesSet{series: out}
}

// LabelNames lists the label names of the series with samples on the days
// of the querier's range.
func (q *metricQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var names []string
	if len(matchers) == 0 {
		sql := "SELECT DISTINCT arrayJoin(label_names) FROM " + q.s.c.Table(metricSeriesTable) + " WHERE " + metricDays(q.mint, q.maxt)
		var err error
		if names, err = q.s.queryStrings(ctx, "label names", sql); err != nil {
			return nil, nil, err
		}
	} else {
		found, err := q.s.findSeries(ctx, q.mint, q.maxt, matchers)
		if err != nil {
			return nil, nil, err
		}
		set := map[string]struct{}{}
		for _, s := range found {
			s.labels.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
		}
		for n := range set {
			names = append(names, n)
		}
	}
	return limitSorted(names, hints), nil, nil
}

// LabelValues lists the values of a label over the series with samples on
// the days of the querier's range.
func (q *metricQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var values []string
	if len(matchers) == 0 {
		sql := "SELECT DISTINCT " + metricLabelExpr(name) + " AS v FROM " + q.s.c.Table(metricSeriesTable) +
			" WHERE " + metricDays(q.mint, q.maxt)
		if name != model.MetricNameLabel {
			sql += " AND has(label_names, " + metricQuote(name) + ")"
		}
		var err error
		if values, err = q.s.queryStrings(ctx, "label values", sql); err != nil {
			return nil, nil, err
		}
	} else {
		found, err := q.s.findSeries(ctx, q.mint, q.maxt, matchers)
		if err != nil {
			return nil, nil, err
		}
		set := map[string]struct{}{}
		for _, s := range found {
			if v := s.labels.Get(name); v != "" {
				set[v] = struct{}{}
			}
		}
		for v := range set {
			values = append(values, v)
		}
	}
	return limitSorted(values, hints), nil, nil
}

func limitSorted(s []string, hints *storage.LabelHints) []string {
	slices.Sort(s)
	if hints != nil && hints.Limit > 0 && len(s) > hints.Limit {
		s = s[:hints.Limit]
	}
	return s
}

// findSeries reads the index rows of the days of [mint, maxt] that match.
func (s *MetricStore) findSeries(ctx context.Context, mint, maxt int64, matchers []*labels.Matcher) ([]metricSeries, error) {
	var sql strings.Builder
	sql.WriteString("SELECT id, any(label_names), any(label_values) FROM ")
	sql.WriteString(s.c.Table(metricSeriesTable))
	sql.WriteString(" WHERE ")
	sql.WriteString(metricDays(mint, maxt))
	for _, m := range matchers {
		if cond := metricMatcherSQL(m); cond != "" {
			sql.WriteString(" AND ")
			sql.WriteString(cond)
		}
	}
	sql.WriteString(" GROUP BY id")
	rows, err := s.c.Conn.Query(ctx, sql.String())
	if err != nil {
		return nil, metricsErr("find series", err)
	}
	defer rows.Close()
	var (
		out    []metricSeries
		id     uint64
		names  []string
		values []string
		b      labels.ScratchBuilder
	)
next:
	for rows.Next() {
		if err := rows.Scan(&id, &names, &values); err != nil {
			return nil, metricsErr("find series", err)
		}
		if len(names) != len(values) {
			return nil, fmt.Errorf("clickhouse: find series: series %d has %d label names and %d values", id, len(names), len(values))
		}
		b.Reset()
		for i := range names {
			b.Add(names[i], values[i])
		}
		b.Sort()
		ls := b.Labels()
		for _, m := range matchers {
			if !m.Matches(ls.Get(m.Name)) {
				continue next
			}
		}
		out = append(out, metricSeries{id: id, labels: ls})
	}
	if err := rows.Err(); err != nil {
		return nil, metricsErr("find series", err)
	}
	return out, nil
}

// readSamples reads the samples of the series in [mint, maxt], keeping the
// last written of duplicates.
func (s *MetricStore) readSamples(ctx context.Context, mint, maxt int64, series []metricSeries) (map[uint64]metricSamples, error) {
	ids := make([]uint64, len(series))
	for i, sr := range series {
		ids[i] = sr.id
	}
	slices.Sort(ids)
	out := make(map[uint64]metricSamples, len(ids))
	var sql strings.Builder
	for chunk := range slices.Chunk(ids, metricIDsPerQuery) {
		sql.Reset()
		fmt.Fprintf(&sql, "SELECT id, ts, value, histogram FROM %s WHERE %s AND ts >= %d AND ts <= %d AND id IN (",
			s.c.Table(metricSamplesTable), metricDays(mint, maxt), mint, maxt)
		for i, id := range chunk {
			if i > 0 {
				sql.WriteByte(',')
			}
			sql.WriteString(strconv.FormatUint(id, 10))
		}
		sql.WriteString(") ORDER BY id, ts, written")
		if err := s.scanSamples(ctx, sql.String(), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *MetricStore) scanSamples(ctx context.Context, sql string, out map[uint64]metricSamples) error {
	rows, err := s.c.Conn.Query(ctx, sql)
	if err != nil {
		return metricsErr("read samples", err)
	}
	defer rows.Close()
	var (
		id, lastID uint64
		ts         int64
		value      float64
		hist       string
		cur        metricSamples
	)
	flush := func() {
		if cur != nil {
			out[lastID] = cur
		}
	}
	for rows.Next() {
		if err := rows.Scan(&id, &ts, &value, &hist); err != nil {
			return metricsErr("read samples", err)
		}
		if id != lastID || cur == nil {
			flush()
			lastID, cur = id, make(metricSamples, 0, 64)
		}
		smp := metricSample{t: ts, f: value}
		if hist != "" {
			h, fh, err := decodeMetricHistogram(hist)
			if err != nil {
				return fmt.Errorf("clickhouse: series %d at %d: %w", id, ts, err)
			}
			if h != nil {
				fh = h.ToFloat(nil)
			}
			smp.h, smp.fh, smp.f = h, fh, 0
		}
		if n := len(cur); n > 0 && cur[n-1].t == ts {
			// Rows come ordered by write time within a timestamp: the
			// last one wins.
			cur[n-1] = smp
			continue
		}
		cur = append(cur, smp)
	}
	flush()
	if err := rows.Err(); err != nil {
		return metricsErr("read samples", err)
	}
	return nil
}

func (s *MetricStore) queryStrings(ctx context.Context, what, sql string) ([]string, error) {
	rows, err := s.c.Conn.Query(ctx, sql)
	if err != nil {
		return nil, metricsErr(what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, metricsErr(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, metricsErr(what, err)
	}
	return out, nil
}

// metricDays bounds a query to the day partitions of [mint, maxt].
func metricDays(mint, maxt int64) string {
	return "day >= " + metricDayLiteral(metricDay(mint)) + " AND day <= " + metricDayLiteral(metricDay(maxt))
}

// metricLabelExpr is the SQL value of a label of the series table: "" when
// the series lacks it, as in Prometheus (indexOf gives 0 and index 0 of an
// array gives the default value).
func metricLabelExpr(name string) string {
	if name == model.MetricNameLabel {
		return "metric"
	}
	return "label_values[indexOf(label_names, " + metricQuote(name) + ")]"
}

// metricMatcherSQL is the SQL condition of a matcher, or "" when SQL would
// not evaluate it exactly or cheaply (a regular expression other than a
// set of alternatives).
func metricMatcherSQL(m *labels.Matcher) string {
	expr := metricLabelExpr(m.Name)
	switch m.Type {
	case labels.MatchEqual:
		return expr + " = " + metricQuote(m.Value)
	case labels.MatchNotEqual:
		return expr + " != " + metricQuote(m.Value)
	case labels.MatchRegexp, labels.MatchNotRegexp:
		set := m.SetMatches()
		if len(set) == 0 {
			return ""
		}
		quoted := make([]string, len(set))
		for i, v := range set {
			quoted[i] = metricQuote(v)
		}
		op := " IN ("
		if m.Type == labels.MatchNotRegexp {
			op = " NOT IN ("
		}
		return expr + op + strings.Join(quoted, ", ") + ")"
	}
	return ""
}

var metricQuoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// metricQuote is a ClickHouse string literal.
func metricQuote(s string) string { return "'" + metricQuoter.Replace(s) + "'" }

// metricSample is one sample read back: a float, or a histogram (then fh
// holds its float form too, which PromQL asks for).
type metricSample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s *metricSample) T() int64                      { return s.t }
func (s *metricSample) ST() int64                     { return 0 }
func (s *metricSample) F() float64                    { return s.f }
func (s *metricSample) H() *histogram.Histogram       { return s.h }
func (s *metricSample) FH() *histogram.FloatHistogram { return s.fh }

func (s *metricSample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	default:
		return chunkenc.ValFloat
	}
}

func (s *metricSample) Copy() chunks.Sample {
	c := *s
	if s.h != nil {
		c.h = s.h.Copy()
	}
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return &c
}

// metricSamples implements storage.Samples without boxing each sample.
type metricSamples []metricSample

func (s metricSamples) Get(i int) chunks.Sample { return &s[i] }
func (s metricSamples) Len() int                { return len(s) }

func newMetricSeries(ls labels.Labels, smp metricSamples) storage.Series {
	return &storage.SeriesEntry{
		Lset: ls,
		SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator {
			// The copying iterator keeps callers that reuse histograms
			// from changing the samples of the series.
			return storage.NewListSeriesIteratorWithCopy(smp)
		},
	}
}

type metricSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *metricSeriesSet) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}

func (s *metricSeriesSet) At() storage.Series              { return s.series[s.i-1] }
func (*metricSeriesSet) Err() error                        { return nil }
func (*metricSeriesSet) Warnings() annotations.Annotations { return nil }
