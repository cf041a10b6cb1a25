package doctor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
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
	am, err := alerting.New(alerting.Options{ConfigFile: conf, DataDir: dir})
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
	}})
	got, err := RoutingCheck{Rules: fixedGroups{g}, Router: am}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, f := range got {
		if f.Code != "alert_unrouted" {
			t.Errorf("unexpected %+v", f)
		}
		subjects = append(subjects, f.Subject)
		if f.Subject == "shop/Lost" && (!strings.Contains(f.Evidence.Summary, "none") || !strings.Contains(f.Fix, `alertname="Lost"`)) {
			t.Errorf("finding %+v", f)
		}
	}
	slices.Sort(subjects)
	if want := []string{"route matcher on squad", "shop/Lost"}; !slices.Equal(subjects, want) {
		t.Errorf("subjects %v, want %v", subjects, want)
	}
}
