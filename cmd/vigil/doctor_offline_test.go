package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const offlineAlertmanager = `route:
  receiver: none
  routes:
    - matchers: ['team="ops"']
      receiver: ops
receivers:
  - name: none
  - name: ops
    webhook_configs:
      - url: http://127.0.0.1:1/hook
`

const offlineRules = `groups:
  - name: shop
    rules:
      - alert: CheckoutErrors
        expr: rate(http_requests_total{code="500"}[5m]) > 0
        labels: {team: %s}
`

// TestDoctorOffline runs `vigil doctor --offline --config` on files alone:
// a 1s scrape interval, a labeldrop of instance and a rule whose alerts
// reach only a receiver that sends nothing are found, a clean
// configuration gives no finding, and a configuration that does not load
// exits 2. Nothing is written into the data directory.
func TestDoctorOffline(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		exit  int
		// want are the findings as "code subject"; text are substrings of
		// the text output (of stderr when exit is 2).
		want []string
		text []string
	}{
		{
			name: "smells and an unrouted rule",
			files: map[string]string{
				"vigil.yaml": `data_dir: data
alertmanager_config_file: alertmanager.yml
rule_files: [rules.yml]
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
    metric_relabel_configs:
      - action: labeldrop
        regex: instance
`,
				"alertmanager.yml": offlineAlertmanager,
				"rules.yml":        strings.Replace(offlineRules, "%s", "shop", 1),
			},
			want: []string{
				"alert_unrouted shop/CheckoutErrors",
				"config_smell global scrape_interval",
				"config_smell job shop metric_relabel_configs",
			},
			text: []string{
				"WARNING  config_smell  global scrape_interval",
				"fix:   set scrape_interval to between 15s and 60s",
				"remove the instance label",
				"WARNING  alert_unrouted  shop/CheckoutErrors",
				"its alerts route only to none",
			},
		},
		{
			name: "clean",
			files: map[string]string{
				"vigil.yaml": `data_dir: data
alertmanager_config_file: alertmanager.yml
rule_files: [rules.yml]
scrape_configs:
  - job_name: shop
    scrape_interval: 15s
    static_configs: [{targets: ["shop:8080"]}]
`,
				"alertmanager.yml": offlineAlertmanager,
				"rules.yml":        strings.Replace(offlineRules, "%s", "ops", 1),
			},
			want: []string{},
			text: []string{"No problems found."},
		},
		{
			name: "no alertmanager.yml: one setup gap, not one finding per rule",
			files: map[string]string{
				"vigil.yaml": "data_dir: data\nrule_files: [rules.yml]\n",
				"rules.yml":  strings.Replace(offlineRules, "%s", "ops", 1),
			},
			want: []string{"alert_unrouted alertmanager_config_file"},
			text: []string{"INFO  alert_unrouted  alertmanager_config_file", "set alertmanager_config_file"},
		},
		{
			name: "a notification template that fails",
			files: map[string]string{
				"vigil.yaml": "data_dir: data\nalertmanager_config_file: alertmanager.yml\n",
				"alertmanager.yml": `route: {receiver: ops}
receivers:
  - name: ops
    slack_configs:
      - api_url: http://127.0.0.1:1/slack
        channel: '#ops'
        title: '{{ template "nope" . }}'
`,
			},
			want: []string{"notify_failures ops/slack_configs[0].title"},
			text: []string{`template "nope" not defined`},
		},
		{
			name: "broken rule file",
			files: map[string]string{
				"vigil.yaml": "data_dir: data\nrule_files: [rules.yml]\n",
				"rules.yml":  "groups:\n  - name: shop\n    rules:\n      - alert: Bad\n        expr: rate(x[5m]\n",
			},
			exit: 2,
			text: []string{"invalid rules", "rules.yml"},
		},
		{
			name:  "config that does not load",
			files: map[string]string{"vigil.yaml": "data_dir: data\nscrape_intervall: 1s\n"},
			exit:  2,
			text:  []string{"scrape_intervall"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := filepath.Join(dir, "vigil.yaml")
			out, errOut, code := runVigil(t, "doctor", "--offline", "--config", cfg)
			if code != tt.exit {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.exit, out, errOut)
			}
			shown := out
			if tt.exit == 2 {
				shown = errOut
			}
			for _, s := range tt.text {
				if !strings.Contains(shown, s) {
					t.Errorf("output does not say %q:\n%s", s, shown)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data directory was touched: %v", err)
			}
			if tt.exit == 2 {
				return
			}
			out, errOut, code = runVigil(t, "doctor", "--offline", "--config", cfg, "--format", "json")
			var rep struct {
				Findings []struct{ Code, Subject, Severity, Cause, Fix string }
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != tt.exit || rep.Findings == nil {
				t.Fatalf("--format json: exit %d, %v\n%s\n%s", code, err, out, errOut)
			}
			got := []string{}
			for _, f := range rep.Findings {
				got = append(got, f.Code+" "+f.Subject)
				if f.Cause == "" || f.Fix == "" {
					t.Errorf("finding without cause or fix: %+v", f)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDoctorOfflineNeedsConfig(t *testing.T) {
	for _, args := range [][]string{{"doctor", "--offline"}, {"doctor", "--config", "vigil.yaml"}} {
		if _, errOut, code := runVigil(t, args...); code != 2 || !strings.Contains(errOut, "--offline --config") {
			t.Errorf("%v: exit %d, %s; want 2 and a usage hint", args, code, errOut)
		}
	}
}

func runVigil(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(vigilBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}
