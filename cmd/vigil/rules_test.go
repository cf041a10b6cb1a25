package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const tracesOnlyRules = `groups:
  - name: traces-only
    rules:
      - record: service:span_calls:total
        expr: sum by (service_name) (traces_span_metrics_calls_total)
      - alert: CheckoutErrors
        expr: sum by (service_name) (traces_span_metrics_calls_total{status_code="STATUS_CODE_ERROR"}) > 0
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service_name }} has failing requests"
`

const secondGroup = `groups:
  - name: second
    rules:
      - record: vigil:one
        expr: vector(1)
`

// checkoutSLOConfig evaluates every second, loads the rule files and has a
// span-based SLO for checkout.
const checkoutSLOConfig = `global:
  evaluation_interval: 1s
rule_files: ["rules/*.yml"]
slos:
  - version: prometheus/v1
    service: checkout
    slos:
      - name: requests
        objective: 99.9
        sli: {spans: {}}
        alerting: {name: CheckoutBudgetBurn}
`

// postErrorSpan sends one failing server span of service over OTLP/HTTP JSON.
func postErrorSpan(t *testing.T, s *server, service string) {
	t.Helper()
	now := time.Now().UnixNano()
	body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}}]},
	  "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"POST /checkout",
	  "kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d","status":{"code":2}}]}]}]}`, service, now-int64(time.Millisecond), now)
	resp, err := http.Post(s.otlpHTTPURL+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP: %d", resp.StatusCode)
	}
}

// TestRulesOverTracesReloadAndAPIs: a service that sends only traces
// fires an alert from a rule over the span-derived series; /api/v1/rules
// and /api/v1/alerts answer as Prometheus does; SIGHUP and POST /-/reload
// pick up rule file changes, and a broken file is refused with the old
// rules kept.
func TestRulesOverTracesReloadAndAPIs(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "rules", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yml", tracesOnlyRules)
	cfgPath := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfgPath, []byte(checkoutSLOConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--config", cfgPath, "--enable-admin")
	postErrorSpan(t, s, "checkout")

	type alert struct {
		Labels      map[string]string
		Annotations map[string]string
		State       string
	}
	var alerts struct {
		Status string
		Data   struct{ Alerts []alert }
	}
	// The recorder flushes every 15 s; the rule evaluates every second.
	waitFor(t, "CheckoutErrors firing in /api/v1/alerts", 60*time.Second, func() bool {
		if s.getJSON(t, "/api/v1/alerts", &alerts) != http.StatusOK {
			return false
		}
		for _, a := range alerts.Data.Alerts {
			if a.Labels["alertname"] == "CheckoutErrors" && a.State == "firing" {
				return a.Labels["service_name"] == "checkout" && a.Annotations["summary"] == "checkout has failing requests"
			}
		}
		return false
	})

	groupNames := func() []string {
		var rules struct {
			Data struct {
				Groups []struct {
					Name  string
					File  string
					Rules []struct{ Name, Type, Health string }
				}
			}
		}
		if s.getJSON(t, "/api/v1/rules", &rules) != http.StatusOK {
			t.Fatal("/api/v1/rules")
		}
		var names []string
		for _, g := range rules.Data.Groups {
			names = append(names, g.Name)
			for _, r := range g.Rules {
				if r.Health == "err" {
					t.Errorf("rule %s is unhealthy", r.Name)
				}
			}
		}
		return names
	}
	// The file's group and the three groups the SLO generates.
	if got := groupNames(); len(got) != 4 || !slices.Contains(got, "traces-only") || !slices.Contains(got, "slo-alerts-checkout-requests") {
		t.Fatalf("groups %v", got)
	}
	waitFor(t, "the checkout SLO's 5m error ratio", 30*time.Second, func() bool {
		got := s.promQuery(t, `slo:sli_error:ratio_rate5m{sloth_service="checkout",sloth_slo="requests"}`)
		return len(got) == 1
	})
	if got := s.promQuery(t, `service:span_calls:total{service_name="checkout"}`); len(got) != 1 {
		t.Errorf("recording rule result: %v", got)
	}

	// SIGHUP picks up a new file matched by the glob.
	write("b.yml", secondGroup)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "five groups after SIGHUP", 10*time.Second, func() bool { return len(groupNames()) == 5 })

	// A broken file: the reload is refused, naming the file, and both
	// groups keep running.
	write("c.yml", "groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: sum(\n")
	resp, err := http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := readAll(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, "c.yml") {
		t.Errorf("reload with a broken file: %d %q", resp.StatusCode, msg)
	}
	if got := groupNames(); len(got) != 5 {
		t.Errorf("groups after a refused reload: %v", got)
	}

	// A reload is all or nothing: with a valid new rule file but a broken
	// alertmanager.yml, neither is applied.
	if err := os.Remove(filepath.Join(dir, "rules", "c.yml")); err != nil {
		t.Fatal(err)
	}
	write("d.yml", strings.ReplaceAll(secondGroup, "second", "third"))
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte("route: {receiver: nowhere}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(checkoutSLOConfig+"alertmanager_config_file: am.yml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg = readAll(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, "am.yml") {
		t.Errorf("reload with a broken alertmanager.yml: %d %q", resp.StatusCode, msg)
	}
	if got := groupNames(); len(got) != 5 || slices.Contains(got, "third") {
		t.Errorf("groups after a refused reload: %v", got)
	}
}

// Admin endpoints are off unless enabled.
func TestReloadIsOffByDefault(t *testing.T) {
	s := startServer(t, t.TempDir())
	resp, err := http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /-/reload without admin: %d, want 404 or 405", resp.StatusCode)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
