package doctor

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
)

func TestRoutingCheck(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte(`route:
  receiver: none
  routes:
    - matchers: ['team="shop"']
      receiver: shop
    - matchers: ['squad="payments"']
      receiver: shop
receivers:
  - name: none
  - name: shop
    webhook_configs:
      - url: http://127.0.0.1:1/hook
`), 0o644); err != nil {
		t.Fatal(err)
	}
	am, err := alerting.New(alerting.Options{ConfigFile: conf, DataDir: dir, ExternalURL: &url.URL{Scheme: "http", Host: "localhost:7070"}})
	if err != nil {
		t.Fatal(err)
	}
	defer am.Stop()
	p := parser.NewParser(parser.Options{})
	alert := func(name, team string) rules.Rule {
		e, err := p.ParseExpr(`vector(1)`)
		if err != nil {
			t.Fatal(err)
		}
		return rules.NewAlertingRule(name, e, time.Minute, 0, labels.FromStrings("team", team), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	}
	g := rules.NewGroup(rules.GroupOptions{Name: "shop", File: "shop.rules.yml", Interval: time.Minute, Rules: []rules.Rule{
		alert("Routed", "shop"), alert("Lost", "checkout"),
		// Same group and name, other labels: one subject, one finding.
		alert("Lost", "billing"),
	}})
	got, err := RoutingCheck{Rules: fixedGroups{g}, Router: am}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "alert_unrouted route matcher on squad", "alert_unrouted shop/Lost")
	for _, f := range got {
		if f.Subject == "shop/Lost" && (!strings.Contains(f.Evidence.Summary, "none") || !strings.Contains(f.Fix, `alertname="Lost"`) || len(f.Evidence.Samples) != 2) {
			t.Errorf("finding %+v", f)
		}
	}
}

// Without an alertmanager.yml, vigil's default receiver notifies no one on
// purpose: one finding for the setup, information until something fires.
func TestRoutingCheckUnconfigured(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	e, err := p.ParseExpr(`vector(1)`)
	if err != nil {
		t.Fatal(err)
	}
	quiet := rules.NewAlertingRule("Quiet", e, time.Hour, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	loud := rules.NewAlertingRule("Loud", e, 0, 0, labels.EmptyLabels(), labels.EmptyLabels(), labels.EmptyLabels(), "", false, nil)
	g := rules.NewGroup(rules.GroupOptions{Name: "shop", Interval: time.Minute, Rules: []rules.Rule{quiet, loud}})
	check := RoutingCheck{Rules: fixedGroups{g}, Router: nil, Unconfigured: func() bool { return true }}
	got, err := check.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "alert_unrouted alertmanager_config_file")
	if len(got) != 1 || got[0].Severity != Info || got[0].Subject != "alertmanager_config_file" || got[0].Evidence.Values["alerting_rules"] != 2 {
		t.Fatalf("findings %+v, want one info finding for two rules", got)
	}
	query := func(context.Context, string, time.Time) (promql.Vector, error) {
		return promql.Vector{{Metric: labels.EmptyLabels(), F: 1}}, nil
	}
	if _, err := loud.Eval(t.Context(), 0, time.Now(), query, nil, 0); err != nil {
		t.Fatal(err)
	}
	got, err = check.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "alert_unrouted alertmanager_config_file")
	if len(got) != 1 || got[0].Severity != Warning || !slices.Equal(got[0].Evidence.Samples, []string{"shop/Loud"}) {
		t.Fatalf("findings %+v, want a warning naming the firing rule", got)
	}
}
