package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// TestDemoSLOPagesUnderErrorsFault runs the example configuration (the
// payments charge SLO and the shop's rules) with the demo shop failing
// every fifth charge, and waits for the SLO's page alert: a 20% error ratio
// burns a 99.9% objective's budget 200 times too fast, above 14.4x on both
// the 1h and the 5m window.
func TestDemoSLOPagesUnderErrorsFault(t *testing.T) {
	cfg, err := filepath.Abs("../../examples/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "--config", cfg)
	startDemo(t, s, testport.Run(t, 4), "--fault", "errors")

	type alert struct {
		Labels map[string]string
		State  string
	}
	var alerts struct{ Data struct{ Alerts []alert } }
	waitFor(t, "the payments SLO's page alert firing", 4*time.Minute, func() bool {
		if s.getJSON(t, "/api/v1/alerts", &alerts) != http.StatusOK {
			return false
		}
		for _, a := range alerts.Data.Alerts {
			if a.Labels["alertname"] == "PaymentsChargeBudgetBurn" && a.Labels["sloth_severity"] == "page" && a.State == "firing" {
				if a.Labels["severity"] != "critical" || a.Labels["sloth_service"] != "payments" || a.Labels["sloth_slo"] != "charge-errors" {
					t.Errorf("page alert labels %v", a.Labels)
				}
				return true
			}
		}
		return false
	})
	got := s.promQuery(t, `slo:sli_error:ratio_rate5m{sloth_service="payments",sloth_slo="charge-errors"}`)
	if len(got) != 1 {
		t.Fatalf("payments 5m error ratio: %v", got)
	}
	// Every fifth charge fails.
	v, err := strconv.ParseFloat(fmt.Sprint(got[0].Value[1]), 64)
	if err != nil || v < 0.1 || v > 0.3 {
		t.Errorf("payments 5m error ratio %v, want about 0.2", got[0].Value[1])
	}
}
