package doctor

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/slo"
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
	// MinHistory is how much metric history the store must hold before
	// rule_no_series judges anything (2m if 0): on a fresh server the span
	// metrics are not flushed and recording rules not evaluated yet.
	MinHistory time.Duration
	Now        func() time.Time
}

// startTimer is the part of a Prometheus storage that knows its oldest
// sample; *tsdb.DB has it.
type startTimer interface {
	StartTime() (int64, error)
}

// Name implements Check.
func (c RuleCheck) Name() string { return "rules" }

// Run implements Check.
func (c RuleCheck) Run(ctx context.Context) ([]Finding, error) {
	lookback := cmp.Or(c.Lookback, time.Hour)
	now := clockOf(c.Now)
	end := now()
	q, err := c.Metrics.Querier(end.Add(-lookback).UnixMilli(), end.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("doctor: open querier: %w", err)
	}
	defer q.Close()
	judge := true
	if st, ok := c.Metrics.(startTimer); ok {
		oldest, err := st.StartTime()
		judge = err == nil && oldest <= end.Add(-cmp.Or(c.MinHistory, 2*time.Minute)).UnixMilli()
	}
	// A selector of a recording rule's output matches once that rule has
	// run; the recording rule itself is judged.
	recorded := map[string]bool{}
	for _, g := range c.Rules.RuleGroups() {
		for _, r := range g.Rules() {
			if rr, ok := r.(*rules.RecordingRule); ok {
				recorded[rr.Name()] = true
			}
		}
	}
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
			// The SLO check judges the rules generated for an SLO: a dead
			// SLI is one finding, not one per generated rule.
			if !judge || slo.GeneratedGroup(g.Name()) {
				continue
			}
			seen := map[string]bool{}
			for _, sel := range parser.ExtractSelectors(r.Query()) {
				key := selectorString(sel)
				if seen[key] || recorded[metricName(sel)] {
					continue
				}
				seen[key] = true
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
				if f, ok := noSeries(ctx, q, subject, g.File(), sel, names, lookback); ok {
					out = append(out, f)
				}
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
// every series of the metric (the values that exist are shown). It
// reports false when matching nothing is the normal state of a healthy
// system.
func noSeries(ctx context.Context, q storage.Querier, subject, file string, ms []*labels.Matcher, names []string, lookback time.Duration) (Finding, bool) {
	sel := selectorString(ms)
	f := Finding{
		Code: "rule_no_series", Severity: Warning, Subject: subject,
		Evidence: Evidence{Window: lastWindow(lookback)},
		Cause:    "the selector " + sel + " matched no series, so this rule can never fire or record anything",
	}
	if metric := metricName(ms); metric != "" && !slices.Contains(names, metric) {
		// Beyond a third of the name's length, a candidate is another
		// name, not a spelling of this one.
		close := closest(metric, names, MaxSamples, max(2, len(metric)/3))
		f.Evidence.Summary = fmt.Sprintf("no series named %s exist", metric)
		f.Evidence.Samples = close
		f.Fix = "the metric may be misspelled or not scraped/sent yet"
		if len(close) > 0 {
			f.Fix = fmt.Sprintf("did you mean %s? fix the name in %s, or make sure the metric is scraped or sent", strings.Join(close, ", "), file)
		}
		return f, true
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
		return labelMismatch(f, m, vals, file)
	}
	f.Evidence.Summary = "no series match the selector as a whole"
	f.Fix = "check the selector's labels against the series in the Metrics explorer, and fix it in " + file
	return f, true
}

// labelMismatch judges a matcher that excludes every series of a metric
// that exists. A label no series has can never match. A value the label
// does not take yet is often fine: error counters and status codes appear
// with the first failure, so a healthy service has no
// status_code="STATUS_CODE_ERROR" series. Only a value that looks like a
// typo of one that exists is a warning; an unrelated value is worth an
// info finding, and a dormant one (an error-like word, a number, a member
// of the same enum as the values that exist) none.
func labelMismatch(f Finding, m *labels.Matcher, vals []string, file string) (Finding, bool) {
	if len(vals) == 0 {
		if m.Matches("") {
			return f, false // the matcher accepts the label's absence
		}
		f.Evidence.Summary = fmt.Sprintf("series exist without %s, but none has a %s label", m, m.Name)
		f.Fix = fmt.Sprintf("no series of this metric carries %s: fix the label name in %s", m.Name, file)
		return f, true
	}
	if m.Type != labels.MatchEqual {
		// A regular expression or a negation over values that do not occur
		// yet (code=~"5..") is how error rules are written.
		return f, false
	}
	f.Evidence.Samples = closest(m.Value, vals, MaxSamples, math.MaxInt)
	f.Evidence.Summary = fmt.Sprintf("series exist without %s, but none match it", m)
	f.Fix = fmt.Sprintf("the label %s takes other values (%s); fix the matcher in %s", m.Name, strings.Join(f.Evidence.Samples, ", "), file)
	switch {
	case typoOf(m.Value, vals):
		return f, true
	case dormantValue(m.Value, vals):
		return f, false
	}
	f.Severity = Info
	f.Cause = "no series had " + m.String() + " in the window: the rule fires or records only once such a series appears"
	f.Fix = fmt.Sprintf("if %s is expected to appear later, nothing to do; otherwise the label %s takes other values (%s): fix the matcher in %s",
		m.Value, m.Name, strings.Join(f.Evidence.Samples, ", "), file)
	return f, true
}

// typoOf tells whether v differs from one of vals only by case or by a
// couple of characters, numbers aside (code="500" against "200" is not a
// typo).
func typoOf(v string, vals []string) bool {
	if isNumber(v) {
		return false
	}
	for _, x := range vals {
		if strings.EqualFold(v, x) {
			return true
		}
		if len(v) >= 4 && !isNumber(x) && editDistance(v, x) <= 2 && !dormantWord(v) {
			return true
		}
	}
	return false
}

// dormantValue tells whether v is a value that occurs only when something
// goes wrong, or a member of the enum the existing values belong to
// (STATUS_CODE_ERROR beside STATUS_CODE_UNSET).
func dormantValue(v string, vals []string) bool {
	if isNumber(v) || dormantWord(v) {
		return true
	}
	for _, x := range vals {
		if i := strings.LastIndexAny(x, "_."); i >= 2 && strings.HasPrefix(v, x[:i+1]) {
			return true
		}
	}
	return false
}

// dormantWords appear in label values that only failures produce.
var dormantWords = []string{"error", "fail", "fatal", "panic", "timeout", "timedout", "unavailable", "reject", "denied", "abort", "cancel", "critical", "exceeded", "true", "5xx", "4xx"}

func dormantWord(v string) bool {
	lv := strings.ToLower(v)
	for _, w := range dormantWords {
		if strings.Contains(lv, w) {
			return true
		}
	}
	return false
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// metricName is the metric a selector names exactly, or "".
func metricName(ms []*labels.Matcher) string {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func selectorString(ms []*labels.Matcher) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, m.String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// closest returns up to n of candidates nearest to s by edit distance, of
// those at most maxDist away.
func closest(s string, candidates []string, n, maxDist int) []string {
	type scored struct {
		v string
		d int
	}
	var all []scored
	for _, c := range candidates {
		if d := editDistance(s, c); d <= maxDist {
			all = append(all, scored{c, d})
		}
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
