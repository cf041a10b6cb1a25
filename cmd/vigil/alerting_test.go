package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhookSink records Alertmanager webhook payloads.
type webhookSink struct {
	mu       sync.Mutex
	payloads []webhookPayload
}

type webhookPayload struct {
	Status      string
	Receiver    string
	GroupLabels map[string]string
	Alerts      []struct {
		Status      string
		Labels      map[string]string
		Annotations map[string]string
	}
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var p webhookPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err == nil {
		w.mu.Lock()
		w.payloads = append(w.payloads, p)
		w.mu.Unlock()
	}
	rw.WriteHeader(http.StatusOK)
}

func (w *webhookSink) received() []webhookPayload {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookPayload(nil), w.payloads...)
}

// TestAlertsRouteToWebhookAndAmtool: a rule fires, the built-in
// Alertmanager routes it by its labels to a webhook with the right labels
// and annotations, amtool lists it and adds a silence, and the silence is
// still there after kill -9.
func TestAlertsRouteToWebhookAndAmtool(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("amtool missing: .ci/run installs Debian's prometheus-alertmanager")
		}
		t.Skip("amtool not installed (Debian package prometheus-alertmanager)")
	}
	sink := &webhookSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()

	dir := t.TempDir()
	files := map[string]string{
		"vigil.yaml": "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalertmanager_config_file: alertmanager.yml\n",
		"rules.yml": `groups:
  - name: test
    rules:
      - alert: CheckoutDown
        expr: vector(1)
        labels: {severity: page, team: shop}
        annotations: {summary: "checkout is down"}
      - alert: Unrouted
        expr: vector(1)
        labels: {team: nobody}
`,
		"alertmanager.yml": fmt.Sprintf(`route:
  receiver: blackhole
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['team="shop"']
      receiver: shop-hook
receivers:
  - name: blackhole
  - name: shop-hook
    webhook_configs:
      - url: %q
        send_resolved: false
`, hook.URL),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "vigil.yaml")
	s := startServer(t, dataDir, "--config", cfg)

	waitFor(t, "one webhook notification for CheckoutDown", 30*time.Second, func() bool { return len(sink.received()) > 0 })
	time.Sleep(3 * time.Second) // group_interval passes; the group must not be sent again
	got := sink.received()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want exactly 1: %+v", len(got), got)
	}
	p := got[0]
	if p.Receiver != "shop-hook" || len(p.Alerts) != 1 || p.Alerts[0].Labels["alertname"] != "CheckoutDown" ||
		p.Alerts[0].Labels["severity"] != "page" || p.Alerts[0].Annotations["summary"] != "checkout is down" {
		t.Errorf("notification %+v", p)
	}

	// The doctor sees that Unrouted's alerts reach nobody.
	var rep struct {
		Findings []struct{ Code, Severity, Subject string }
	}
	if s.getJSON(t, "/api/doctor?refresh=1", &rep) != http.StatusOK ||
		!slices.ContainsFunc(rep.Findings, func(f struct{ Code, Severity, Subject string }) bool {
			return f.Code == "alert_unrouted" && f.Subject == "test/Unrouted" && f.Severity == "critical"
		}) {
		t.Errorf("doctor findings %+v: want alert_unrouted for test/Unrouted", rep.Findings)
	}

	url := "--alertmanager.url=" + s.httpURL
	out, err := exec.Command(amtool, url, "alert", "query", "-o", "simple").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CheckoutDown") || !strings.Contains(string(out), "Unrouted") {
		t.Fatalf("amtool alert query: %v\n%s", err, out)
	}
	out, err = exec.Command(amtool, url, "silence", "add", "alertname=CheckoutDown", "--duration=2h",
		"--author=test", "--comment=maintenance").CombinedOutput()
	if err != nil {
		t.Fatalf("amtool silence add: %v\n%s", err, out)
	}
	id := strings.TrimSpace(lastLine(string(out)))

	// The silence was saved before amtool got its id: it survives kill -9.
	s.kill9(t)
	s = startServer(t, dataDir, "--config", cfg)
	out, err = exec.Command(amtool, "--alertmanager.url="+s.httpURL, "silence", "query", "-q").CombinedOutput()
	if err != nil || !strings.Contains(string(out), id) {
		t.Fatalf("silence %s after kill -9: %v\n%s", id, err, out)
	}
	var alerts []struct {
		Labels map[string]string
		Status struct {
			State      string
			SilencedBy []string
		}
	}
	waitFor(t, "CheckoutDown suppressed by the silence after the restart", 30*time.Second, func() bool {
		resp, err := http.Get(s.httpURL + "/api/v2/alerts")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if json.Unmarshal(body, &alerts) != nil {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "CheckoutDown" {
				return a.Status.State == "suppressed" && len(a.Status.SilencedBy) == 1 && a.Status.SilencedBy[0] == id
			}
		}
		return false
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
