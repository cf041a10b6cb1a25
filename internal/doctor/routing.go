package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
)

// Router tells where alerts go; *alerting.Alertmanager satisfies it.
type Router interface {
	Route(model.LabelSet) []alerting.Delivery
	MatcherLabels() []string
}

// RoutingCheck finds alerts that would reach no one (alert_unrouted): the
// label sets alerting rules produce, and those of their active alerts, that
// match only receivers without any integration; and routes that match on a
// label no rule produces, so the alerts meant for them go elsewhere.
type RoutingCheck struct {
	Rules  RuleGroups
	Router Router
	// Unconfigured tells whether no alertmanager.yml is configured, so
	// every alert goes to vigil's default receiver that sends nothing on
	// purpose. That is one setup gap, not a broken route per rule.
	Unconfigured func() bool
}

// Name implements Check.
func (c RoutingCheck) Name() string { return "routing" }

// maxLabelSetsPerRule bounds the active alerts looked at per rule.
const maxLabelSetsPerRule = 20

// Run implements Check.
func (c RoutingCheck) Run(context.Context) ([]Finding, error) {
	if c.Unconfigured != nil && c.Unconfigured() {
		return c.unconfigured(), nil
	}
	var out []Finding
	produced := map[string]bool{"alertname": true}
	for _, g := range c.Rules.RuleGroups() {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok {
				continue
			}
			sets := []labels.Labels{labels.NewBuilder(ar.Labels()).Set(labels.AlertName, ar.Name()).Labels()}
			firing := false
			for i, a := range ar.ActiveAlerts() {
				if i == maxLabelSetsPerRule {
					break
				}
				sets = append(sets, a.Labels)
				firing = firing || a.State == rules.StateFiring
			}
			for _, ls := range sets {
				ls.Range(func(l labels.Label) { produced[l.Name] = true })
			}
			// Labels the expression's output can carry.
			for _, sel := range parser.ExtractSelectors(ar.Query()) {
				for _, m := range sel {
					produced[m.Name] = true
				}
			}
			if f, ok := c.unrouted(g, ar, sets, firing); ok {
				out = mergeFinding(out, f)
			}
		}
	}
	for _, name := range c.Router.MatcherLabels() {
		if produced[name] {
			continue
		}
		out = append(out, Finding{
			Code: "alert_unrouted", Severity: Warning, Subject: "route matcher on " + name,
			Evidence: Evidence{Summary: fmt.Sprintf("a route matches on the label %q, which no alerting rule sets and no active alert carries", name)},
			Cause:    "the route can never match, so the alerts meant for it fall through to another route or the default receiver",
			Fix:      fmt.Sprintf("set %q in the rules' labels (or fix the label name in alertmanager.yml's route matchers)", name),
		})
	}
	return out, nil
}

// unconfigured reports, once, that alerts notify no one because no
// alertmanager.yml is set: information while nothing fires, a warning
// when something does.
func (c RoutingCheck) unconfigured() []Finding {
	var ruleCount, firing int
	var samples []string
	for _, g := range c.Rules.RuleGroups() {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok {
				continue
			}
			ruleCount++
			if slices.ContainsFunc(ar.ActiveAlerts(), func(a *rules.Alert) bool { return a.State == rules.StateFiring }) {
				firing++
				samples = append(samples, g.Name()+"/"+ar.Name())
			}
		}
	}
	if ruleCount == 0 {
		return nil
	}
	sev := Info
	if firing > 0 {
		sev = Warning
	}
	return []Finding{{
		Code: "alert_unrouted", Severity: sev, Subject: "alertmanager_config_file",
		Evidence: Evidence{
			Summary: fmt.Sprintf("no alertmanager.yml is configured: the alerts of %d alerting rules (%d firing) show in the UI and the API but notify no one", ruleCount, firing),
			Values:  map[string]float64{"alerting_rules": float64(ruleCount), "firing": float64(firing)},
			Samples: samples,
		},
		Cause: "vigil.yaml sets no alertmanager_config_file, so vigil routes every alert to a receiver without integrations",
		Fix:   "set alertmanager_config_file in vigil.yaml to an alertmanager.yml whose receivers have a webhook, Slack or email config (docs/alerting.md)",
	}}
}

// unrouted reports a rule whose label sets reach only receivers that send
// nothing.
func (c RoutingCheck) unrouted(g *rules.Group, ar *rules.AlertingRule, sets []labels.Labels, firing bool) (Finding, bool) {
	var receivers []string
	for _, ls := range sets {
		ds := c.Router.Route(toLabelSet(ls))
		for _, d := range ds {
			if d.Integrations > 0 {
				return Finding{}, false
			}
			if !slices.Contains(receivers, d.Receiver) {
				receivers = append(receivers, d.Receiver)
			}
		}
	}
	sev := Warning
	if firing {
		sev = Critical
	}
	samples := make([]string, 0, len(sets))
	for _, ls := range sets {
		if s := ls.String(); !slices.Contains(samples, s) {
			samples = append(samples, s)
		}
	}
	return Finding{
		Code: "alert_unrouted", Severity: sev, Subject: g.Name() + "/" + ar.Name(),
		Evidence: Evidence{
			Summary: fmt.Sprintf("its alerts route only to %s, which has no integration: nobody is notified", strings.Join(receivers, ", ")),
			Samples: samples,
		},
		Cause: "no route in alertmanager.yml matches the labels this rule produces, or the route's receiver sends nowhere",
		Fix: fmt.Sprintf("add a route whose matchers match these labels (for example matchers: ['alertname=%q']) to a receiver with a webhook, Slack or email config, "+
			"or give %s an integration", ar.Name(), strings.Join(receivers, ", ")),
	}, true
}

// mergeFinding adds f, or folds it into the finding of the same code and
// subject (an SLO's page and ticket alerts share a group and a name), so
// each subject is reported, and exported as a series, once.
func mergeFinding(out []Finding, f Finding) []Finding {
	for i, o := range out {
		if o.Code != f.Code || o.Subject != f.Subject {
			continue
		}
		if f.Severity.rank() < o.Severity.rank() {
			o.Severity = f.Severity
		}
		for _, sm := range f.Evidence.Samples {
			if !slices.Contains(o.Evidence.Samples, sm) {
				o.Evidence.Samples = append(o.Evidence.Samples, sm)
			}
		}
		out[i] = o
		return out
	}
	return append(out, f)
}

func toLabelSet(ls labels.Labels) model.LabelSet {
	out := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) { out[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return out
}
