package promremote

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
	"github.com/vigil-observability/vigil/internal/testport"
)

const prometheusBinary = "/usr/bin/prometheus"

// TestRealPrometheusRemoteWrite runs the Debian prometheus binary, lets it
// scrape itself every second and remote_write to the handler, and reads the
// result back from the TSDB through the real PromQL engine.
func TestRealPrometheusRemoteWrite(t *testing.T) {
	if _, err := os.Stat(prometheusBinary); err != nil {
		t.Fatalf("%s not found (%v): this test needs the real Prometheus server; install it with `apt-get install prometheus`", prometheusBinary, err)
	}

	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	reg := prometheus.NewRegistry()
	im := selfobs.NewIngestMetrics(reg)
	srv := httptest.NewServer(NewHandler(Options{Appendable: db, Ingest: im, Registerer: reg}))
	t.Cleanup(srv.Close)

	promAddr := testport.Addr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    sender: itest
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 1s
`, promAddr, srv.URL+Path)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var out lockedBuffer
	cmd := exec.CommandContext(ctx, prometheusBinary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cancel()
		<-exited
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 30 * time.Second, LookbackDelta: 5 * time.Minute})
	query := func(q string) promql.Vector {
		qry, err := engine.NewInstantQuery(t.Context(), db, nil, q, time.Now())
		if err != nil {
			t.Fatalf("parse %s: %v", q, err)
		}
		defer qry.Close()
		res := qry.Exec(t.Context())
		if res.Err != nil {
			t.Fatalf("query %s: %v", q, res.Err)
		}
		v, err := res.Vector()
		if err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		return v
	}

	// Waiting, not timing: the deadline only bounds how long a broken setup
	// takes to fail.
	deadline := time.Now().Add(90 * time.Second)
	wantQueries := []string{
		`up{job="prometheus", sender="itest"} == 1`,
		`prometheus_build_info{job="prometheus", version!=""}`,
		`prometheus_remote_storage_samples_total`,
		// Several scrapes, so that later batches were appended after earlier ones.
		`count_over_time(up{job="prometheus"}[5m]) >= 3`,
	}
	var missing string
	for {
		missing = ""
		for _, q := range wantQueries {
			if len(query(q)) == 0 {
				missing = q
				break
			}
		}
		if missing == "" {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited early (%v) before %s appeared; output:\n%s", err, missing, out.String())
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not in the TSDB after 90s; prometheus output:\n%s", missing, out.String())
		}
	}
	stop()

	up := query(`up{job="prometheus"}`)
	if len(up) != 1 || up[0].F != 1 || up[0].Metric.Get("instance") != promAddr {
		t.Fatalf("up = %v, want one series up{instance=%q} = 1", up, promAddr)
	}
	info := query(`prometheus_build_info`)
	if len(info) != 1 || info[0].Metric.Get("goversion") == "" {
		t.Fatalf("prometheus_build_info = %v, want one series with goversion", info)
	}
	// Successive batches were appended in order: a counter Prometheus bumps
	// on every scrape is seen growing.
	if v := query(`increase(prometheus_tsdb_head_samples_appended_total[5m])`); len(v) == 0 || v[0].F <= 0 {
		t.Errorf("increase(prometheus_tsdb_head_samples_appended_total[5m]) = %v, want > 0", v)
	}
	if stored := testutil.ToFloat64(im.Stored.WithLabelValues("metrics")); stored < 100 {
		t.Errorf("vigil_stored_total{signal=metrics} = %v, want well over 100 samples from a Prometheus scrape", stored)
	}
	if n := testutil.ToFloat64(im.Received.WithLabelValues("metrics")); n < testutil.ToFloat64(im.Stored.WithLabelValues("metrics")) {
		t.Errorf("received %v < stored; received must count every sample", n)
	}
	// Every request Prometheus sent was answered 204: nothing was refused.
	if codes := requestCodes(t, reg); len(codes) != 1 || codes["204"] == 0 {
		t.Errorf("remote_write answers by status = %v, want only 204", codes)
	}
}

func requestCodes(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_remote_write_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					codes[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return codes
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
