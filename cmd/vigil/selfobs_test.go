package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// TestScrapeConfigAndSelfMetrics runs vigil with a scrape_configs file
// against a target in this process, then checks the Prometheus series the
// scrape produces and vigil's own metrics after some ingest.
func TestScrapeConfigAndSelfMetrics(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE shop_orders_total counter\nshop_orders_total{status=\"paid\"} 42\n")
	}))
	defer target.Close()
	cfg := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(target.URL, "http://"))), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "--config", cfg)

	waitFor(t, "the shop target to be scraped", time.Minute, func() bool {
		up := s.promQuery(t, `up{job="shop"}`)
		orders := s.promQuery(t, `shop_orders_total{job="shop",status="paid"}`)
		dur := s.promQuery(t, `scrape_duration_seconds{job="shop"}`)
		return len(up) == 1 && up[0].Value[1] == "1" && len(orders) == 1 && orders[0].Value[1] == "42" && len(dur) == 1
	})

	g := loadgen.New(1)
	td, _ := g.Traces(10, 5, time.Now())
	if err := loadgen.PostTraces(t.Context(), http.DefaultClient, s.otlpHTTPURL, td); err != nil {
		t.Fatal(err)
	}
	if err := loadgen.PostLogs(t.Context(), http.DefaultClient, s.otlpHTTPURL, g.Logs(20, time.Now(), nil)); err != nil {
		t.Fatal(err)
	}
	if err := loadgen.PostRemoteWrite(t.Context(), http.DefaultClient, s.httpURL+"/api/v1/write", g.WriteRequest("selfobs_test", 7, time.Now())); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(s.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(body)
	for _, want := range []string{
		`vigil_received_total{signal="traces"} 50`,
		`vigil_stored_total{signal="traces"} 50`,
		`vigil_received_total{signal="logs"} 20`,
		`vigil_stored_total{signal="logs"} 20`,
		`vigil_stored_total{signal="metrics"} 7`,
		`vigil_queue_depth{signal="traces"} 0`,
		`vigil_storage_write_duration_seconds_count{signal="traces"} 1`,
		`vigil_storage_bytes{store="duckdb"}`,
		`vigil_storage_bytes{store="tsdb"}`,
		`vigil_storage_bytes{store="profiles"}`,
		`vigil_build_info{goversion="go`,
		`prometheus_tsdb_head_series`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The server logs structured JSON.
	if first, _, _ := strings.Cut(s.logs.String(), "\n"); !strings.HasPrefix(first, `{"time":`) {
		t.Errorf("first log line is not JSON: %q", first)
	}
}
