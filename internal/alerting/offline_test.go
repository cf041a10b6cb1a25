package alerting

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
)

// TestRoutesMatchTheRunningAlertmanager: routes read offline send each
// alert where the Alertmanager built from the same file does.
func TestRoutesMatchTheRunningAlertmanager(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte(`route:
  receiver: none
  routes:
    - matchers: ['team="shop"']
      receiver: shop
      continue: true
    - match_re: {severity: page|critical}
      receiver: pager
receivers:
  - name: none
  - name: shop
    webhook_configs: [{url: "http://127.0.0.1:1/a"}, {url: "http://127.0.0.1:1/b"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:1/p"}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	routes, err := LoadRoutes(conf)
	if err != nil {
		t.Fatal(err)
	}
	am, err := New(Options{ConfigFile: conf, DataDir: dir, ExternalURL: testExternalURL})
	if err != nil {
		t.Fatal(err)
	}
	defer am.Stop()
	for _, ls := range []model.LabelSet{
		{"alertname": "A", "team": "shop"},
		{"alertname": "B", "team": "shop", "severity": "page"},
		{"alertname": "C", "severity": "critical"},
		{"alertname": "D"},
	} {
		if got, want := routes.Route(ls), am.Route(ls); !reflect.DeepEqual(got, want) || len(got) == 0 {
			t.Errorf("%v: offline %+v, running %+v", ls, got, want)
		}
	}
	if got := routes.Route(model.LabelSet{"alertname": "D"}); len(got) != 1 || !got[0].Default || got[0].Integrations != 0 {
		t.Errorf("an alert no route matches: %+v, want only the default receiver, without integrations", got)
	}
	if got, want := routes.MatcherLabels(), []string{"severity", "team"}; !slices.Equal(got, want) {
		t.Errorf("matcher labels %v, want %v", got, want)
	}
}

func TestLoadRoutesInvalid(t *testing.T) {
	if _, err := LoadRoutes("testdata/bad_unknown_receiver.yml"); err == nil {
		t.Error("a route to an undefined receiver loaded")
	}
	if _, err := ParseRoutes([]byte("route: {receiver: none}\nreceivers: [{name: none}]\n")); err != nil {
		t.Errorf("a minimal config: %v", err)
	}
}
