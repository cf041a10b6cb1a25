package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// TestDoctorFindsBrokenSeams: a scrape target nobody listens on and a rule
// over a misspelled metric are silent failures; the doctor names both with
// their fix, in /api/doctor, in vigil_doctor_findings and from `vigil
// doctor`, which exits 1 on a critical finding.
func TestDoctorFindsBrokenSeams(t *testing.T) {
	t.Parallel()
	// Claimed and never bound: a port picked by listening on port 0 and
	// closing it may be given to another test's listener meanwhile.
	dead := testport.Addr(t)

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 500ms
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: gone
    static_configs:
      - targets: [%q]
`, dead)
	rules := `groups:
  - name: shop
    rules:
      - alert: TooManyErrors
        expr: rate(traces_span_metrics_calls_totl[5m]) > 0
`
	for name, body := range map[string]string{"vigil.yaml": cfg, "rules.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, filepath.Join(dir, "data"), "--config", filepath.Join(dir, "vigil.yaml"))
	// Some series exist, so "closest names" has something to offer.
	postErrorSpan(t, s, "checkout")

	var rep struct {
		Findings []struct {
			Code, Severity, Subject, Cause, Fix string
			Evidence                            struct{ Summary string }
		}
	}
	waitFor(t, "target_down for the dead target", 30*time.Second, func() bool {
		if s.getJSON(t, "/api/doctor?refresh=1", &rep) != 200 {
			return false
		}
		for _, f := range rep.Findings {
			if f.Code == "target_down" && strings.Contains(f.Subject, dead) {
				return f.Severity == "critical" && strings.Contains(f.Evidence.Summary, "refused") && f.Fix != ""
			}
		}
		return false
	})
	// Rules are judged once the store holds a couple of minutes of
	// history: before that, span metrics may not be flushed yet.
	s.waitForFinding(t, "rule_no_series for the misspelled metric", 3*time.Minute, func(f docFinding) bool {
		return f.Code == "rule_no_series" && f.Subject == "shop/TooManyErrors"
	})

	var out, errOut bytes.Buffer
	cmd := exec.Command(vigilBin, "doctor", "--server", s.httpURL)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("vigil doctor exit: %v (stderr %s), want 1 for a critical finding", err, errOut.String())
	}
	if !strings.Contains(out.String(), "CRITICAL  target_down") || !strings.Contains(out.String(), "fix:") {
		t.Errorf("vigil doctor output:\n%s", out.String())
	}
	out.Reset()
	cmd = exec.Command(vigilBin, "doctor", "--server", s.httpURL, "--format", "json")
	cmd.Stdout = &out
	_ = cmd.Run()
	var asJSON map[string]any
	if err := json.Unmarshal(out.Bytes(), &asJSON); err != nil || asJSON["findings"] == nil {
		t.Errorf("vigil doctor --format json: %v\n%s", err, out.String())
	}
	metrics := readAll(t, mustGet(t, s.httpURL+"/metrics"))
	if !strings.Contains(metrics, `vigil_doctor_findings{code="target_down",severity="critical",subject="gone http://`+dead+`/metrics"} 1`) {
		t.Errorf("vigil_doctor_findings for the dead target missing from /metrics")
	}
}

func mustGet(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
