package doctor

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/config"
	vigilrules "github.com/vigil-observability/vigil/internal/rules"
	"github.com/vigil-observability/vigil/internal/slo"
)

// Offline is a configuration loaded for checking with nothing started and
// nothing written: what `vigil doctor --offline` diagnoses, before a
// server ever runs it.
type Offline struct {
	// Config is vigil.yaml, loaded as the server loads it.
	Config *config.Config
	// Rules are the groups of the rule files and of the SLOs, built but
	// never evaluated (see LoadRules).
	Rules RuleGroups
	// Routes route alerts as the server's Alertmanager would
	// (alerting.LoadRoutes).
	Routes Router
	// AlertmanagerFile is the alertmanager.yml the server would run;
	// empty when none is configured, and the server would route every
	// alert to a receiver that sends nothing.
	AlertmanagerFile string
	// SLOs are the specs of the slos: section.
	SLOs []slo.Spec
}

// Checks returns the checks that need no live data, built from what o
// holds. This list is where further offline checks belong.
func (o *Offline) Checks() []Check {
	var out []Check
	if o.Config != nil {
		out = append(out, ConfigCheck{Config: func() *promconfig.Config { return o.Config.Prometheus }})
	}
	if o.Rules != nil && o.Routes != nil {
		out = append(out, RoutingCheck{Rules: o.Rules, Router: o.Routes, Unconfigured: func() bool { return o.AlertmanagerFile == "" }})
	}
	if o.AlertmanagerFile != "" {
		out = append(out, TemplateCheck{Problems: func() ([]alerting.TemplateProblem, error) {
			// The links the server's notifications would carry.
			cfg := o.Config
			if cfg == nil {
				cfg = config.Defaults()
			}
			ext, err := cfg.ExternalURL()
			if err != nil {
				return nil, err
			}
			return alerting.CheckTemplates(o.AlertmanagerFile, ext)
		}})
	}
	if len(o.SLOs) > 0 {
		// Without Metrics, only what needs no data: latency thresholds
		// against the span histogram's buckets.
		out = append(out, SLOCheck{SLOs: func() []slo.Spec { return o.SLOs }})
	}
	return out
}

// StaticRules are rule groups built without a rules manager, to check
// what the rules would produce rather than what they did.
type StaticRules []*rules.Group

// RuleGroups implements RuleGroups.
func (s StaticRules) RuleGroups() []*rules.Group { return s }

// generatedFile names the file of groups vigil generates (from SLOs) in
// StaticRules: they have no file until a server writes one.
const generatedFile = "slos (generated)"

// LoadRules builds the groups c would run, its files' then its generated
// ones, as Prometheus's rules manager would, without evaluating them:
// their rules have no health and no alerts. Files that do not validate
// are an error wrapping vigilrules.ErrInvalidRules.
func LoadRules(c vigilrules.Config) (StaticRules, error) {
	if err := vigilrules.Validate(c.Files, nil); err != nil {
		return nil, err
	}
	p := parser.NewParser(parser.Options{})
	// One set of metrics for all groups: they are never registered.
	opts := &rules.ManagerOptions{Metrics: rules.NewGroupMetrics(nil)}
	var out StaticRules
	add := func(file string, groups []rulefmt.RuleGroup) error {
		for _, rg := range groups {
			g, err := staticGroup(p, opts, c, file, rg)
			if err != nil {
				return fmt.Errorf("%w: %s: group %q: %w", vigilrules.ErrInvalidRules, file, rg.Name, err)
			}
			out = append(out, g)
		}
		return nil
	}
	for _, f := range c.Files {
		rgs, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, nil)
		if len(errs) > 0 {
			return nil, fmt.Errorf("%w: %w", vigilrules.ErrInvalidRules, errors.Join(errs...))
		}
		if err := add(f, rgs.Groups); err != nil {
			return nil, err
		}
	}
	if err := add(generatedFile, c.Generated); err != nil {
		return nil, err
	}
	return out, nil
}

func staticGroup(p parser.Parser, opts *rules.ManagerOptions, c vigilrules.Config, file string, rg rulefmt.RuleGroup) (*rules.Group, error) {
	interval := c.Interval
	if rg.Interval != 0 {
		interval = time.Duration(rg.Interval)
	}
	rs := make([]rules.Rule, 0, len(rg.Rules))
	for _, r := range rg.Rules {
		expr, err := p.ParseExpr(r.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s%s: %w", r.Alert, r.Record, err)
		}
		lset := rules.FromMaps(rg.Labels, r.Labels)
		if r.Alert != "" {
			rs = append(rs, rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				lset, labels.FromMap(r.Annotations), c.ExternalLabels, "", true, nil))
			continue
		}
		rs = append(rs, rules.NewRecordingRule(r.Record, expr, lset))
	}
	return rules.NewGroup(rules.GroupOptions{
		Name: rg.Name, File: file, Interval: interval, Limit: rg.Limit, Rules: rs, Opts: opts,
		QueryOffset: (*time.Duration)(rg.QueryOffset),
	}), nil
}
