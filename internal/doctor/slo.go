package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/slo"
	"github.com/vigil-observability/vigil/internal/spanmetrics"
)

// SLOCheck finds SLOs that cannot be measured (slo_unmeasurable): a
// latency threshold that is not a bucket bound of the histogram it counts
// in, so no series has it; and SLI queries that return nothing, so the SLO
// has no value and its alerts can never fire.
type SLOCheck struct {
	// SLOs returns the SLO specs in force; a func because a reload changes
	// them.
	SLOs func() []slo.Spec
	// Metrics is where SLIs are queried. Without it only what needs no
	// data is checked (span SLI thresholds, le matchers on vigil's span
	// histogram), as `vigil doctor --offline` does.
	Metrics storage.Queryable
	// Window is how far back an SLI must have data (1h if 0).
	Window time.Duration
	Now    func() time.Time
	// Engine evaluates the SLI queries; required with Metrics. The
	// server's is its one engine (a querylimit.Engine), so these queries
	// are bounded as the API's and take the same query slots.
	Engine promql.QueryEngine
}

// ErrNoEngine is returned by SLOCheck.Run when it has Metrics to query
// but no Engine to query them with.
var ErrNoEngine = errors.New("doctor: SLOCheck.Metrics needs an Engine")

// Name implements Check.
func (c SLOCheck) Name() string { return "slo" }

// spanBucket is the series of vigil's span duration histogram buckets.
const spanBucket = spanmetrics.MetricSpanDuration + "_bucket"

// Run implements Check.
func (c SLOCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, time.Hour)
	now := clockOf(c.Now)
	end := now()
	var q storage.Querier
	var engine promql.QueryEngine
	if c.Metrics != nil {
		if c.Engine == nil {
			return nil, ErrNoEngine
		}
		engine = c.Engine
		var err error
		if q, err = c.Metrics.Querier(end.Add(-window).UnixMilli(), end.UnixMilli()); err != nil {
			return nil, fmt.Errorf("doctor: open querier: %w", err)
		}
		defer q.Close()
	}
	var out []Finding
	for _, s := range c.SLOs() {
		for _, o := range s.SLOs {
			subject := s.Service + "/" + o.Name
			queries, err := slo.Queries(s, o, window)
			if err != nil {
				return nil, fmt.Errorf("doctor: SLO %s: %w", subject, err)
			}
			fs, err := bucketFindings(ctx, q, s, o, queries, subject, window)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
			if len(fs) > 0 || engine == nil {
				continue // a missing bucket already explains an empty SLI
			}
			eval := func(query string) (promql.Vector, error) {
				return sloInstant(ctx, engine, c.Metrics, query, end)
			}
			if f, ok := emptySLI(eval, s, o, queries, subject, window); ok {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// bucketFindings reports latency thresholds that are not bucket bounds: a
// span SLI's latency_threshold against vigil's span histogram, and the le
// matchers of an events or raw SLI against the buckets of the histogram
// they select (vigil's span histogram's are known without data; others
// are read from the series, when q is not nil).
func bucketFindings(ctx context.Context, q storage.Querier, s slo.Spec, o slo.SLO, queries slo.SLIQueries, subject string, window time.Duration) ([]Finding, error) {
	if sp := o.SLI.Spans; sp != nil {
		d := time.Duration(sp.LatencyThreshold)
		if d == 0 || slices.Contains(slo.LatencyBuckets, d) {
			return nil, nil
		}
		below, above := nearestBounds(d.Seconds(), spanBounds())
		f := bucketFinding(subject, d.Seconds(), below, above)
		f.Evidence.Summary = fmt.Sprintf("the latency threshold %s is not a bound of the span duration histogram; the nearest bounds are %s",
			d, boundsOr(below, above, secondsText))
		f.Fix = fmt.Sprintf("set latency_threshold to %s (the span histogram's bounds are %s)",
			boundsOr(below, above, secondsText), durationsText(slo.LatencyBuckets))
		return []Finding{f}, nil
	}
	seen := map[string]bool{}
	var out []Finding
	for _, query := range []string{queries.Error, queries.Total, queries.Ratio} {
		if query == "" {
			continue
		}
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
		if err != nil {
			return nil, fmt.Errorf("doctor: SLO %s: %w", subject, err)
		}
		for _, sel := range parser.ExtractSelectors(expr) {
			metric, le, rest := leMatcher(sel)
			if le == "" || seen[metric+"\x00"+le] {
				continue
			}
			seen[metric+"\x00"+le] = true
			var bounds []string
			if metric == spanBucket {
				bounds = spanBoundLabels()
			} else if q != nil {
				if bounds, err = leValues(ctx, q, metric, rest); err != nil {
					return nil, err
				}
			}
			if len(bounds) == 0 || slices.Contains(bounds, le) {
				continue // no histogram to compare with, or the bucket exists
			}
			if f, ok := leFinding(subject, metric, le, bounds, window); ok {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// leMatcher returns a selector's metric name, the value of its le="..."
// matcher, and its other label matchers.
func leMatcher(sel []*labels.Matcher) (metric, le string, rest []*labels.Matcher) {
	for _, m := range sel {
		switch {
		case m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual:
			metric = m.Value
			rest = append(rest, m)
		case m.Name == model.BucketLabel && m.Type == labels.MatchEqual:
			le = m.Value
		default:
			rest = append(rest, m)
		}
	}
	if metric == "" {
		return "", "", nil
	}
	return metric, le, rest
}

// leValues returns the le values of the metric's series that match the
// selector's other matchers, or of all its series when none does.
func leValues(ctx context.Context, q storage.Querier, metric string, rest []*labels.Matcher) ([]string, error) {
	vals, err := labelValues(ctx, q, model.BucketLabel, rest...)
	if err != nil || len(vals) > 0 {
		return vals, err
	}
	return labelValues(ctx, q, model.BucketLabel, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, metric))
}

func leFinding(subject, metric, le string, bounds []string, window time.Duration) (Finding, bool) {
	x, err := strconv.ParseFloat(le, 64)
	if err != nil {
		return Finding{}, false
	}
	var nums []float64
	spelled := ""
	for _, b := range bounds {
		v, err := strconv.ParseFloat(b, 64)
		if err != nil {
			continue
		}
		nums = append(nums, v)
		if v == x {
			spelled = b
		}
	}
	below, above := nearestBounds(x, nums)
	f := bucketFinding(subject, x, below, above)
	f.Evidence.Window = lastWindow(window)
	f.Evidence.Samples = nearestLabels(x, bounds)
	sel := fmt.Sprintf("%s{le=%q}", metric, le)
	if spelled != "" {
		f.Evidence.Summary = fmt.Sprintf("the SLI selects %s, but the histogram writes that bucket as le=%q, so the selector matches no series", sel, spelled)
		f.Cause = "le is matched as a string: a bound written differently from the series' label (0.50 for 0.5) selects nothing, so the SLI has no value"
		f.Fix = fmt.Sprintf("write le=%q in the SLI queries", spelled)
		return f, true
	}
	f.Evidence.Summary = fmt.Sprintf("the SLI selects %s, but the histogram has no such bucket; the nearest bounds are %s",
		sel, boundsOr(below, above, leText))
	if metric == spanBucket {
		f.Fix = fmt.Sprintf("set le to %s in the SLI queries (vigil's span histogram has fixed bounds: %s), or use a spans SLI with latency_threshold",
			boundsOr(below, above, leText), durationsText(slo.LatencyBuckets))
		return f, true
	}
	f.Fix = fmt.Sprintf("set le to %s in the SLI queries, or add a %s bucket where the histogram is defined "+
		"(the Buckets of the Prometheus client's HistogramOpts, or the explicit bucket boundaries of an OpenTelemetry view)",
		boundsOr(below, above, leText), le)
	return f, true
}

func bucketFinding(subject string, threshold, below, above float64) Finding {
	values := map[string]float64{"threshold_seconds": threshold}
	if !math.IsNaN(below) {
		values["bucket_below"] = below
	}
	if !math.IsNaN(above) && !math.IsInf(above, 1) {
		values["bucket_above"] = above
	}
	return Finding{
		Code: "slo_unmeasurable", Severity: Warning, Subject: subject,
		Evidence: Evidence{Values: values},
		Cause: "a histogram counts requests only at its bucket bounds: a threshold between two bounds matches no bucket series, " +
			"so the SLI has no value and the SLO's alerts can never fire",
	}
}

// nearestBounds returns the greatest bound below x and the least above
// it, NaN where there is none.
func nearestBounds(x float64, bounds []float64) (below, above float64) {
	below, above = math.NaN(), math.NaN()
	for _, b := range bounds {
		if b < x && (math.IsNaN(below) || b > below) {
			below = b
		}
		if b > x && (math.IsNaN(above) || b < above) {
			above = b
		}
	}
	return below, above
}

// nearestLabels returns up to MaxSamples le values, nearest to x first.
func nearestLabels(x float64, bounds []string) []string {
	out := slices.Clone(bounds)
	dist := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return math.Inf(1)
		}
		return math.Abs(v - x)
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(cmp.Compare(dist(a), dist(b)), cmp.Compare(a, b)) })
	for i, s := range out {
		out[i] = "le=" + strconv.Quote(s)
	}
	return out[:min(len(out), MaxSamples)]
}

func boundsOr(below, above float64, format func(float64) string) string {
	var parts []string
	for _, b := range []float64{below, above} {
		if !math.IsNaN(b) && !math.IsInf(b, 0) {
			parts = append(parts, format(b))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " or ")
}

func secondsText(s float64) string { return time.Duration(s * float64(time.Second)).String() }
func leText(s float64) string      { return strconv.Quote(strconv.FormatFloat(s, 'f', -1, 64)) }

func durationsText(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

func spanBounds() []float64 {
	out := make([]float64, len(slo.LatencyBuckets))
	for i, b := range slo.LatencyBuckets {
		out[i] = b.Seconds()
	}
	return out
}

// spanBoundLabels are the le values of vigil's span histogram, written as
// the span metrics write them.
func spanBoundLabels() []string {
	out := make([]string, 0, len(slo.LatencyBuckets)+1)
	for _, b := range slo.LatencyBuckets {
		out = append(out, strconv.FormatFloat(b.Seconds(), 'f', -1, 64))
	}
	return append(out, "+Inf")
}

func sloInstant(ctx context.Context, engine promql.QueryEngine, q storage.Queryable, query string, at time.Time) (promql.Vector, error) {
	qry, err := engine.NewInstantQuery(ctx, q, nil, query, at)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{{F: v.V, T: v.T}}, nil
	}
	return nil, fmt.Errorf("query returned a %s, want a vector", res.Value.Type())
}

func nanOnly(v promql.Vector) bool {
	for _, s := range v {
		if !math.IsNaN(s.F) {
			return false
		}
	}
	return len(v) > 0
}

// emptySLI reports an SLI without a value over the window, and which of
// its queries is to blame.
func emptySLI(eval func(string) (promql.Vector, error), s slo.Spec, o slo.SLO, queries slo.SLIQueries, subject string, window time.Duration) (Finding, bool) {
	f := Finding{
		Code: "slo_unmeasurable", Severity: Warning, Subject: subject,
		Evidence: Evidence{Window: lastWindow(window)},
	}
	ratio, err := eval(queries.Ratio)
	if err != nil {
		f.Evidence.Summary = "the SLI query fails: " + err.Error()
		f.Evidence.Samples = []string{queries.Ratio}
		f.Cause = "the SLI's query cannot be evaluated, so the SLO has no value"
		f.Fix = "run the query in the Metrics explorer to see the error, and fix the SLI in the SLO spec"
		return f, true
	}
	if len(ratio) > 0 && !nanOnly(ratio) {
		return Finding{}, false
	}
	if queries.Total == "" { // a raw SLI
		f.Evidence.Summary = fmt.Sprintf("the error ratio query returned nothing over the last %s", model.Duration(window))
		f.Evidence.Samples = []string{queries.Ratio}
		f.Cause = "the SLI's error_ratio_query selects no series, so the SLO has no value and its alerts can never fire"
		f.Fix = "run error_ratio_query in the Metrics explorer and fix its selectors (metric names, labels) in the SLO spec"
		if nanOnly(ratio) {
			f.Evidence.Summary = fmt.Sprintf("the error ratio is NaN over the last %s (0/0: no events)", model.Duration(window))
			f.Cause = "the ratio divides by a count of events that is 0; an idle window's NaN makes the 30-day SLI NaN too"
			f.Fix = "filter out idle windows in error_ratio_query (divide by (total > 0)), or use an events SLI with `> 0` on the total query"
		}
		return f, true
	}
	total, err := eval(queries.Total)
	if err != nil {
		total = nil
	}
	errs, err := eval(queries.Error)
	if err != nil {
		errs = nil
	}
	switch {
	case len(total) == 0:
		f.Evidence.Summary = fmt.Sprintf("the total query counted no events over the last %s", model.Duration(window))
		f.Evidence.Samples = []string{queries.Total}
		if sp := o.SLI.Spans; sp != nil {
			service := cmp.Or(sp.Service, s.Service)
			what := fmt.Sprintf("service %q", service)
			if sp.Operation != "" {
				what += fmt.Sprintf(" with operation %q", sp.Operation)
			}
			f.Evidence.Summary = fmt.Sprintf("no SERVER or CONSUMER spans of %s arrived over the last %s", what, model.Duration(window))
			f.Cause = "the span SLI counts the spans that serve requests; none arrived, so the SLO has no value and its alerts can never fire: " +
				"the service sends no traces, is named differently, or the operation name does not match"
			f.Fix = fmt.Sprintf("compare %q with the services vigil knows (GET /api/services) and the operation with GET /api/services/%s/operations, "+
				"and fix the SLI's service or operation; only SERVER and CONSUMER spans count", service, service)
			return f, true
		}
		f.Cause = "the SLI's total_query selects no series (a misspelled metric or label, or a target that is not scraped), so the SLO has no value and its alerts can never fire"
		f.Fix = "run total_query in the Metrics explorer and fix its selectors in the SLO spec, or make sure the metric is scraped"
	case zeroOnly(total) || nanOnly(ratio):
		f.Severity = Info
		f.Evidence.Summary = fmt.Sprintf("the total query counted 0 events over the last %s, so the error ratio is NaN", model.Duration(window))
		f.Evidence.Samples = []string{queries.Total}
		f.Cause = "there was no traffic; the ratio divides by 0, and one NaN window makes the 30-day SLI NaN"
		f.Fix = "append `> 0` to total_query so that idle windows have no value instead of NaN (vigil's span SLIs do)"
	case len(errs) == 0:
		f.Evidence.Summary = fmt.Sprintf("the total query counts events, but the error query returned nothing over the last %s", model.Duration(window))
		f.Evidence.Samples = []string{queries.Error}
		f.Cause = "without errors the error query has no series (a counter with an error label only exists once an error happened), so the ratio has no value exactly when the service is healthy"
		f.Fix = "make error_query return 0 when nothing failed: append `or vector(0)` to a sum(...) without by(), or check its selectors in the Metrics explorer"
	default:
		f.Evidence.Summary = fmt.Sprintf("the error and total queries both return series, but their ratio returned nothing over the last %s", model.Duration(window))
		f.Evidence.Samples = []string{firstSeries(errs), firstSeries(total)}
		f.Cause = "the two queries' results carry different labels, so dividing one by the other matches no pair of series"
		f.Fix = "aggregate error_query and total_query to the same labels, e.g. sum(...) or sum by (the same labels) (...) on both"
	}
	return f, true
}

func zeroOnly(v promql.Vector) bool {
	for _, s := range v {
		if s.F != 0 {
			return false
		}
	}
	return true
}

func firstSeries(v promql.Vector) string {
	if len(v) == 0 {
		return "{}"
	}
	return v[0].Metric.String()
}
