package doctor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// RuleGroups lists the loaded rule groups; *rules.Manager satisfies it.
type RuleGroups interface {
	RuleGroups() []*rules.Group
}

// RuleCheck finds rules that fail to evaluate (rule_eval_errors) and rules
// whose selectors match no series, so they can never fire or record
// anything (rule_no_series), with the closest metric names and label
// values that do exist.
type RuleCheck struct {
	Rules   RuleGroups
	Metrics storage.Queryable
	// Lookback is how far back a selector must have matched (1h if 0).
	Lookback time.Duration
	Now      func() time.Time
}

// Name implements Check.
func (c RuleCheck) Name() string { return "rules" }

// Run implements Check.
func (c RuleCheck) Run(ctx context.Context) ([]Finding, error) {
	lookback := cmp.Or(c.Lookback, time.Hour)
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	end := now()
	q, err := c.Metrics.Querier(end.Add(-lookback).UnixMilli(), end.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("doctor: open querier: %w", err)
	}
	defer q.Close()
	var names []string // metric names, read once when needed
	var out []Finding
	for _, g := range c.Rules.RuleGroups() {
		for _, r := range g.Rules() {
			subject := g.Name() + "/" + r.Name()
			if r.Health() == rules.HealthBad && r.LastError() != nil {
				out = append(out, Finding{
					Code: "rule_eval_errors", Severity: Critical, Subject: subject,
					Evidence: Evidence{Summary: "the last evaluation failed: " + r.LastError().Error(), Samples: []string{r.Query().String()}},
					Cause:    "the rule's query fails when evaluated (often a many-to-many match or too many samples), so it records or alerts nothing",
					Fix:      "run the expression in the Metrics explorer to see the error, then fix the rule in " + g.File(),
				})
				continue
			}
			for _, sel := range parser.ExtractSelectors(r.Query()) {
				found, err := hasSeries(ctx, q, sel)
				if err != nil {
					return nil, err
				}
				if found {
					continue
				}
				if names == nil {
					if names, err = labelValues(ctx, q, model.MetricNameLabel); err != nil {
						return nil, err
					}
				}
				out = append(out, noSeries(ctx, q, subject, g.File(), sel, names, lookback))
			}
		}
	}
	return out, nil
}

func hasSeries(ctx context.Context, q storage.Querier, ms []*labels.Matcher) (bool, error) {
	ss := q.Select(ctx, false, nil, ms...)
	found := ss.Next()
	if err := ss.Err(); err != nil {
		return false, fmt.Errorf("doctor: select series: %w", err)
	}
	return found, nil
}

func labelValues(ctx context.Context, q storage.Querier, name string, ms ...*labels.Matcher) ([]string, error) {
	vals, _, err := q.LabelValues(ctx, name, nil, ms...)
	if err != nil {
		return nil, fmt.Errorf("doctor: label values of %s: %w", name, err)
	}
	return vals, nil
}

// noSeries explains why a selector matches nothing: its metric is unknown
// (the closest names are shown), or one of its label matchers excludes
// every series of the metric (the values that exist are shown).
func noSeries(ctx context.Context, q storage.Querier, subject, file string, ms []*labels.Matcher, names []string, lookback time.Duration) Finding {
	sel := selectorString(ms)
	f := Finding{
		Code: "rule_no_series", Severity: Warning, Subject: subject,
		Evidence: Evidence{Window: "last " + lookback.String()},
		Cause:    "the selector " + sel + " matched no series, so this rule can never fire or record anything",
	}
	var metric string
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			metric = m.Value
		}
	}
	if metric != "" && !slices.Contains(names, metric) {
		close := closest(metric, names, MaxSamples)
		f.Evidence.Summary = fmt.Sprintf("no series named %s exist", metric)
		f.Evidence.Samples = close
		f.Fix = "the metric may be misspelled or not scraped/sent yet"
		if len(close) > 0 {
			f.Fix = fmt.Sprintf("did you mean %s? fix the name in %s, or make sure the metric is scraped or sent", strings.Join(close, ", "), file)
		}
		return f
	}
	for _, m := range ms {
		if m.Name == model.MetricNameLabel {
			continue
		}
		// Would the selector match without this matcher?
		others := slices.DeleteFunc(slices.Clone(ms), func(o *labels.Matcher) bool { return o == m })
		if found, err := hasSeries(ctx, q, others); err != nil || !found {
			continue
		}
		vals, err := labelValues(ctx, q, m.Name, others...)
		if err != nil {
			continue
		}
		f.Evidence.Summary = fmt.Sprintf("series exist without %s, but none match it", m)
		if len(vals) == 0 {
			f.Evidence.Summary = fmt.Sprintf("series exist without %s, but none has a %s label", m, m.Name)
		}
		f.Evidence.Samples = closest(m.Value, vals, MaxSamples)
		f.Fix = fmt.Sprintf("the label %s takes other values (%s); fix the matcher in %s", m.Name, strings.Join(f.Evidence.Samples, ", "), file)
		return f
	}
	f.Evidence.Summary = "no series match the selector as a whole"
	f.Fix = "check the selector's labels against the series in the Metrics explorer, and fix it in " + file
	return f
}

func selectorString(ms []*labels.Matcher) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, m.String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// closest returns up to n of candidates nearest to s by edit distance.
func closest(s string, candidates []string, n int) []string {
	type scored struct {
		v string
		d int
	}
	var all []scored
	for _, c := range candidates {
		all = append(all, scored{c, editDistance(s, c)})
	}
	slices.SortFunc(all, func(a, b scored) int { return cmp.Or(cmp.Compare(a.d, b.d), cmp.Compare(a.v, b.v)) })
	out := []string{}
	for _, a := range all[:min(n, len(all))] {
		out = append(out, a.v)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
