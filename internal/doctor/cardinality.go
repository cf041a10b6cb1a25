package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"
)

// HeadStats reads the in-memory series of the TSDB; *tsdb.Head satisfies
// it. PostingsCardinalityStats walks every label pair of the head (and
// caches the result for 30s), the price of one visit to Prometheus's TSDB
// status page.
type HeadStats interface {
	NumSeries() uint64
	PostingsCardinalityStats(statsByLabelName string, limit int) *index.PostingsStats
}

// CardinalityCheck finds what makes the number of series explode
// (cardinality_risk): the head's series growing fast and steadily, a
// metric whose series doubled, or a label taking unbounded values (ids,
// raw URL paths). Each new value of such a label is a new series, held in
// memory and indexed, until queries and ingestion slow down for everyone.
//
// It remembers the head's size between runs, so use one value (a pointer)
// for the life of the server.
type CardinalityCheck struct {
	Metrics promstorage.Queryable
	Head    HeadStats
	// Window is the time over which growth is measured and label values
	// read (15m if 0).
	Window time.Duration
	// TopMetrics is how many metrics, those with the most series, are
	// inspected (10 if 0); metrics with fewer than MinSeries series (100
	// if 0) are not.
	TopMetrics, MinSeries int
	// MaxValues is the most distinct values a label of one metric may take
	// (500 if 0); at most MaxValues+1 are read per label. A label whose
	// values look like ids (MinIDValues of them, 10 if 0, and at least
	// half) is reported below that.
	MaxValues, MinIDValues int
	// GrowthPerMinute is the steady growth of the head, in new series per
	// minute over the window, above which it is reported (500 if 0);
	// MinNewSeries is the fewest new series for which a metric whose series
	// doubled is reported (1000 if 0).
	GrowthPerMinute float64
	MinNewSeries    uint64
	Now             func() time.Time

	mu      sync.Mutex
	history []headPoint // oldest first, within the window
}

// headPoint is the head's size at one run.
type headPoint struct {
	at      time.Time
	series  uint64
	metrics map[string]uint64 // the top metrics' series
}

// Name implements Check.
func (c *CardinalityCheck) Name() string { return "cardinality" }

// notJudged are labels whose many values are expected or harmless: the
// identity of targets and of the workloads behind them, and histogram and
// summary buckets.
var notJudged = map[string]bool{
	model.MetricNameLabel: true, model.BucketLabel: true, model.QuantileLabel: true,
	model.InstanceLabel: true, model.JobLabel: true,
	"pod": true, "node": true, "host": true, "namespace": true, "container": true,
}

// Run implements Check.
func (c *CardinalityCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	top := cmp.Or(c.TopMetrics, 10)
	now := clockOf(c.Now)()
	// The head's statistics pick what to judge; a backend without a TSDB
	// head (ClickHouse) is not judged yet.
	if c.Head == nil {
		return nil, nil
	}
	stats := c.Head.PostingsCardinalityStats(model.MetricNameLabel, top)
	cur := headPoint{at: now, series: c.Head.NumSeries(), metrics: map[string]uint64{}}
	for _, s := range stats.CardinalityMetricsStats {
		cur.metrics[s.Name] = s.Count
	}
	out := c.growth(cur, window, top)

	q, err := c.Metrics.Querier(now.Add(-window).UnixMilli(), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("doctor: open querier: %w", err)
	}
	defer q.Close()
	// Judge the labels of the biggest metrics, and the labels with the
	// most values overall on (a few of) the metrics that carry them: the
	// latter catches ids while their metric is still small.
	type pair struct{ metric, label string }
	var pairs []pair
	seen := map[pair]bool{}
	add := func(p pair) {
		if !seen[p] && !notJudged[p.label] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	for _, s := range stats.CardinalityMetricsStats {
		if s.Count < uint64(cmp.Or(c.MinSeries, 100)) {
			continue
		}
		names, _, err := q.LabelNames(ctx, nil, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, s.Name))
		if err != nil {
			return nil, fmt.Errorf("doctor: label names of %s: %w", s.Name, err)
		}
		for _, n := range names {
			add(pair{s.Name, n})
		}
	}
	for _, s := range stats.CardinalityLabelStats {
		if notJudged[s.Name] || s.Count < uint64(c.minIDValues()) {
			continue
		}
		metrics, _, err := q.LabelValues(ctx, model.MetricNameLabel, &promstorage.LabelHints{Limit: 5},
			labels.MustNewMatcher(labels.MatchRegexp, s.Name, ".+"))
		if err != nil {
			return nil, fmt.Errorf("doctor: metrics with %s: %w", s.Name, err)
		}
		for _, m := range metrics {
			add(pair{m, s.Name})
		}
	}
	for _, p := range pairs {
		f, ok, err := c.judgeLabel(ctx, q, p.metric, p.label, cur.metrics[p.metric], window)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, f)
		}
	}
	return out, nil
}

func (c *CardinalityCheck) maxValues() int   { return cmp.Or(c.MaxValues, 500) }
func (c *CardinalityCheck) minIDValues() int { return cmp.Or(c.MinIDValues, 10) }

// judgeLabel reads up to MaxValues+1 values of the metric's label and
// reports it when there are more, or when most look like ids.
func (c *CardinalityCheck) judgeLabel(ctx context.Context, q promstorage.Querier, metric, label string, series uint64, window time.Duration) (Finding, bool, error) {
	maxValues := c.maxValues()
	isMetric := labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, metric)
	vals, _, err := q.LabelValues(ctx, label, &promstorage.LabelHints{Limit: maxValues + 1}, isMetric)
	if err != nil {
		return Finding{}, false, fmt.Errorf("doctor: values of %s{%s}: %w", metric, label, err)
	}
	var ids []string
	for _, v := range vals {
		if idLike(v) {
			ids = append(ids, v)
		}
	}
	tooMany := len(vals) > maxValues
	looksLikeIDs := len(ids) >= c.minIDValues() && 2*len(ids) >= len(vals)
	if !tooMany && !looksLikeIDs {
		return Finding{}, false, nil
	}
	jobs, _, err := q.LabelValues(ctx, model.JobLabel, &promstorage.LabelHints{Limit: 3}, isMetric)
	if err != nil {
		return Finding{}, false, fmt.Errorf("doctor: jobs of %s: %w", metric, err)
	}
	from := ""
	if len(jobs) > 0 {
		from = " (job " + strings.Join(jobs, ", ") + ")"
	}
	count := fmt.Sprintf("%d distinct values", len(vals))
	if tooMany {
		count = fmt.Sprintf("more than %d distinct values", maxValues)
	}
	summary := fmt.Sprintf("the label %s of %s%s takes %s", label, metric, from, count)
	if looksLikeIDs {
		summary += fmt.Sprintf(", %d of those read look like ids or raw URL paths", len(ids))
	}
	samples := slices.Clone(ids[:min(len(ids), MaxSamples)])
	for _, v := range vals {
		if len(samples) < MaxSamples && !idLike(v) {
			samples = append(samples, v)
		}
	}
	values := map[string]float64{"distinct_values": float64(len(vals)), "id_like_values": float64(len(ids))}
	if series > 0 {
		values["series"] = float64(series)
	}
	f := Finding{
		Code: "cardinality_risk", Severity: Warning, Subject: metric + "{" + label + "}",
		Evidence: Evidence{Summary: summary, Values: values, Window: lastWindow(window), Samples: samples},
		Cause:    "the label carries unbounded values (ids, raw URL paths, timestamps), so every new value creates new series: the TSDB's memory, index and query time grow without limit",
		Fix: fmt.Sprintf("keep ids in traces and logs, not in labels: record the route template (/users/{id}) instead of the raw path in the instrumentation, or drop the label at scrape time with metric_relabel_configs: [{action: labeldrop, regex: %s}] in the scrape config of %s",
			regexp.QuoteMeta(label), cmp.Or(strings.Join(jobs, ", "), "the job that sends it")),
	}
	if strings.HasPrefix(metric, "traces_span_metrics_") {
		f.Cause = "vigil derives this metric from spans, and the spans carry unbounded values in " + label + ": span names with raw paths or ids"
		f.Fix = "name spans after the route template, not the raw path (GET /users/{id}; otelhttp.WithSpanNameFormatter, or the vigil SDK's middleware which does so), and put ids in span attributes"
	}
	return f, true, nil
}

// growth records the head's size and reports, over the window, fast
// growth of the head and the top metrics whose series doubled. Both must
// be sustained: the later half of the window grew at least a third as fast
// as the whole, so that the ramp after a start (every target's series
// appear in the first scrapes) or a deployment is not mistaken for a leak.
func (c *CardinalityCheck) growth(cur headPoint, window time.Duration, top int) []Finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.history = append(slices.DeleteFunc(c.history, func(p headPoint) bool { return p.at.Before(cur.at.Add(-window)) }), cur)
	base := c.history[0]
	span := cur.at.Sub(base.at)
	if span < window/3 || len(c.history) < 3 {
		return nil // too short to call anything a trend
	}
	// mid is the first point in the later half of the span (not cur).
	mid := c.history[len(c.history)-2]
	for _, p := range c.history[1:] {
		if !p.at.Before(base.at.Add(span / 2)) {
			if p.at.Before(cur.at) {
				mid = p
			}
			break
		}
	}
	sustained := func(from, middle, to uint64) bool {
		if to <= from || middle > to {
			return false
		}
		whole := float64(to-from) / span.Minutes()
		late := float64(to-middle) / cur.at.Sub(mid.at).Minutes()
		return late >= whole/3
	}
	type delta struct {
		metric   string
		from, to uint64
		steady   bool
	}
	// A metric that was not among the top ones had at most as many
	// series as the smallest of them; without that bound it is unknown.
	floor := func(p headPoint) uint64 {
		if len(p.metrics) < top || len(p.metrics) == 0 {
			return 0
		}
		return slices.Min(slices.Collect(maps.Values(p.metrics)))
	}
	var deltas []delta
	for m, n := range cur.metrics {
		b, ok := base.metrics[m]
		if !ok {
			b = floor(base)
		}
		md, okMid := mid.metrics[m]
		if !okMid {
			md = floor(mid)
		}
		if n > b && b > 0 {
			deltas = append(deltas, delta{m, b, n, sustained(b, md, n)})
		}
	}
	slices.SortFunc(deltas, func(a, b delta) int {
		return cmp.Or(cmp.Compare(b.to-b.from, a.to-a.from), cmp.Compare(a.metric, b.metric))
	})
	steady := sustained(base.series, mid.series, cur.series)
	for i := 1; i < len(c.history); i++ {
		steady = steady && c.history[i].series >= c.history[i-1].series
	}
	var out []Finding
	reported := map[string]bool{}
	if rate := (float64(cur.series) - float64(base.series)) / span.Minutes(); steady && rate > cmp.Or(c.GrowthPerMinute, 500) {
		grown := cur.series - base.series
		subject := "all series"
		var samples []string
		for _, d := range deltas[:min(len(deltas), MaxSamples)] {
			samples = append(samples, fmt.Sprintf("%s +%d", d.metric, d.to-d.from))
		}
		if len(deltas) > 0 && 2*(deltas[0].to-deltas[0].from) >= grown {
			subject = deltas[0].metric
			reported[subject] = true
		}
		out = append(out, Finding{
			Code: "cardinality_risk", Severity: Warning, Subject: subject,
			Evidence: Evidence{
				Summary: fmt.Sprintf("the TSDB head grew steadily from %d to %d series in %s (%.0f new series a minute)", base.series, cur.series, span.Round(time.Second), rate),
				Values:  map[string]float64{"series": float64(cur.series), "new_series": float64(grown), "per_minute": rate},
				Window:  lastWindow(span),
				Samples: samples,
			},
			Cause: "a label takes a new value all the time (an id, a raw path, a timestamp, a pod name that churns), so series keep being created",
			Fix:   "find the growing label with count by (label) (metric) in the Metrics explorer for the metrics named here, then drop it with metric_relabel_configs (action: labeldrop) or fix the instrumentation to use bounded values",
		})
	}
	for _, d := range deltas {
		if reported[d.metric] || !d.steady || d.to < 2*d.from || d.to-d.from < cmp.Or(c.MinNewSeries, 1000) {
			continue
		}
		out = append(out, Finding{
			Code: "cardinality_risk", Severity: Warning, Subject: d.metric,
			Evidence: Evidence{
				Summary: fmt.Sprintf("its series more than doubled, from %d to %d, in %s", d.from, d.to, span.Round(time.Second)),
				Values:  map[string]float64{"series": float64(d.to), "series_before": float64(d.from)},
				Window:  lastWindow(span),
			},
			Cause: "one of its labels takes new values all the time (an id, a raw path, a timestamp)",
			Fix:   fmt.Sprintf("find the label with count by (label) (%s) for each of its labels in the Metrics explorer, then drop it with metric_relabel_configs (action: labeldrop) or make the instrumentation use bounded values", d.metric),
		})
	}
	return out
}

var (
	uuidValue  = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	hexValue   = regexp.MustCompile(`^(0x)?[0-9a-fA-F]{16,}$`)
	longNumber = regexp.MustCompile(`^[0-9]{6,}$`)
	email      = regexp.MustCompile(`^[^@\s/]+@[^@\s/]+\.[a-zA-Z]{2,}$`)
)

// idLike tells whether a label value looks like one of an unbounded set:
// a UUID, a long hex string (a hash, a trace id), a long number (an
// account id, a timestamp), an e-mail address, or a URL path (alone or
// after a method, as in a span name) with such a segment or any number
// in it (/users/123) or a query string.
func idLike(v string) bool {
	if uuidValue.MatchString(v) || hexValue.MatchString(v) || longNumber.MatchString(v) || email.MatchString(v) {
		return true
	}
	i := strings.IndexByte(v, '/')
	if i < 0 || (i > 0 && v[i-1] != ' ') {
		return false
	}
	path := v[i:]
	if strings.ContainsRune(path, '?') {
		return true
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" {
			continue
		}
		digits := strings.Trim(seg, "0123456789") == ""
		hexID := len(seg) >= 8 && strings.Trim(seg, "0123456789abcdefABCDEF") == "" && strings.ContainsAny(seg, "0123456789")
		if digits || hexID || uuidValue.MatchString(seg) {
			return true
		}
	}
	return false
}
