package doctor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
)

type fixedGroups []*rules.Group

func (f fixedGroups) RuleGroups() []*rules.Group { return f }

func TestRuleCheck(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(t.Context())
	now := time.Now()
	for _, code := range []string{"200", "500"} {
		if _, err := app.Append(0, labels.FromStrings("__name__", "http_requests_total", "job", "checkout", "code", code), now.Add(-time.Minute).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	alert := func(name, expr string) rules.Rule {
		e, err := p.ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		return rules.NewAlertingRule(name, e, 0, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	}
	g := rules.NewGroup(rules.GroupOptions{Name: "shop", File: "shop.rules.yml", Interval: time.Minute, Rules: []rules.Rule{
		alert("Misspelled", `rate(http_request_total[5m]) > 0`),
		alert("WrongLabel", `http_requests_total{job="chekout"} > 0`),
		alert("Fine", `sum(rate(http_requests_total{code="500"}[5m])) > 0`),
	}})
	got, err := RuleCheck{Rules: fixedGroups{g}, Metrics: st}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("findings %+v, want two", got)
	}
	want := []struct{ subject, sample, fix string }{
		{"shop/Misspelled", "http_requests_total", "did you mean http_requests_total"},
		{"shop/WrongLabel", "checkout", "the label job takes other values (checkout)"},
	}
	for i, w := range want {
		f := got[i]
		if f.Code != "rule_no_series" || f.Subject != w.subject || !slices.Contains(f.Evidence.Samples, w.sample) || !strings.Contains(f.Fix, w.fix) {
			t.Errorf("finding %d = %+v, want %s naming %q and %q", i, f, w.subject, w.sample, w.fix)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "abc", 0}, {"http_request_total", "http_requests_total", 1}, {"kitten", "sitting", 3}, {"", "ab", 2}} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
