package slo

import "testing"

// The guard of a gray rollout judges an SLO by its page alert's
// condition: PageCondition must be that alert's expression, exactly.
func TestPageConditionIsThePageAlert(t *testing.T) {
	specs, err := parseFile(t, "events.yaml")
	if err != nil {
		t.Fatal(err)
	}
	groups, err := Generate(specs)
	if err != nil {
		t.Fatal(err)
	}
	s, o := specs[0], specs[0].SLOs[0]
	want := ""
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert != "" && r.Labels[labelSeverity] == severityPage && g.Name == groupAlertsPrefix+s.Service+"-"+o.Name {
				want = r.Expr
			}
		}
	}
	if want == "" {
		t.Fatal("no page alert generated")
	}
	if got := PageCondition(s, o); got != want {
		t.Errorf("PageCondition:\n%s\nwant the page alert's expression:\n%s", got, want)
	}
}
