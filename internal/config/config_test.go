package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/discovery/file"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

func TestLoadGood(t *testing.T) {
	c, err := Load("testdata/good.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "0.0.0.0:7070" || c.OTLPGRPCAddr != "localhost:4317" {
		t.Errorf("addresses: %q %q", c.HTTPAddr, c.OTLPGRPCAddr)
	}
	if want := filepath.Join("testdata", "data"); c.DataDir != want {
		t.Errorf("data_dir = %q, want %q (relative to the config file)", c.DataDir, want)
	}
	l := c.IngestLimits()
	if l.MaxRequestBytes != 4<<20 || l.MaxLabelsPerSeries != 32 || l.MaxPastAge != 72*time.Hour {
		t.Errorf("limits = %+v", l)
	}
	if l.MaxAttributesPerItem == 0 {
		t.Error("unset limits must take defaults")
	}
	if c.Limits.MaxLineBytes != 64<<10 || c.Limits.MaxLabelsPerStream != 0 {
		t.Errorf("Loki line and label limits = %v, %d", c.Limits.MaxLineBytes, c.Limits.MaxLabelsPerStream)
	}
	if sl := c.StreamLimits(); sl.MaxPerTenant != 2000 || sl.MaxPerService != -1 || sl.Window != 30*time.Minute {
		t.Errorf("stream limits = %+v, want 2000 per tenant, none per service, 30m", sl)
	}
	if d := time.Duration(c.Doctor.Interval); d != 30*time.Second {
		t.Errorf("doctor.interval = %v, want 30s", d)
	}
	scs, err := c.Prometheus.GetScrapeConfigs()
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 {
		t.Fatalf("%d scrape configs, want 2", len(scs))
	}
	// Prometheus's defaults and the global section apply as in Prometheus.
	if got := time.Duration(scs[0].ScrapeInterval); got != 10*time.Second {
		t.Errorf("app interval = %v, want the global 10s", got)
	}
	if got := time.Duration(scs[0].ScrapeTimeout); got != 10*time.Second {
		t.Errorf("app timeout = %v, want 10s (Prometheus caps the default timeout at the interval)", got)
	}
	if got := time.Duration(scs[1].ScrapeInterval); got != 5*time.Second {
		t.Errorf("files interval = %v, want 5s", got)
	}
	if len(c.ProfileScrape) != 1 {
		t.Fatalf("%d profile scrape jobs, want 1", len(c.ProfileScrape))
	}
	ps := c.ProfileScrape[0]
	if ps.JobName != "shop" || time.Duration(ps.ScrapeInterval) != 10*time.Second || *ps.Profiles["block"].Enabled || !*ps.Profiles["cpu"].Enabled {
		t.Errorf("profile scrape job %+v", ps)
	}
	if psd := ps.ServiceDiscoveryConfigs[0].(*file.SDConfig); !strings.HasSuffix(psd.Files[0], filepath.Join("testdata", "targets", "*.json")) {
		t.Errorf("profile scrape file_sd path = %q, want it resolved against the config dir", psd.Files[0])
	}
	sd := scs[1].ServiceDiscoveryConfigs[0].(*file.SDConfig)
	if want, _ := filepath.Abs(filepath.Join("testdata", "targets", "*.json")); !strings.HasSuffix(sd.Files[0], filepath.Join("testdata", "targets", "*.json")) {
		t.Errorf("file_sd path = %q, want it resolved against the config dir (%s)", sd.Files[0], want)
	}
}

func TestDefaultsWithoutFile(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"http": c.HTTPAddr, "grpc": c.OTLPGRPCAddr, "otlp http": c.OTLPHTTPAddr} {
		if !strings.HasPrefix(addr, "localhost:") {
			t.Errorf("%s listener %q: listeners must default to localhost", name, addr)
		}
	}
	if time.Duration(c.Retention) != 7*24*time.Hour {
		t.Errorf("retention = %v, want 7d", c.Retention)
	}
	if d := time.Duration(c.Doctor.Interval); d != time.Minute {
		t.Errorf("doctor.interval = %v, want 1m", d)
	}
	if d := time.Duration(c.ShutdownTimeout); d != DefaultShutdownTimeout {
		t.Errorf("shutdown_timeout = %v, want %v", d, DefaultShutdownTimeout)
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, nil)
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if c.DataDir != Defaults().DataDir {
		t.Errorf("data_dir = %q: the default must stay relative to the working directory, not the file", c.DataDir)
	}
}

func TestLoadBad(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"bad_unknown_field.yaml", "field http_adr not found"},
		{"bad_retention.yaml", "shorter than 1h"},
		{"bad_backend.yaml", `"cassandra"`},
		{"bad_addr.yaml", "http_addr"},
		{"bad_scrape_timeout.yaml", "scrape timeout greater than scrape interval"},
		{"bad_duplicate_job.yaml", "found multiple scrape configs with job name"},
		{"bad_negative_limit.yaml", "must not be negative"},
		{"bad_doctor_interval.yaml", "doctor.interval 2s"},
		{"bad_shutdown_timeout.yaml", "shutdown_timeout 100ms"},
		{"bad_clickhouse_dsn.yaml", "storage.clickhouse.dsn"},
		{"bad_web_config_no_users.yaml", "no basic_auth_users and no bearer_tokens"},
		{"bad_web_config_missing.yaml", "no_such_web.yml"},
		{"bad_web_config_role.yaml", `unknown role "write"`},
		{"bad_memory_limit_small.yaml", "below the minimum of 256MiB"},
		{"bad_memory_limit_duckdb.yaml", "leaves nothing of limits.memory_limit"},
		{"bad_duckdb_memory.yaml", `duckdb_memory_limit "lots"`},
		{"bad_negative_query_limit.yaml", "query limits must not be negative"},
		{"bad_stream_limit.yaml", "limits must not be negative"},
		{"bad_profile_scrape_kind.yaml", `profile_scrape_configs: job "shop": profiles: unknown kind "threads"`},
		{"bad_profile_scrape_seconds.yaml", `profile_scrape_configs: job "shop": profiles: cpu: seconds 15 is not shorter than scrape_timeout 10s`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file), nil)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error %q should name the file and contain %q", err, tc.want)
			}
		})
	}
}

func TestMemoryAndSeriesLimits(t *testing.T) {
	for _, tc := range []struct {
		yaml        string
		duckdb      string
		maxSeries   uint64
		memoryLimit int64
	}{
		{"", DefaultDuckDBMemoryLimit, DefaultMaxSeries, 0},
		{"limits: {memory_limit: 2GiB}", "512MiB", DefaultMaxSeries, 2 << 30},
		{"limits: {memory_limit: 2GiB}\nstorage: {duckdb_memory_limit: 300MB}", "300MB", DefaultMaxSeries, 2 << 30},
		{"limits: {max_series: 5000}", DefaultDuckDBMemoryLimit, 5000, 0},
		{"limits: {max_series: -1}", DefaultDuckDBMemoryLimit, 0, 0},
	} {
		path := filepath.Join(t.TempDir(), "vigil.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.Storage.DuckDBMemoryLimit != tc.duckdb || c.SeriesLimit() != tc.maxSeries || int64(c.Limits.MemoryLimit) != tc.memoryLimit {
			t.Errorf("%q: duckdb %q, series %d, memory %d; want %q, %d, %d", tc.yaml,
				c.Storage.DuckDBMemoryLimit, c.SeriesLimit(), c.Limits.MemoryLimit, tc.duckdb, tc.maxSeries, tc.memoryLimit)
		}
	}
}

// Query limits left unset are derived from limits.memory_limit; set ones win.
func TestQueryLimits(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want querylimit.Limits
	}{
		{"", querylimit.DefaultsFor(0)},
		{"limits: {memory_limit: 1GiB}", querylimit.DefaultsFor(1 << 30)},
		{"limits: {memory_limit: 1GiB}\nquery: {timeout: 30s, max_samples: 1000, max_concurrency: 3, max_series: 10, max_response_bytes: 1MiB, max_trace_spans: 50}",
			querylimit.Limits{Timeout: 30 * time.Second, MaxSamples: 1000, MaxConcurrency: 3, MaxSeries: 10, MaxResponseBytes: 1 << 20, MaxTraceSpans: 50, QueueWait: querylimit.DefaultQueueWait}},
	} {
		path := filepath.Join(t.TempDir(), "vigil.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := c.QueryLimits(); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.yaml, got, tc.want)
		}
	}
}

// The example the README and `make run` use must always load.
func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "examples", "vigil.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	scs, err := c.Prometheus.GetScrapeConfigs()
	if err != nil || len(scs) == 0 || scs[0].JobName != "vigil" {
		t.Fatalf("example scrape configs = %v, %v; want the vigil self-scrape job", scs, err)
	}
}

// Rule files and the alertmanager.yml are found relative to the config
// file, rule_files globs expand as in Prometheus, and admin is off unless
// set.
func TestAlertingPathsAndAdmin(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"rules/a.yml", "rules/b.yml", "rules/skip.txt"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse([]byte("rule_files: [\"rules/*.yml\", \"none/*.yml\"]\nalertmanager_config_file: am.yml\nglobal:\n  evaluation_interval: 7s\n"), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.RuleFilePaths()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "rules/a.yml"), filepath.Join(dir, "rules/b.yml")}
	if !slices.Equal(got, want) {
		t.Errorf("RuleFilePaths = %v, want %v", got, want)
	}
	if c.AlertmanagerConfigFile != filepath.Join(dir, "am.yml") {
		t.Errorf("AlertmanagerConfigFile = %q", c.AlertmanagerConfigFile)
	}
	if d := time.Duration(c.Prometheus.GlobalConfig.EvaluationInterval); d != 7*time.Second {
		t.Errorf("evaluation_interval = %s", d)
	}
	if c.Admin.Enabled {
		t.Error("admin endpoints on by default")
	}
	if _, err := Parse([]byte("rule_files: [\"[\"]\n"), dir, nil); err == nil {
		t.Error("a malformed glob was accepted")
	}
}

func TestWebConfigFileTurnsAuthOn(t *testing.T) {
	c, err := Load("testdata/auth.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("testdata", "web_auth.yml"); c.WebConfigFile != want {
		t.Errorf("web_config_file = %q, want %q (relative to the config file)", c.WebConfigFile, want)
	}
	if c.Auth == nil {
		t.Fatal("web_config_file set but Auth is nil: authentication would be off")
	}
	if _, err := c.Auth.Authenticate("Bearer test"); err != nil {
		t.Errorf("token from the web config refused: %v", err)
	}
	d, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Auth != nil {
		t.Error("authentication must be off without web_config_file")
	}
}

// The web section: defaults keep every other origin out, and a bad
// expression or host entry stops the start with the key named.
func TestWebSection(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.CORSOrigin != "" || len(c.Web.AllowedHosts) != 0 {
		t.Errorf("defaults: %+v, want no origin and no extra host", c.Web)
	}
	if o := c.BrowserOptions(nil); !o.CheckHost {
		t.Error("without web_config_file the host check must be on")
	}
	withAuth, err := Load("testdata/auth.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if withAuth.Auth == nil || withAuth.BrowserOptions(nil).CheckHost {
		t.Error("with authentication on and no allowed_hosts, the host check must be off")
	}
	withAuth.Web.AllowedHosts = []string{"vigil.example.com"}
	if !withAuth.BrowserOptions(nil).CheckHost {
		t.Error("with allowed_hosts listed, the host check must be on")
	}
	good, err := Parse([]byte("web:\n  cors_origin: 'https://grafana\\.example\\.com'\n  allowed_hosts: [vigil.example.com, .internal]\n"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if good.Web.CORSOrigin != `https://grafana\.example\.com` || len(good.Web.AllowedHosts) != 2 {
		t.Errorf("web = %+v", good.Web)
	}
	for _, tc := range []struct{ file, want string }{
		{"bad_web_cors_origin.yaml", "web.cors_origin"},
		{"bad_web_allowed_hosts.yaml", "web.allowed_hosts"},
	} {
		_, err := Load(filepath.Join("testdata", tc.file), nil)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid naming %s", tc.file, err, tc.want)
		}
	}
}

// Scrapes get a body limit when nothing sets one (Prometheus has no
// default, and a never-ending body would be read until memory runs out);
// what the configuration sets is kept.
func TestScrapeBodySizeLimitDefault(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "more.yml"), []byte("scrape_configs:\n  - job_name: from_file\n    static_configs: [{targets: ['a:1']}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const jobs = "scrape_config_files: [more.yml]\nscrape_configs:\n  - job_name: plain\n    static_configs: [{targets: ['a:1']}]\n  - job_name: own\n    body_size_limit: 5MiB\n    static_configs: [{targets: ['a:1']}]\n"
	for _, tc := range []struct {
		name, yaml           string
		plain, own, fromFile int64
	}{
		{"nothing set", jobs, DefaultScrapeBodySizeLimit, 5 << 20, DefaultScrapeBodySizeLimit},
		{"small memory limit", "limits: {memory_limit: 256MiB}\n" + jobs, 32 << 20, 5 << 20, 32 << 20},
		{"global set", "global: {body_size_limit: 200MiB}\n" + jobs, 200 << 20, 5 << 20, 200 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "vigil.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			scs, err := c.Prometheus.GetScrapeConfigs()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{"plain": tc.plain, "own": tc.own, "from_file": tc.fromFile}
			if len(scs) != len(want) {
				t.Fatalf("%d scrape configs, want %d", len(scs), len(want))
			}
			for _, sc := range scs {
				if got := int64(sc.BodySizeLimit); got != want[sc.JobName] {
					t.Errorf("job %s: body_size_limit %d, want %d", sc.JobName, got, want[sc.JobName])
				}
			}
		})
	}
}
