package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every link vigil hands out to itself starts with the one external URL
// derived from http_addr: an alert's generator URL (which opens the
// expression in vigil's UI, not in a Prometheus's /graph), the
// notification's externalURL that templates read, and the Prometheus
// API's web.external-url.
func TestOneExternalURL(t *testing.T) {
	var mu sync.Mutex
	var got []struct {
		ExternalURL string
		Alerts      []struct{ GeneratorURL string }
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, struct {
			ExternalURL string
			Alerts      []struct{ GeneratorURL string }
		}{})
		_ = json.NewDecoder(r.Body).Decode(&got[len(got)-1])
	}))
	defer hook.Close()

	dir := t.TempDir()
	for name, body := range map[string]string{
		"vigil.yaml":       "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalertmanager_config_file: alertmanager.yml\n",
		"rules.yml":        "groups:\n  - name: test\n    rules:\n      - alert: Always\n        expr: vector(1) > 0\n",
		"alertmanager.yml": fmt.Sprintf("route:\n  receiver: hook\n  group_wait: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: %q\n", hook.URL),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, filepath.Join(dir, "data"), "--config", filepath.Join(dir, "vigil.yaml"))
	ext := s.httpURL // --http-addr is 127.0.0.1:<port>, without TLS

	waitFor(t, "a notification of Always", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	n := got[0]
	mu.Unlock()
	if n.ExternalURL != ext {
		t.Errorf("notification externalURL %q, want %q", n.ExternalURL, ext)
	}
	wantGenerator := ext + "/explore?" + url.Values{"query": {"vector(1) > 0"}}.Encode()
	if len(n.Alerts) != 1 || n.Alerts[0].GeneratorURL != wantGenerator {
		t.Errorf("notification alerts %+v, want one with generatorURL %q", n.Alerts, wantGenerator)
	}

	var flags struct{ Data map[string]string }
	if code := s.getJSON(t, "/api/v1/status/flags", &flags); code != http.StatusOK || flags.Data["web.external-url"] != ext {
		t.Errorf("/api/v1/status/flags: HTTP %d, web.external-url %q, want %q", code, flags.Data["web.external-url"], ext)
	}
	// The UI serves the page the generator URL names.
	resp, err := http.Get(wantGenerator)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET %s: HTTP %d %s, want the UI's page", wantGenerator, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
