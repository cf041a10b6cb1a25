package scrape

import (
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// pollDeadline bounds every wait for scraped data. It is a failure bound,
// not a timing assertion: the waits normally end after one or two scrapes.
const pollDeadline = 60 * time.Second

const exposition = `# HELP test_requests_total Requests handled.
# TYPE test_requests_total counter
test_requests_total{code="200"} 42
test_requests_total{code="500"} 3
# HELP drop_me_bytes Dropped by metric_relabel_configs in one test.
# TYPE drop_me_bytes gauge
drop_me_bytes 7
`

// target is an httptest server exposing the fixed exposition, optionally
// guarded by a check on the request; rejected counts refused scrapes.
type target struct {
	srv      *httptest.Server
	rejected atomic.Int64
	served   atomic.Int64
}

func newTarget(t *testing.T, tlsServer bool, allow func(*http.Request) bool) *target {
	t.Helper()
	tg := &target{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow != nil && !allow(r) {
			tg.rejected.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		tg.served.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, exposition)
	})
	if tlsServer {
		tg.srv = httptest.NewTLSServer(h)
	} else {
		tg.srv = httptest.NewServer(h)
	}
	t.Cleanup(tg.srv.Close)
	return tg
}

// addr is the host:port Prometheus uses as the instance label.
func (tg *target) addr() string {
	return strings.TrimPrefix(strings.TrimPrefix(tg.srv.URL, "https://"), "http://")
}

// closedAddr returns an address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// loadConfig writes a Prometheus configuration to a file and loads it the
// way the server does, so relative paths and defaults behave as in vigil.
func loadConfig(t *testing.T, dir, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(path, false, nil)
	if err != nil {
		t.Fatalf("load config: %v\n%s", err, yaml)
	}
	return cfg
}

// startManager runs a Manager against db with the given configuration; it is
// stopped (before the TSDB closes) when the test ends.
func startManager(t *testing.T, db *tsdb.DB, cfg *config.Config) *Manager {
	t.Helper()
	m, err := New(Options{Appendable: db, DiscoveryUpdateInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := m.ApplyConfig(cfg); err != nil {
		t.Fatalf("ApplyConfig: %v", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run() }()
	t.Cleanup(func() {
		m.Stop()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m
}

// latest returns the newest sample of every series matching the matchers,
// keyed by the series' label set.
func latest(t *testing.T, db *tsdb.DB, ms ...*labels.Matcher) map[string]float64 {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]float64{}
	ss := q.Select(t.Context(), false, nil, ms...)
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		var v float64
		found := false
		for it.Next() == chunkenc.ValFloat {
			_, v = it.At()
			found = true
		}
		if found {
			out[s.Labels().String()] = v
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func eq(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, name, value)
}

// waitUp polls until the newest up sample of job/instance equals want.
func waitUp(t *testing.T, db *tsdb.DB, job, instance string, want float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("up{job=%q,instance=%q} == %v", job, instance, want), func() bool {
		got := latest(t, db, eq("__name__", "up"), eq("job", job), eq("instance", instance))
		return len(got) == 1 && firstValue(got) == want
	})
}

func firstValue(m map[string]float64) float64 {
	for _, v := range m {
		return v
	}
	return math.NaN()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const global = `global:
  scrape_interval: 300ms
  scrape_timeout: 300ms
`

func TestNewRequiresAppendable(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New without Appendable did not panic")
		}
	}()
	_, _ = New(Options{})
}

func TestStaticTargetProducesPrometheusSeries(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	tg := newTarget(t, false, nil)
	cfg := loadConfig(t, t.TempDir(), global+fmt.Sprintf(`scrape_configs:
  - job_name: static
    static_configs:
      - targets: [%q]
        labels:
          team: infra
`, tg.addr()))
	m := startManager(t, db, cfg)

	waitUp(t, db, "static", tg.addr(), 1)

	got := latest(t, db, eq("__name__", "test_requests_total"), eq("job", "static"))
	for _, want := range []struct {
		code  string
		value float64
	}{{"200", 42}, {"500", 3}} {
		key := labels.FromStrings("__name__", "test_requests_total", "code", want.code,
			"instance", tg.addr(), "job", "static", "team", "infra").String()
		if v, ok := got[key]; !ok || v != want.value {
			t.Errorf("series %s = %v (present %v), want %v; have %v", key, v, ok, want.value, got)
		}
	}

	// The synthetic series are written by Prometheus's scrape loop itself.
	for _, name := range []string{"scrape_duration_seconds", "scrape_samples_scraped",
		"scrape_samples_post_metric_relabeling", "scrape_series_added"} {
		s := latest(t, db, eq("__name__", name), eq("job", "static"), eq("instance", tg.addr()))
		if len(s) != 1 {
			t.Errorf("%s: got %v, want one series", name, s)
		}
	}
	scraped := latest(t, db, eq("__name__", "scrape_samples_scraped"), eq("job", "static"))
	if v := firstValue(scraped); v != 3 {
		t.Errorf("scrape_samples_scraped = %v, want 3", v)
	}

	if pools := m.ScrapePools(); len(pools) != 1 || pools[0] != "static" {
		t.Errorf("ScrapePools = %v, want [static]", pools)
	}
	active := m.TargetsActive()["static"]
	if len(active) != 1 || active[0].URL().Host != tg.addr() {
		t.Errorf("TargetsActive[static] = %v, want the one static target", active)
	}
	if sc, err := m.ScrapePoolConfig("static"); err != nil || sc.JobName != "static" {
		t.Errorf("ScrapePoolConfig(static) = %v, %v", sc, err)
	}
	if _, err := m.ScrapePoolConfig("missing"); err == nil {
		t.Error("ScrapePoolConfig(missing) succeeded, want an error")
	}
}

func TestDownTargetIsUpZero(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	addr := closedAddr(t)
	cfg := loadConfig(t, t.TempDir(), global+fmt.Sprintf(`scrape_configs:
  - job_name: down
    static_configs:
      - targets: [%q]
`, addr))
	startManager(t, db, cfg)

	waitUp(t, db, "down", addr, 0)
	scraped := latest(t, db, eq("__name__", "scrape_samples_scraped"), eq("job", "down"))
	if v := firstValue(scraped); v != 0 {
		t.Errorf("scrape_samples_scraped for a down target = %v, want 0", v)
	}
}

func TestRelabelling(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	tg := newTarget(t, false, nil)
	dropped := closedAddr(t)
	cfg := loadConfig(t, t.TempDir(), global+fmt.Sprintf(`scrape_configs:
  - job_name: relabel
    static_configs:
      - targets: [%q, %q]
    relabel_configs:
      - source_labels: [__address__]
        regex: %q
        action: drop
      - target_label: env
        replacement: prod
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: drop_me_.*
        action: drop
      - source_labels: [code]
        regex: "5.."
        target_label: class
        replacement: server_error
`, tg.addr(), dropped, dropped))
	m := startManager(t, db, cfg)

	waitUp(t, db, "relabel", tg.addr(), 1)

	// relabel_configs: target label added to every series of the target.
	up := latest(t, db, eq("__name__", "up"), eq("job", "relabel"))
	wantUp := labels.FromStrings("__name__", "up", "env", "prod", "instance", tg.addr(), "job", "relabel").String()
	if _, ok := up[wantUp]; !ok || len(up) != 1 {
		t.Errorf("up series = %v, want only %s", up, wantUp)
	}

	// metric_relabel_configs: drop_me_bytes dropped, class added to 5xx.
	if got := latest(t, db, eq("__name__", "drop_me_bytes")); len(got) != 0 {
		t.Errorf("drop_me_bytes stored despite metric_relabel_configs drop: %v", got)
	}
	reqs := latest(t, db, eq("__name__", "test_requests_total"), eq("job", "relabel"))
	want500 := labels.FromStrings("__name__", "test_requests_total", "class", "server_error", "code", "500",
		"env", "prod", "instance", tg.addr(), "job", "relabel").String()
	want200 := labels.FromStrings("__name__", "test_requests_total", "code", "200",
		"env", "prod", "instance", tg.addr(), "job", "relabel").String()
	if reqs[want500] != 3 || reqs[want200] != 42 || len(reqs) != 2 {
		t.Errorf("test_requests_total = %v, want %s=3 and %s=42", reqs, want500, want200)
	}
	post := latest(t, db, eq("__name__", "scrape_samples_post_metric_relabeling"), eq("job", "relabel"))
	if v := firstValue(post); v != 2 {
		t.Errorf("scrape_samples_post_metric_relabeling = %v, want 2", v)
	}

	// The dropped target never produced series and is reported as dropped.
	if got := latest(t, db, eq("instance", dropped)); len(got) != 0 {
		t.Errorf("dropped target has series: %v", got)
	}
	if n := m.TargetsDroppedCounts()["relabel"]; n != 1 {
		t.Errorf("TargetsDroppedCounts[relabel] = %d, want 1", n)
	}
	if d := m.TargetsDropped()["relabel"]; len(d) != 1 || d[0].DiscoveredLabels(labels.NewBuilder(labels.EmptyLabels())).Get("__address__") != dropped {
		t.Errorf("TargetsDropped[relabel] = %v, want the dropped address %s", d, dropped)
	}
}

func TestAuthenticatedTargets(t *testing.T) {
	tests := []struct {
		name  string
		allow func(*http.Request) bool
		auth  string // scrape config lines granting access
	}{
		{
			name: "basic_auth",
			allow: func(r *http.Request) bool {
				u, p, ok := r.BasicAuth()
				return ok && u == "scraper" && subtle.ConstantTimeCompare([]byte(p), []byte("s3cret")) == 1
			},
			auth: "    basic_auth:\n      username: scraper\n      password: s3cret\n",
		},
		{
			name: "bearer_token",
			allow: func(r *http.Request) bool {
				return r.Header.Get("Authorization") == "Bearer tok-123"
			},
			auth: "    authorization:\n      type: Bearer\n      credentials: tok-123\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
			tg := newTarget(t, false, tt.allow)
			// Two jobs on the same target: one with credentials, one without.
			// The target answers 401 to the latter, which must be up == 0.
			cfg := loadConfig(t, t.TempDir(), global+fmt.Sprintf(`scrape_configs:
  - job_name: with_creds
    static_configs:
      - targets: [%q]
%s  - job_name: without_creds
    static_configs:
      - targets: [%q]
`, tg.addr(), tt.auth, tg.addr()))
			startManager(t, db, cfg)

			waitUp(t, db, "with_creds", tg.addr(), 1)
			waitUp(t, db, "without_creds", tg.addr(), 0)
			if tg.rejected.Load() == 0 {
				t.Error("target never rejected a request; the negative case proves nothing")
			}
			got := latest(t, db, eq("__name__", "test_requests_total"), eq("job", "with_creds"))
			if len(got) != 2 {
				t.Errorf("authenticated scrape stored %v, want 2 series", got)
			}
			if got := latest(t, db, eq("__name__", "test_requests_total"), eq("job", "without_creds")); len(got) != 0 {
				t.Errorf("unauthenticated scrape stored %v", got)
			}
		})
	}
}

func TestFileSD(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	first := newTarget(t, false, nil)
	second := newTarget(t, false, nil)
	dir := t.TempDir()
	sdFile := filepath.Join(dir, "targets.json")
	writeSD := func(addr string) {
		t.Helper()
		body := fmt.Sprintf(`[{"targets": [%q], "labels": {"source": "file"}}]`, addr)
		// Write then rename so the watcher never reads a half-written file.
		tmp := sdFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, sdFile); err != nil {
			t.Fatal(err)
		}
	}
	writeSD(first.addr())

	cfg := loadConfig(t, dir, global+fmt.Sprintf(`scrape_configs:
  - job_name: filesd
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, sdFile))
	m := startManager(t, db, cfg)

	waitUp(t, db, "filesd", first.addr(), 1)
	src := latest(t, db, eq("__name__", "up"), eq("job", "filesd"), eq("source", "file"))
	if len(src) != 1 {
		t.Errorf("labels from the SD file missing: %v", src)
	}

	writeSD(second.addr())
	waitUp(t, db, "filesd", second.addr(), 1)
	waitFor(t, "the first target to leave the active set", func() bool {
		active := m.TargetsActive()["filesd"]
		return len(active) == 1 && active[0].URL().Host == second.addr()
	})
}

func TestTLSTarget(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	tg := newTarget(t, true, nil)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tg.srv.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, dir, global+fmt.Sprintf(`scrape_configs:
  - job_name: tls
    scheme: https
    tls_config:
      ca_file: %q
    static_configs:
      - targets: [%q]
  - job_name: tls_untrusted
    scheme: https
    static_configs:
      - targets: [%q]
`, caFile, tg.addr(), tg.addr()))
	startManager(t, db, cfg)

	waitUp(t, db, "tls", tg.addr(), 1)
	// Without the CA the certificate cannot be verified: proves ca_file is
	// what made the first job succeed.
	waitUp(t, db, "tls_untrusted", tg.addr(), 0)
	got := latest(t, db, eq("__name__", "test_requests_total"), eq("job", "tls"))
	if len(got) != 2 {
		t.Errorf("TLS scrape stored %v, want 2 series", got)
	}
}

func TestStopWithoutRunAndTwice(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	m, err := New(Options{Appendable: db})
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	m.Stop()
	if err := m.Run(); err != nil {
		t.Errorf("Run after Stop = %v, want nil", err)
	}
}

func TestApplyConfigNil(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	m, err := New(Options{Appendable: db})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if err := m.ApplyConfig(nil); err == nil {
		t.Error("ApplyConfig(nil) succeeded")
	}
}

func TestApplyConfigWhileRunning(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	tg := newTarget(t, false, nil)
	dir := t.TempDir()
	jobCfg := func(job string) *config.Config {
		return loadConfig(t, dir, global+fmt.Sprintf(`scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, job, tg.addr()))
	}
	m := startManager(t, db, jobCfg("before"))
	waitUp(t, db, "before", tg.addr(), 1)

	if err := m.ApplyConfig(jobCfg("after")); err != nil {
		t.Fatalf("ApplyConfig: %v", err)
	}
	waitUp(t, db, "after", tg.addr(), 1)
	waitFor(t, "the old pool to go", func() bool {
		p := m.ScrapePools()
		return len(p) == 1 && p[0] == "after"
	})
}

// A node that is not the one writing the shared store still scrapes (the
// target is known and scraped) but appends nothing, except for the
// targets it alone scrapes (Own); once it writes, the scrapes reach the
// store.
func TestWritingGatesAppends(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	tg := newTarget(t, false, nil)
	cfg := loadConfig(t, t.TempDir(), global+fmt.Sprintf(`scrape_configs:
  - job_name: gated
    static_configs:
      - targets: [%q]
  - job_name: own
    static_configs:
      - targets: [%q]
        labels: {registered_here: "yes"}
`, tg.addr(), tg.addr()))
	var writing atomic.Bool
	own := func(t *promscrape.Target) bool { return t.GetValue("registered_here") == "yes" }
	m, err := New(Options{Appendable: db, Writing: writing.Load, Own: own, DiscoveryUpdateInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run() }()
	t.Cleanup(func() {
		m.Stop()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	waitUp(t, db, "own", tg.addr(), 1)
	waitFor(t, "three scrapes of the target", func() bool { return tg.served.Load() >= 6 })
	if got := latest(t, db, eq("job", "gated")); len(got) != 0 {
		t.Fatalf("series written while not writing: %v", got)
	}
	writing.Store(true)
	waitUp(t, db, "gated", tg.addr(), 1)
	if got := latest(t, db, eq("__name__", "test_requests_total"), eq("job", "gated")); len(got) != 2 {
		t.Errorf("test_requests_total series %v, want the target's two", got)
	}
}
