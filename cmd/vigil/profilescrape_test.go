package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

//go:noinline
func burnForScrape(stop *atomic.Bool) int {
	x := 0
	for !stop.Load() {
		for i := range 1 << 16 {
			x += i * i % 7
		}
	}
	return x
}

// TestProfileScrape runs vigil with a profile_scrape_configs job whose
// target is this test process's net/http/pprof, burning CPU: the pulled
// CPU profile answers /api/v1/profiles/top under the job's name, the
// target is up in /api/v1/profiles/targets, and a reload without the
// section stops it.
func TestProfileScrape(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	target := httptest.NewServer(mux)
	defer target.Close()
	var stop atomic.Bool
	burned := make(chan int)
	go func() { burned <- burnForScrape(&stop) }()
	defer func() { stop.Store(true); <-burned }()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	writeConfig := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(fmt.Sprintf(`profile_scrape_configs:
  - job_name: pulled
    scrape_interval: 3s
    static_configs:
      - targets: [%s]
    profiles:
      cpu: {seconds: 1}
`, strings.TrimPrefix(target.URL, "http://")))
	s := startServer(t, filepath.Join(dir, "data"), "--config", cfgPath, "--enable-admin")

	var top struct {
		Data struct {
			Functions []struct{ Name string }
		}
	}
	waitFor(t, "the pulled CPU profile in /api/v1/profiles/top", 60*time.Second, func() bool {
		return s.getJSON(t, "/api/v1/profiles/top?service=pulled&type=cpu", &top) == http.StatusOK && len(top.Data.Functions) > 0
	})
	if name := top.Data.Functions[0].Name; !strings.HasSuffix(name, ".burnForScrape") {
		t.Errorf("top function %q, want the burner", name)
	}

	type targets struct {
		Status string
		Data   struct {
			ActiveTargets []struct {
				ScrapePool, Health, LastError string
				Labels                        map[string]string
			}
		}
	}
	var ts targets
	waitFor(t, "the target up", 30*time.Second, func() bool {
		return s.getJSON(t, "/api/v1/profiles/targets", &ts) == http.StatusOK && len(ts.Data.ActiveTargets) == 1 &&
			ts.Data.ActiveTargets[0].Health == "up"
	}, func() string { return fmt.Sprintf("%+v", ts) })
	if got := ts.Data.ActiveTargets[0]; got.ScrapePool != "pulled" || got.Labels["instance"] != strings.TrimPrefix(target.URL, "http://") {
		t.Errorf("target %+v", got)
	}

	writeConfig("")
	if code, body := reloadNode(s); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if s.getJSON(t, "/api/v1/profiles/targets", &ts) != http.StatusOK || len(ts.Data.ActiveTargets) != 0 {
		t.Errorf("after a reload without the section: %+v", ts)
	}
}
