package promapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"

	vigilscrape "github.com/vigil-observability/vigil/internal/ingest/scrape"
	vigilstorage "github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// TestWithScrapeManager wires the API to vigil's real scrape manager, as
// cmd/vigil does, and checks targets, target metadata and scraped data.
func TestWithScrapeManager(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP demo_jobs_total Jobs run.\n# TYPE demo_jobs_total counter\ndemo_jobs_total 5\n")
	}))
	defer target.Close()
	addr := strings.TrimPrefix(target.URL, "http://")

	// One registry for everything, as in vigil: the metric names of the
	// TSDB, the scrape and discovery managers and the API must not clash.
	reg := prometheus.NewRegistry()
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{Registerer: reg})

	cfg, err := config.Load(fmt.Sprintf(`global:
  scrape_interval: 300ms
  scrape_timeout: 300ms
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [%q]
`, addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := vigilscrape.New(vigilscrape.Options{Appendable: db, Registerer: reg, DiscoveryUpdateInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- sm.Run() }()
	defer func() {
		sm.Stop()
		if err := <-runErr; err != nil {
			t.Errorf("scrape Run: %v", err)
		}
	}()

	h := newHandler(t, Options{
		Queryable:     db,
		TSDB:          vigilstorage.TSDBCapabilities(db).Admin,
		Registerer:    reg,
		Targets:       sm,
		Config:        func() config.Config { return *cfg },
		ListenAddress: "127.0.0.1:9090",
	})

	// A failure bound, not a timing assertion.
	deadline := time.Now().Add(60 * time.Second)
	want := []struct{ path, contains string }{
		{"/targets", `"health":"up"`},
		{"/targets", `"scrapeUrl":"http://` + addr + `/metrics"`},
		{"/targets/metadata?match_target=" + escape(`{job="demo"}`), `"metric":"demo_jobs_total","type":"counter","help":"Jobs run.","unit":""`},
		{"/metadata?metric=demo_jobs_total", `{"demo_jobs_total":[{"type":"counter","unit":"","help":"Jobs run."}]}`},
		{"/query?query=" + escape(`demo_jobs_total{job="demo"}`), `"value":[`},
		{"/query?query=" + escape(`up{job="demo"}`), `"1"]`},
		{"/scrape_pools", `{"scrapePools":["demo"]}`},
		{"/status/config", `job_name: demo`},
		{"/status/tsdb", `"seriesCountByMetricName":[`},
		{"/status/self_metrics?metric_name_pattern=prometheus_sd_.*", `prometheus_sd_`},
	}
	for _, w := range want {
		for {
			code, body := get(t, h, "", w.path)
			if code == http.StatusOK && strings.Contains(string(body), w.contains) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %s, want it to contain %s", w.path, describe(code, body), w.contains)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
