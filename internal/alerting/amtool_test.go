package alerting

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAmtool drives the API with Debian's amtool, as an operator would.
// CI installs it (package prometheus-alertmanager); there a missing amtool
// fails the test instead of skipping it.
func TestAmtool(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("amtool not installed (Debian package prometheus-alertmanager); CI must install it")
		}
		t.Skip("amtool not installed (Debian package prometheus-alertmanager)")
	}
	rcv := newReceiver(t)
	dir := t.TempDir()
	am := start(t, writeConfig(t, dir, onceConfig, rcv.srv.URL), filepath.Join(dir, "data"))
	am.Send(firing(map[string]string{"alertname": "PaymentsErrorBudgetBurn", "service": "payments"},
		map[string]string{"summary": "payments is burning its error budget"}))

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(amtool, append([]string{"--alertmanager.url=" + am.api.URL}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir) // no amtool config from the machine
		var stderr strings.Builder
		cmd.Stderr = &stderr // a version-mismatch warning goes there
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}

	if out := run("alert", "query"); !strings.Contains(out, "PaymentsErrorBudgetBurn") || !strings.Contains(out, "payments is burning") {
		t.Fatalf("amtool alert query:\n%s", out)
	}

	id := strings.TrimSpace(run("silence", "add", "alertname=PaymentsErrorBudgetBurn", "service=payments",
		"--author=oncall", "--comment=deploying the fix", "--duration=2h"))
	if s, ok := am.silencesByID(t)[id]; !ok || s.Status.State != "active" || s.Comment != "deploying the fix" {
		t.Fatalf("silence %q from amtool: %+v (found %v)", id, s, ok)
	}
	if out := run("silence", "query", "-q"); strings.TrimSpace(out) != id {
		t.Fatalf("amtool silence query -q: %q, want %q", out, id)
	}

	// The alert now shows as silenced; amtool lists active alerts only by
	// default.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := run("alert", "query", "--silenced")
		if strings.Contains(out, "PaymentsErrorBudgetBurn") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("amtool alert query --silenced:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	run("silence", "expire", id)
	if s := am.silencesByID(t)[id]; s.Status.State != "expired" {
		t.Fatalf("after amtool silence expire: %+v", s)
	}
	// The running config, from /api/v2/status. (amtool 0.25's "config
	// routes" cannot parse a newer Alertmanager's masked webhook URL, with
	// Alertmanager itself as with vigil.)
	if out := run("config", "show"); !strings.Contains(out, "receiver: hook") {
		t.Errorf("amtool config show:\n%s", out)
	}
}
