package slo

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"gopkg.in/yaml.v3"
)

// Period is the SLO period: the error budget is spent over 30 days.
const Period = 30 * 24 * time.Hour

// Series and labels of the generated rules. They are Sloth's, so that
// dashboards and queries written for Sloth read vigil's SLOs.
const (
	sliErrorPrefix      = "slo:sli_error:ratio_rate" // + window, e.g. slo:sli_error:ratio_rate5m
	metricObjective     = "slo:objective:ratio"
	metricErrorBudget   = "slo:error_budget:ratio"
	metricPeriodDays    = "slo:time_period:days"
	metricCurrentBurn   = "slo:current_burn_rate:ratio"
	metricPeriodBurn    = "slo:period_burn_rate:ratio"
	metricBudgetLeft    = "slo:period_error_budget_remaining:ratio"
	metricInfo          = "sloth_slo_info"
	labelID             = "sloth_id"
	labelService        = "sloth_service"
	labelSLO            = "sloth_slo"
	labelWindow         = "sloth_window"
	labelSeverity       = "sloth_severity"
	labelSpec           = "sloth_spec"
	labelObjective      = "sloth_objective"
	labelMode           = "sloth_mode"
	modeVigil           = "vigil"
	groupSLIPrefix      = "slo-sli-recordings-"
	groupMetaPrefix     = "slo-meta-recordings-"
	groupAlertsPrefix   = "slo-alerts-"
	severityPage        = "page"
	severityTicket      = "ticket"
	defaultTitleFormat  = "{{$labels.sloth_service}} {{$labels.sloth_slo}}: error budget burning too fast (%s)"
	defaultSummaryAnnot = "The {{$labels.sloth_slo}} SLO of {{$labels.sloth_service}} is spending its error budget faster than it can afford."
)

// burnWindow is one condition of a multi-window alert: the error ratio over
// both the long and the short window exceeds the burn rate that spends
// budgetPercent of the period's error budget within the long window. The
// short window makes the alert stop soon after the burn stops.
type burnWindow struct {
	short, long   time.Duration
	budgetPercent float64
}

// factor is the burn rate threshold, e.g. 14.4 for 2% of a 30-day budget
// in 1h: 0.02 * 720h / 1h.
func (w burnWindow) factor() float64 {
	return w.budgetPercent * Period.Hours() / 100 / w.long.Hours()
}

// alertWindows are the workbook's recommended parameters: page at 14.4x
// over 1h (and 5m) or 6x over 6h (and 30m); ticket at 3x over 1d (and 2h)
// or 1x over 3d (and 6h).
var alertWindows = []struct {
	severity    string
	quick, slow burnWindow
}{
	{severityPage, burnWindow{5 * time.Minute, time.Hour, 2}, burnWindow{30 * time.Minute, 6 * time.Hour, 5}},
	{severityTicket, burnWindow{2 * time.Hour, 24 * time.Hour, 10}, burnWindow{6 * time.Hour, 72 * time.Hour, 10}},
}

// sliWindows are the windows with an SLI recording rule: every alert window
// and the period, shortest first.
var sliWindows = func() []time.Duration {
	ws := []time.Duration{Period}
	for _, a := range alertWindows {
		ws = append(ws, a.quick.short, a.quick.long, a.slow.short, a.slow.long)
	}
	slices.Sort(ws)
	return slices.Compact(ws)
}()

// promDuration writes a window as PromQL does (1d, not 24h).
func promDuration(d time.Duration) string { return model.Duration(d).String() }

// Generate validates the specs and returns their rules: for each SLO, in
// spec order, a group of SLI recording rules, a group of metadata recording
// rules (objective, budget, burn rates, budget remaining) and, unless both
// alerts are disabled, a group with the page and ticket alerts. The groups
// have no interval: they run at the global evaluation interval.
func Generate(specs []Spec) ([]rulefmt.RuleGroup, error) {
	if err := validateAll(specs); err != nil {
		return nil, err
	}

	var groups []rulefmt.RuleGroup
	ids := map[string]bool{}
	for _, s := range specs {
		for _, o := range s.SLOs {
			id := s.Service + "-" + o.Name
			if ids[id] {
				return nil, fmt.Errorf("SLO id %q (service-slo) is generated twice; SLO ids must be unique", id)
			}
			ids[id] = true
			gs, err := generateSLO(s, o, id)
			if err != nil {
				return nil, fmt.Errorf("service %q SLO %q: %w", s.Service, o.Name, err)
			}
			groups = append(groups, gs...)
		}
	}
	if err := validateRules(groups); err != nil {
		return nil, fmt.Errorf("generated rules are invalid (a bug): %w", err)
	}
	return groups, nil
}

// RuleFile writes groups as a Prometheus rule file.
func RuleFile(groups []rulefmt.RuleGroup) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(rulefmt.RuleGroups{Groups: groups}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// validateRules checks groups as Prometheus checks a rule file.
func validateRules(groups []rulefmt.RuleGroup) error {
	data, err := RuleFile(groups)
	if err != nil {
		return err
	}
	_, errs := rulefmt.Parse(data, false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler))
	return errors.Join(errs...)
}

func generateSLO(s Spec, o SLO, id string) ([]rulefmt.RuleGroup, error) {
	idLabels := map[string]string{labelID: id, labelService: s.Service, labelSLO: o.Name}
	filter := selector(idLabels)
	labels := merge(idLabels, s.Labels, o.Labels)

	// The SLI error ratio over each window.
	var sliRules []rulefmt.Rule
	for _, w := range sliWindows {
		var expr string
		if w == Period {
			expr = periodSLI(filter)
		} else {
			var err error
			if expr, err = sliExpr(s, o.SLI, promDuration(w)); err != nil {
				return nil, err
			}
		}
		sliRules = append(sliRules, rulefmt.Rule{
			Record: sliMetric(w),
			Expr:   expr,
			Labels: merge(labels, map[string]string{labelWindow: promDuration(w)}),
		})
	}

	objective := round(o.Objective / 100)
	budget := round((100 - o.Objective) / 100)
	burn := func(sli string) string {
		// Error ratio over budget ratio: 1 spends exactly the budget in the period.
		return fmt.Sprintf("%s%s\n/ on (%s, %s, %s) group_left\n%s%s", sli, filter,
			labelID, labelSLO, labelService, metricErrorBudget, filter)
	}
	metaRules := []rulefmt.Rule{
		{Record: metricObjective, Expr: fmt.Sprintf("vector(%s)", formatFloat(objective)), Labels: labels},
		{Record: metricErrorBudget, Expr: fmt.Sprintf("vector(%s)", formatFloat(budget)), Labels: labels},
		{Record: metricPeriodDays, Expr: fmt.Sprintf("vector(%s)", formatFloat(Period.Hours()/24)), Labels: labels},
		// The burn rate now: over the shortest window.
		{Record: metricCurrentBurn, Expr: burn(sliMetric(sliWindows[0])), Labels: labels},
		{Record: metricPeriodBurn, Expr: burn(sliMetric(Period)), Labels: labels},
		{Record: metricBudgetLeft, Expr: "1 - " + metricPeriodBurn + filter, Labels: labels},
		{Record: metricInfo, Expr: "vector(1)", Labels: merge(labels, map[string]string{
			labelSpec:      SpecVersion,
			labelMode:      modeVigil,
			labelObjective: strconv.FormatFloat(o.Objective, 'f', -1, 64),
		})},
	}

	groups := []rulefmt.RuleGroup{
		{Name: groupSLIPrefix + id, Rules: sliRules},
		{Name: groupMetaPrefix + id, Rules: metaRules},
	}
	var alertRules []rulefmt.Rule
	for _, aw := range alertWindows {
		a := o.Alerting.PageAlert
		if aw.severity == severityTicket {
			a = o.Alerting.TicketAlert
		}
		if a.Disable {
			continue
		}
		alertRules = append(alertRules, rulefmt.Rule{
			Alert:  o.Alerting.Name,
			Expr:   alertCondition(aw.quick, aw.slow, budget, filter),
			Labels: merge(map[string]string{labelSeverity: aw.severity}, o.Alerting.Labels, a.Labels),
			Annotations: merge(map[string]string{
				"title":   fmt.Sprintf(defaultTitleFormat, aw.severity),
				"summary": defaultSummaryAnnot,
			}, o.Alerting.Annotations, a.Annotations),
		})
	}
	if len(alertRules) > 0 {
		groups = append(groups, rulefmt.RuleGroup{Name: groupAlertsPrefix + id, Rules: alertRules})
	}
	return groups, nil
}

// alertCondition is an alert's expression: either window pair burning.
func alertCondition(quick, slow burnWindow, budget float64, filter string) string {
	return fmt.Sprintf("(\n%s\n)\nor\n(\n%s\n)",
		burnCondition(quick, budget, filter), burnCondition(slow, budget, filter))
}

// PageCondition is the expression of the SLO o of s's page alert (the
// fast burn: 14.4x over 1h and 5m, or 6x over 6h and 30m), over the SLI
// series Generate's recording rules write: a non-empty result means the
// page condition holds now, whether or not the page alert is disabled.
// s and o are taken as valid (Generate or Parse checked them).
func PageCondition(s Spec, o SLO) string {
	filter := selector(map[string]string{labelID: s.Service + "-" + o.Name, labelService: s.Service, labelSLO: o.Name})
	budget := round((100 - o.Objective) / 100)
	page := alertWindows[0]
	return alertCondition(page.quick, page.slow, budget, filter)
}

// burnCondition is one window pair of a multi-window alert. max without the
// window label makes both sides match on the SLO's labels alone.
func burnCondition(w burnWindow, budget float64, filter string) string {
	threshold := fmt.Sprintf("(%s * %s)", formatFloat(w.factor()), formatFloat(budget))
	side := func(d time.Duration) string {
		return fmt.Sprintf("  max(%s%s > %s) without (%s)", sliMetric(d), filter, threshold, labelWindow)
	}
	return side(w.short) + "\n  and\n" + side(w.long)
}

// sliExpr is the error ratio of an SLI over one window.
func sliExpr(s Spec, sli SLI, window string) (string, error) {
	if sli.Spans != nil {
		ev := spanEvents(*sli.Spans, s.Service)
		sli = SLI{Events: &ev}
	}
	if sli.Raw != nil {
		q, err := render(sli.Raw.ErrorRatioQuery, window)
		if err != nil {
			return "", err
		}
		return "(" + q + ")", nil
	}
	errQ, err := render(sli.Events.ErrorQuery, window)
	if err != nil {
		return "", err
	}
	totalQ, err := render(sli.Events.TotalQuery, window)
	if err != nil {
		return "", err
	}
	return "(" + errQ + ")\n/\n(" + totalQ + ")", nil
}

// periodSLI is the error ratio over the whole period, computed as the mean
// of the recorded 5m ratios rather than by a 30-day range query over the
// raw series, which would be far more expensive to evaluate every interval.
// Dividing the sum by the count weighs every 5m ratio equally, as Sloth does.
func periodSLI(filter string) string {
	w := promDuration(Period)
	short := sliMetric(sliWindows[0])
	return fmt.Sprintf("sum_over_time(%s%s[%s])\n/ ignoring (%s)\ncount_over_time(%s%s[%s])",
		short, filter, w, labelWindow, short, filter, w)
}

func sliMetric(window time.Duration) string { return sliErrorPrefix + promDuration(window) }

// selector writes labels as a PromQL label selector, names sorted.
func selector(lbls map[string]string) string {
	parts := make([]string, 0, len(lbls))
	for _, k := range sortedKeys(lbls) {
		parts = append(parts, k+"="+strconv.Quote(lbls[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// merge returns the union of ms; later maps win.
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// round drops the binary noise of decimal percentages (100-99.9 is
// 0.09999999999999432): objectives have far fewer than 12 significant digits.
func round(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64)
	return r
}

// GeneratedGroup tells whether a rule group is one Generate makes: its
// rules are judged through their SLO, not one by one.
func GeneratedGroup(name string) bool {
	return strings.HasPrefix(name, groupSLIPrefix) || strings.HasPrefix(name, groupMetaPrefix) || strings.HasPrefix(name, groupAlertsPrefix)
}
