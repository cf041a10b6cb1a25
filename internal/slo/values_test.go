package slo

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// TestRuleValues runs the promqltest scripts testdata/<name>.test against
// the rules generated from testdata/<name>.yaml. A script is load commands
// followed by eval commands: the series are loaded, the generated rule
// groups are evaluated every minute from time 0 to the script's last eval
// time (SLI rules, then metadata rules, then alerts, as they depend on one
// another), and the evals then query what the rules recorded, ALERTS
// included.
func TestRuleValues(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.test")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".test")
		t.Run(name, func(t *testing.T) {
			specs, err := parseFile(t, name+".yaml")
			if err != nil {
				t.Fatal(err)
			}
			groups, err := Generate(specs)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			load, evals, until := splitScript(t, string(data))

			st := promqltest.LoadedStorage(t, load)
			engine := promqltest.NewTestEngine(t, false, 0, 100000)
			evalRules(t, engine, st, groups, until)
			promqltest.RunTestWithStorage(t, evals, engine, func(testing.TB) storage.Storage { return keepOpen{st} })
		})
	}
}

// keepOpen leaves closing the storage to the test that opened it.
type keepOpen struct{ storage.Storage }

func (keepOpen) Close() error { return nil }

var evalAtRE = regexp.MustCompile(`^eval\s+(?:instant\s+at\s+(\S+)|range\s+from\s+\S+\s+to\s+(\S+))`)

// splitScript cuts a script before its first eval command and returns the
// time of its last one.
func splitScript(t *testing.T, script string) (load, evals string, until time.Duration) {
	t.Helper()
	lines := strings.Split(script, "\n")
	cut := len(lines)
	for i, l := range lines {
		m := evalAtRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		cut = min(cut, i)
		d, err := model.ParseDuration(m[1] + m[2])
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		until = max(until, time.Duration(d))
	}
	if cut == len(lines) {
		t.Fatal("the script has no eval command")
	}
	// Blank lines keep the evals' line numbers those of the file.
	return strings.Join(lines[:cut], "\n"), strings.Repeat("\n", cut) + strings.Join(lines[cut:], "\n"), until
}

// evalRules evaluates groups as the rules manager would, every minute
// from time 0 (promqltest's start) to until.
func evalRules(t *testing.T, engine promql.QueryEngine, st storage.Storage, groups []rulefmt.RuleGroup, until time.Duration) {
	t.Helper()
	ctx := context.Background()
	p := parser.NewParser(parser.Options{})
	opts := &rules.ManagerOptions{
		QueryFunc:  rules.EngineQueryFunc(engine, st),
		Appendable: st,
		Queryable:  st,
		Context:    ctx,
		NotifyFunc: func(context.Context, string, ...*rules.Alert) {},
		Metrics:    rules.NewGroupMetrics(nil),
	}
	var gs []*rules.Group
	for _, g := range groups {
		var rs []rules.Rule
		for _, r := range g.Rules {
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("%s: %v", g.Name, err)
			}
			lbls := labels.FromMap(r.Labels)
			if r.Alert != "" {
				rs = append(rs, rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
					lbls, labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler)))
			} else {
				rs = append(rs, rules.NewRecordingRule(r.Record, expr, lbls))
			}
		}
		gs = append(gs, rules.NewGroup(rules.GroupOptions{Name: g.Name, Interval: time.Minute, Rules: rs, Opts: opts}))
	}
	for ts := time.Duration(0); ts <= until; ts += time.Minute {
		for _, g := range gs {
			g.Eval(ctx, time.Unix(0, 0).UTC().Add(ts))
			for _, r := range g.Rules() {
				if err := r.LastError(); err != nil {
					t.Fatalf("at %v, group %s, rule %s: %v", ts, g.Name(), r.Name(), err)
				}
			}
		}
	}
}
