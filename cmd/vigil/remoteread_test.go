package main

import (
	"context"
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

// TestPrometheusRemoteRead runs Debian's prometheus with vigil as its
// remote_read endpoint, as docs/api.md configures it, and reads vigil's
// series through Prometheus's query API. The Prometheus has external
// labels: with filter_external_labels left at its default (true) it asks
// vigil only for series carrying them and finds nothing, which is why the
// docs say to turn it off.
func TestPrometheusRemoteRead(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("this test runs the real Prometheus as a remote_read client: apt-get install prometheus")
	}
	// vigil scrapes itself, so it holds up{job="vigil"}.
	dir := t.TempDir()
	httpAddr := testport.Addr(t)
	vigilCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: [%q]
`, httpAddr)
	if err := os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(vigilCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--config", filepath.Join(dir, "vigil.yaml"), "--http-addr", httpAddr)
	waitFor(t, "vigil's own scrape", time.Minute, func() bool { return len(s.promQuery(t, `up{job="vigil"}`)) == 1 })

	for _, tc := range []struct {
		filter bool
		want   int // series of up{job="vigil"} Prometheus finds
	}{
		{filter: false, want: 1},
		{filter: true, want: 0},
	} {
		t.Run(fmt.Sprintf("filter_external_labels=%v", tc.filter), func(t *testing.T) {
			pdir := t.TempDir()
			promAddr := testport.Addr(t)
			cfg := fmt.Sprintf(`global:
  external_labels:
    cluster: eu-1
remote_read:
  - url: %s/api/v1/read
    read_recent: true
    filter_external_labels: %v
`, s.httpURL, tc.filter)
			if err := os.WriteFile(filepath.Join(pdir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			prom := exec.CommandContext(ctx, promBin,
				"--config.file="+filepath.Join(pdir, "prometheus.yml"),
				"--storage.tsdb.path="+filepath.Join(pdir, "data"),
				"--web.listen-address="+promAddr)
			out := &syncBuffer{}
			prom.Stdout, prom.Stderr = out, out
			if err := prom.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cancel()
				_ = prom.Wait()
				if t.Failed() {
					t.Logf("prometheus output:\n%s", out.String())
				}
			}()
			p := &server{httpURL: "http://" + promAddr}
			waitFor(t, "prometheus ready", time.Minute, func() bool {
				resp, err := http.Get(p.httpURL + "/-/ready")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
			got := p.promQuery(t, `up{job="vigil"}`)
			if len(got) != tc.want {
				t.Fatalf("up{job=\"vigil\"} through Prometheus: %d series, want %d: %v", len(got), tc.want, got)
			}
			if strings.Contains(out.String(), "level=error") {
				t.Errorf("prometheus logged errors")
			}
		})
	}
}
