package doctor

import (
	"errors"
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
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "http_requests_total", "job", "checkout", "code", "200"),
		labels.FromStrings("__name__", "http_requests_total", "job", "checkout", "code", "500"),
		labels.FromStrings("__name__", "calls_total", "service_name", "payments", "status_code", "STATUS_CODE_UNSET", "code", "200"),
	} {
		if _, err := app.Append(0, ls, now.Add(-10*time.Minute).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		name, expr string
		// severity of the rule_no_series finding; "" for none.
		severity    Severity
		sample, fix string
	}{
		{"Misspelled", `rate(http_request_total[5m]) > 0`, Warning, "http_requests_total", "did you mean http_requests_total"},
		{"Unknown", `rate(checkout_latency_seconds_count[5m]) > 0`, Warning, "", "not scraped/sent yet"},
		// The same selector twice (an SLO's numerator and denominator) is
		// one finding.
		{"Twice", `rate(http_request_total[5m]) / rate(http_request_total[1h]) > 0`, Warning, "http_requests_total", "did you mean"},
		// The output of a recording rule exists once that rule runs.
		{"Recorded", `job:errors:rate5m > 0`, "", "", ""},
		{"WrongLabel", `http_requests_total{job="chekout"} > 0`, Warning, "checkout", "the label job takes other values (checkout)"},
		{"WrongCase", `calls_total{service_name="Payments"} > 0`, Warning, "payments", "the label service_name takes other values"},
		{"NoSuchLabel", `http_requests_total{jbo="checkout"} > 0`, Warning, "", "fix the label name"},
		{"Fine", `sum(rate(http_requests_total{code="500"}[5m])) > 0`, "", "", ""},
		// Healthy systems have no error series yet: these rules are fine.
		{"ErrorsNotYet", `sum(rate(calls_total{status_code="STATUS_CODE_ERROR"}[5m])) > 0`, "", "", ""},
		{"ServerErrorsNotYet", `calls_total{code="503"} > 0`, "", "", ""},
		{"RegexNotYet", `calls_total{code=~"5.."} > 0`, "", "", ""},
		{"NotUnsetNotYet", `calls_total{status_code!="STATUS_CODE_UNSET"} > 0`, "", "", ""},
		{"AbsentIsFine", `calls_total{tenant=""} > 0`, "", "", ""},
		// A value unrelated to those that exist may just not have appeared.
		{"OtherService", `calls_total{service_name="billing"} > 0`, Info, "payments", "if billing is expected to appear later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := p.ParseExpr(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			r := rules.NewAlertingRule(tc.name, e, 0, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
			rec := rules.NewRecordingRule("job:errors:rate5m", e, labels.EmptyLabels())
			g := rules.NewGroup(rules.GroupOptions{Name: "shop", File: "shop.rules.yml", Interval: time.Minute, Rules: []rules.Rule{r}})
			if tc.name == "Recorded" {
				g = rules.NewGroup(rules.GroupOptions{Name: "shop", File: "shop.rules.yml", Interval: time.Minute, Rules: []rules.Rule{r, rec}})
			}
			got, err := RuleCheck{Rules: fixedGroups{g}, Metrics: st}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if tc.severity != "" {
				want = append(want, "rule_no_series shop/"+tc.name)
			}
			expectFindings(t, got, want...)
			if len(got) != 1 || tc.severity == "" {
				return
			}
			if tc.name == "Unknown" && len(got[0].Evidence.Samples) != 0 {
				t.Errorf("names unlike the unknown one offered: %v", got[0].Evidence.Samples)
			}
			f := got[0]
			if f.Code != "rule_no_series" || f.Subject != "shop/"+tc.name || f.Severity != tc.severity ||
				(tc.sample != "" && !slices.Contains(f.Evidence.Samples, tc.sample)) || !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("finding %+v, want a %s rule_no_series naming %q and %q", f, tc.severity, tc.sample, tc.fix)
			}
		})
	}
}

// On a fresh server nothing is flushed or recorded yet: no judgement.
func TestRuleCheckWaitsForHistory(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(t.Context())
	if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "shop"), time.Now().Add(-30*time.Second).UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(`rate(traces_span_metrics_calls_total[5m]) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	g := rules.NewGroup(rules.GroupOptions{Name: "shop", Interval: time.Minute, Rules: []rules.Rule{
		rules.NewAlertingRule("Errors", e, 0, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil),
	}})
	got, err := RuleCheck{Rules: fixedGroups{g}, Metrics: st}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got)
	got, err = RuleCheck{Rules: fixedGroups{g}, Metrics: st, MinHistory: 10 * time.Second}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "rule_no_series shop/Errors")
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

// The rules generated for an SLO are judged through the SLO (slo.go).
func TestRuleCheckLeavesSLOGroups(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(t.Context())
	if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "shop"), time.Now().Add(-10*time.Minute).UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(`rate(payments_charges_totl[5m])`)
	if err != nil {
		t.Fatal(err)
	}
	var groups fixedGroups
	for _, name := range []string{"slo-sli-recordings-payments-charges", "team"} {
		groups = append(groups, rules.NewGroup(rules.GroupOptions{Name: name, Interval: time.Minute, Rules: []rules.Rule{
			rules.NewRecordingRule("charges:rate5m", e, labels.EmptyLabels()),
		}}))
	}
	got, err := RuleCheck{Rules: groups, Metrics: st}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "rule_no_series team/charges:rate5m")
}

// A rule whose last evaluation failed records or alerts nothing.
func TestRuleCheckEvalErrors(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	e, err := parser.NewParser(parser.Options{}).ParseExpr(`http_requests_total / on(job) http_requests_total`)
	if err != nil {
		t.Fatal(err)
	}
	failing := rules.NewAlertingRule("ManyToMany", e, 0, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	failing.SetHealth(rules.HealthBad)
	failing.SetLastError(errors.New("found duplicate series for the match group {job=\"checkout\"} on the right hand-side of the operation"))
	fine := rules.NewAlertingRule("Fine", e, 0, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	fine.SetHealth(rules.HealthGood)
	g := rules.NewGroup(rules.GroupOptions{Name: "shop", File: "shop.rules.yml", Interval: time.Minute, Rules: []rules.Rule{failing, fine}})
	got, err := RuleCheck{Rules: fixedGroups{g}, Metrics: st}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "rule_eval_errors shop/ManyToMany")
	if len(got) == 1 && (got[0].Severity != Critical || !strings.Contains(got[0].Evidence.Summary, "duplicate series")) {
		t.Errorf("finding %+v, want critical with the error", got[0])
	}
}
