package profilescrape

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/file"
	"gopkg.in/yaml.v3"
)

func decode(t testing.TB, src string) ([]*JobConfig, error) {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	// The document node's content is the section itself.
	return Decode(node.Content[0], "/etc/vigil", promconfig.DefaultGlobalConfig)
}

func TestDecodeDefaults(t *testing.T) {
	jobs, err := decode(t, `
- job_name: shop
  static_configs:
    - targets: [shop:6060]
`)
	if err != nil {
		t.Fatal(err)
	}
	j := jobs[0]
	if time.Duration(j.ScrapeInterval) != 15*time.Second || time.Duration(j.ScrapeTimeout) != 15*time.Second || j.Scheme != "http" {
		t.Errorf("interval %s, timeout %s, scheme %s; want 15s, 15s, http", j.ScrapeInterval, j.ScrapeTimeout, j.Scheme)
	}
	if got := j.enabled(); strings.Join(got, ",") != "memory,goroutine,mutex,block,cpu" {
		t.Errorf("enabled %v: every kind by default, the CPU profile last", got)
	}
	for kind, want := range map[string]string{
		"cpu": "/debug/pprof/profile", "memory": "/debug/pprof/allocs", "goroutine": "/debug/pprof/goroutine",
		"mutex": "/debug/pprof/mutex", "block": "/debug/pprof/block",
	} {
		if got := j.Profiles[kind].Path; got != want {
			t.Errorf("%s path %q, want %q", kind, got, want)
		}
	}
	if s := j.Profiles["cpu"].Seconds; s != 12 {
		t.Errorf("cpu seconds %d, want 12 (the 15s timeout less 3s)", s)
	}
	if !j.HTTPClientConfig.EnableHTTP2 || j.HTTPClientConfig.FollowRedirects {
		t.Error("HTTP client settings must start from Prometheus's defaults, without following redirects")
	}
	if len(j.ServiceDiscoveryConfigs) != 1 {
		t.Fatalf("%d discovery configs, want the static one", len(j.ServiceDiscoveryConfigs))
	}
	if _, ok := j.ServiceDiscoveryConfigs[0].(discovery.StaticConfig); !ok {
		t.Errorf("discovery config %T, want static", j.ServiceDiscoveryConfigs[0])
	}
}

func TestDecodeFull(t *testing.T) {
	jobs, err := decode(t, `
- job_name: payments
  scrape_interval: 30s
  scrape_timeout: 20s
  scheme: https
  basic_auth: {username: vigil, password: secret}
  tls_config: {ca_file: ca.pem}
  file_sd_configs:
    - files: [targets/*.json]
  relabel_configs:
    - source_labels: [__meta_filepath]
      target_label: service_name
      replacement: payments
  profiles:
    cpu: {seconds: 10}
    memory: {path: /debug/pprof/heap}
    mutex: {enabled: false}
    block: {enabled: false}
- job_name: other
  scrape_interval: 4s
  static_configs:
    - targets: [a:1]
`)
	if err != nil {
		t.Fatal(err)
	}
	j := jobs[0]
	if got := strings.Join(j.enabled(), ","); got != "memory,goroutine,cpu" {
		t.Errorf("enabled %s", got)
	}
	if j.Profiles["cpu"].Seconds != 10 || j.Profiles["memory"].Path != "/debug/pprof/heap" {
		t.Errorf("profiles %+v %+v", j.Profiles["cpu"], j.Profiles["memory"])
	}
	if j.HTTPClientConfig.BasicAuth == nil || string(j.HTTPClientConfig.BasicAuth.Password) != "secret" {
		t.Errorf("basic_auth %+v", j.HTTPClientConfig.BasicAuth)
	}
	if got := j.HTTPClientConfig.TLSConfig.CAFile; got != filepath.Join("/etc/vigil", "ca.pem") {
		t.Errorf("ca_file %q, want it relative to the config's directory", got)
	}
	sd, ok := j.ServiceDiscoveryConfigs[0].(*file.SDConfig)
	if !ok || sd.Files[0] != filepath.Join("/etc/vigil", "targets/*.json") {
		t.Errorf("file_sd %+v", j.ServiceDiscoveryConfigs[0])
	}
	if len(j.scrape.RelabelConfigs) != 1 || j.scrape.JobName != "payments" {
		t.Errorf("the Prometheus scrape config of the job: %+v", j.scrape)
	}
	if s := jobs[1].Profiles["cpu"].Seconds; s != 1 {
		t.Errorf("cpu seconds for a 4s interval: %d, want 1 (at least 1 s)", s)
	}
}

func TestDecodeEmpty(t *testing.T) {
	jobs, err := Decode(&yaml.Node{}, "", promconfig.DefaultGlobalConfig)
	if err != nil || jobs != nil {
		t.Errorf("no section: %v, %v", jobs, err)
	}
}

func TestDecodeBad(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown kind", `
- job_name: a
  static_configs: [{targets: [a:1]}]
  profiles: {heap: {enabled: true}}`, `job "a": profiles: unknown kind "heap"; the kinds are block, cpu, goroutine, memory, mutex`},
		{"seconds not below the timeout", `
- job_name: a
  scrape_interval: 10s
  static_configs: [{targets: [a:1]}]
  profiles: {cpu: {seconds: 10}}`, `seconds 10 is not shorter than scrape_timeout 10s`},
		{"no time for a CPU profile", `
- job_name: a
  scrape_interval: 1s
  static_configs: [{targets: [a:1]}]`, `seconds 1 is not shorter than scrape_timeout 1s`},
		{"seconds on another kind", `
- job_name: a
  static_configs: [{targets: [a:1]}]
  profiles: {memory: {seconds: 3}}`, `memory: seconds is only for cpu`},
		{"negative seconds", `
- job_name: a
  static_configs: [{targets: [a:1]}]
  profiles: {cpu: {seconds: -1}}`, `seconds -1 is negative`},
		{"timeout over interval", `
- job_name: a
  scrape_interval: 10s
  scrape_timeout: 20s
  static_configs: [{targets: [a:1]}]`, `scrape_timeout 20s is longer than scrape_interval 10s`},
		{"relative path", `
- job_name: a
  static_configs: [{targets: [a:1]}]
  profiles: {goroutine: {path: debug/pprof/goroutine}}`, `path "debug/pprof/goroutine" must start with /`},
		{"all disabled", `
- job_name: a
  static_configs: [{targets: [a:1]}]
  profiles: {cpu: {enabled: false}, memory: {enabled: false}, goroutine: {enabled: false}, mutex: {enabled: false}, block: {enabled: false}}`, `every kind is disabled`},
		{"duplicate job", `
- job_name: a
  static_configs: [{targets: [a:1]}]
- job_name: a
  static_configs: [{targets: [b:1]}]`, `two jobs are named "a"`},
		{"no job name", `
- static_configs: [{targets: [a:1]}]`, `job_name is empty`},
		{"bad scheme", `
- job_name: a
  scheme: ftp
  static_configs: [{targets: [a:1]}]`, `scheme "ftp"`},
		{"unknown field", `
- job_name: a
  metrics_path: /metrics
  static_configs: [{targets: [a:1]}]`, `field metrics_path not found`},
		{"unknown discovery", `
- job_name: a
  nosuch_sd_configs: [{}]`, `field nosuch_sd_configs not found`},
		{"two auth methods", `
- job_name: a
  basic_auth: {username: u, password: p}
  authorization: {credentials: t}
  static_configs: [{targets: [a:1]}]`, `at most one of basic_auth, oauth2 & authorization must be configured`},
		{"bad relabel regex", `
- job_name: a
  static_configs: [{targets: [a:1]}]
  relabel_configs: [{source_labels: [x], regex: "(", target_label: y}]`, `error parsing regexp`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The copy-paste example of docs/profiling.md decodes as documented.
func TestDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/profiling.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Pulling /debug/pprof")
	if !ok {
		t.Fatal("docs/profiling.md has no Pulling /debug/pprof section")
	}
	_, block, _ := strings.Cut(rest, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(block), &node); err != nil {
		t.Fatal(err)
	}
	section := node.Content[0].Content[1] // profile_scrape_configs' value
	jobs, err := Decode(section, "", promconfig.DefaultGlobalConfig)
	if err != nil {
		t.Fatal(err)
	}
	j := jobs[0]
	if got := strings.Join(j.enabled(), ","); got != "memory,goroutine,cpu" || j.Profiles["cpu"].Seconds != 10 || len(j.RelabelConfigs) != 1 {
		t.Errorf("the documented job: %s, cpu %+v", got, j.Profiles["cpu"])
	}
}
