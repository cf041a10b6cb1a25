package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/config"
	vigilrules "github.com/vigil-observability/vigil/internal/rules"
)

const offlineRules = `groups:
  - name: shop
    labels: {team: shop}
    rules:
      - alert: CheckoutErrors
        expr: rate(http_requests_total{code="500"}[5m]) > 0
        labels: {severity: page}
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
`

func TestLoadRules(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shop.rules.yml")
	if err := os.WriteFile(file, []byte(offlineRules), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := []rulefmt.RuleGroup{{Name: "slo-checkout", Rules: []rulefmt.Rule{{Alert: "CheckoutBudgetBurn", Expr: "vector(1) > 0", Labels: map[string]string{"team": "shop"}}}}}
	groups, err := LoadRules(vigilrules.Config{Interval: 30 * time.Second, Files: []string{file}, Generated: gen})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups.RuleGroups() {
		for _, r := range g.Rules() {
			got = append(got, g.File()+" "+g.Name()+"/"+r.Name()+" "+r.Labels().String())
		}
		if g.Interval() != 30*time.Second {
			t.Errorf("group %s interval %s, want the global 30s", g.Name(), g.Interval())
		}
	}
	want := []string{
		file + ` shop/CheckoutErrors {severity="page", team="shop"}`,
		file + ` shop/job:http_requests:rate5m {team="shop"}`,
		generatedFile + ` slo-checkout/CheckoutBudgetBurn {team="shop"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules\n%v\nwant\n%v", got, want)
	}
	if ar, ok := groups[0].Rules()[0].(*rules.AlertingRule); !ok || len(ar.ActiveAlerts()) != 0 {
		t.Errorf("rule %v: want an alerting rule never evaluated", groups[0].Rules()[0])
	}

	broken := filepath.Join(dir, "broken.rules.yml")
	if err := os.WriteFile(broken, []byte("groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: rate(x[5m]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRules(vigilrules.Config{Files: []string{file, broken}}); !errors.Is(err, vigilrules.ErrInvalidRules) {
		t.Errorf("a broken rule file: %v, want ErrInvalidRules", err)
	}
}

// TestOfflineChecks: the offline checks find the scrape config's smells
// and the rules nobody is notified of, from files alone.
func TestOfflineChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shop.rules.yml")
	if err := os.WriteFile(file, []byte(offlineRules), 0o644); err != nil {
		t.Fatal(err)
	}
	groups, err := LoadRules(vigilrules.Config{Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, vigil, am string
		want            []string
	}{
		{
			name: "smells and an unrouted rule",
			vigil: `
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
    metric_relabel_configs:
      - {action: labeldrop, regex: instance}
`,
			am: "route: {receiver: none}\nreceivers: [{name: none}]\n",
			want: []string{
				"alert_unrouted shop/CheckoutErrors",
				"config_smell global scrape_interval",
				"config_smell job shop metric_relabel_configs",
			},
		},
		{
			name: "healthy",
			vigil: `
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
`,
			am: `route:
  receiver: none
  routes: [{matchers: ['team="shop"'], receiver: shop}]
receivers:
  - name: none
  - name: shop
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.vigil), dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			amFile := filepath.Join(dir, "alertmanager.yml")
			if err := os.WriteFile(amFile, []byte(tt.am), 0o644); err != nil {
				t.Fatal(err)
			}
			routes, err := alerting.LoadRoutes(amFile)
			if err != nil {
				t.Fatal(err)
			}
			off := &Offline{Config: cfg, Rules: groups, Routes: routes, AlertmanagerFile: amFile}
			d, err := New(Options{Checks: off.Checks()})
			if err != nil {
				t.Fatal(err)
			}
			rep := d.Check(t.Context())
			if len(rep.Errors) > 0 {
				t.Fatalf("checks failed: %v", rep.Errors)
			}
			expectFindings(t, rep.Findings, tt.want...)
			if got := subjects(rep.Findings); !slices.Equal(got, tt.want) {
				t.Errorf("findings %v, want %v once each", got, tt.want)
			}
		})
	}
}
