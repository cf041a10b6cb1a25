package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// shopTrace is a trace as the Jaeger API returns it, reduced to what the
// fault checks need.
type shopTrace struct {
	id        string
	services  map[string]bool
	durations map[string]int64 // longest span per service, microseconds
}

// gatewayTraces follows the gateway's "order relayed" log records to their
// traces.
func gatewayTraces(t *testing.T, s *server) []shopTrace {
	var lr struct {
		Data []struct {
			TraceID string `json:"trace_id"`
		} `json:"data"`
	}
	q := url.Values{"service": {"gateway"}, "q": {"order relayed"}, "limit": {"20"}}
	if s.getJSON(t, "/api/logs?"+q.Encode(), &lr) != http.StatusOK {
		return nil
	}
	var out []shopTrace
	for _, rec := range lr.Data {
		var tr struct {
			Data []struct {
				Spans []struct {
					ProcessID string `json:"processID"`
					Duration  int64  `json:"duration"`
				} `json:"spans"`
				Processes map[string]struct {
					ServiceName string `json:"serviceName"`
				} `json:"processes"`
			} `json:"data"`
		}
		if rec.TraceID == "" || s.getJSON(t, "/api/traces/"+rec.TraceID, &tr) != http.StatusOK {
			continue
		}
		st := shopTrace{id: rec.TraceID, services: map[string]bool{}, durations: map[string]int64{}}
		for _, sp := range tr.Data[0].Spans {
			svc := tr.Data[0].Processes[sp.ProcessID].ServiceName
			st.services[svc] = true
			st.durations[svc] = max(st.durations[svc], sp.Duration)
		}
		out = append(out, st)
	}
	return out
}

// TestDemoFaultsVisibleInVigil runs the demo with each fault switch against
// a server that scrapes the shop, and finds the failure through vigil's own
// APIs, as a person investigating it would.
func TestDemoFaultsVisibleInVigil(t *testing.T) {
	for _, tc := range []struct {
		fault string
		what  string
		seen  func(t *testing.T, s *server, base int) bool
	}{
		{"drop-context", "orders traces that lack catalog (its spans start new traces)", func(t *testing.T, s *server, base int) bool {
			for _, tr := range gatewayTraces(t, s) {
				if tr.services["payments"] && tr.services["orders"] && !tr.services["catalog"] {
					return true
				}
			}
			return false
		}},
		{"log-without-context", "orders logs without trace ids", func(t *testing.T, s *server, base int) bool {
			var lr struct {
				Data []struct {
					TraceID string `json:"trace_id"`
				} `json:"data"`
			}
			if s.getJSON(t, "/api/logs?service=orders&limit=20", &lr) != http.StatusOK || len(lr.Data) == 0 {
				return false
			}
			for _, r := range lr.Data {
				if r.TraceID != "" {
					t.Errorf("orders log with a trace id under log-without-context")
					return true
				}
			}
			return true
		}},
		{"slow-payments", "payment spans of 300ms or more", func(t *testing.T, s *server, base int) bool {
			for _, tr := range gatewayTraces(t, s) {
				if tr.durations["payments"] >= 300_000 {
					return true
				}
			}
			return false
		}},
		{"errors", "502 answers in the scraped RED metrics", func(t *testing.T, s *server, base int) bool {
			r := s.promQuery(t, fmt.Sprintf(`sum(http_server_request_duration_seconds_count{instance="127.0.0.1:%d",status_code="502"})`, base))
			return len(r) == 1 && r[0].Value[1] != "0"
		}},
		{"panic", "500s recorded for catalog's panicking route", func(t *testing.T, s *server, base int) bool {
			r := s.promQuery(t, fmt.Sprintf(`sum(http_server_request_duration_seconds_count{instance="127.0.0.1:%d",route="/products/{id}",status_code="500"})`, base+1))
			return len(r) == 1 && r[0].Value[1] != "0"
		}},
		{"unregistered-metrics", "catalog scraped (up=1) without runtime series", func(t *testing.T, s *server, base int) bool {
			catalog := fmt.Sprintf("127.0.0.1:%d", base+1)
			up := s.promQuery(t, fmt.Sprintf(`up{instance=%q}`, catalog))
			gw := s.promQuery(t, fmt.Sprintf(`go_goroutines{instance="127.0.0.1:%d"}`, base))
			if len(up) != 1 || up[0].Value[1] != "1" || len(gw) != 1 {
				return false
			}
			if r := s.promQuery(t, fmt.Sprintf(`go_goroutines{instance=%q}`, catalog)); len(r) != 0 {
				t.Errorf("catalog exposes go_goroutines under unregistered-metrics")
			}
			return true
		}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			base := testport.Run(t, 4)
			cfg := filepath.Join(t.TempDir(), "vigil.yaml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: ["127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d"]
`, base, base+1, base+2, base+3)), 0o600); err != nil {
				t.Fatal(err)
			}
			s := startServer(t, t.TempDir(), "--config", cfg)
			startDemo(t, s, base, "--fault", tc.fault)
			waitFor(t, tc.what, 90*time.Second, func() bool { return tc.seen(t, s, base) })
		})
	}
}
