package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/bench/internal/procfs"
)

// server is one running system under test with the addresses the load
// generators and queries use.
type server struct {
	name    string
	p       *proc
	dataDir string
	logPath string
	// otlpGRPC and otlpHTTP take OTLP; httpBase serves the query APIs and
	// remote_write; metricsURL is the system's own Prometheus metrics.
	otlpGRPC, otlpHTTP, httpBase, metricsURL string
	writeURL                                 string
	// lokiPushURL takes Loki push requests.
	lokiPushURL string
	// pprofURL is set for vigil only (admin endpoints on).
	pprofURL string
}

func (h *harness) startVigil(tag string) (*server, error) {
	dir, addrs, err := h.workspace(tag, 3)
	if err != nil {
		return nil, err
	}
	s := &server{
		name: "vigil", dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "vigil.log"),
		httpBase: "http://" + addrs[0], otlpGRPC: addrs[1], otlpHTTP: "http://" + addrs[2],
	}
	s.metricsURL = s.httpBase + "/metrics"
	s.writeURL = s.httpBase + "/api/v1/write"
	s.lokiPushURL = s.httpBase + "/loki/api/v1/push"
	// Admin endpoints serve pprof, for the profiles of the phases vigil
	// loses; the listeners are on loopback only.
	s.pprofURL = s.httpBase + "/debug/pprof/profile"
	s.p, err = h.startProc("vigil", s.logPath, nil, h.opts.vigil, "server",
		"--data-dir", s.dataDir, "--http-addr", addrs[0], "--otlp-grpc-addr", addrs[1],
		"--otlp-http-addr", addrs[2], "--log-level", "warn", "--enable-admin")
	if err != nil {
		return nil, err
	}
	return h.ready(s, s.httpBase+"/-/ready")
}

// jaegerConfig is Jaeger v2 all-in-one with Badger, as its
// cmd/jaeger/config-badger.yaml but with every listener on a free loopback
// port and no archive store. The batch processor stays: it is part of the
// configuration Jaeger ships.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{metrics_port}}
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: {{health}}
  jaeger_query:
    storage:
      traces: main_store
    http:
      endpoint: {{query_http}}
    grpc:
      endpoint: {{query_grpc}}
  jaeger_storage:
    backends:
      main_store:
        badger:
          directories:
            keys: {{data}}/keys
            values: {{data}}/values
          ephemeral: false
          ttl:
            spans: 48h
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{otlp_grpc}}
      http:
        endpoint: {{otlp_http}}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: main_store
`

func (h *harness) startJaeger() (*server, error) {
	dir, addrs, err := h.workspace("jaeger", 6)
	if err != nil {
		return nil, err
	}
	s := &server{
		name: "Jaeger", dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "jaeger.log"),
		httpBase: "http://" + addrs[0], otlpGRPC: addrs[2], otlpHTTP: "http://" + addrs[3],
		metricsURL: "http://" + addrs[4] + "/metrics",
	}
	cfg := strings.NewReplacer(
		"{{query_http}}", addrs[0], "{{query_grpc}}", addrs[1], "{{otlp_grpc}}", addrs[2],
		"{{otlp_http}}", addrs[3], "{{metrics_port}}", portOf(addrs[4]), "{{health}}", addrs[5],
		"{{data}}", s.dataDir,
	).Replace(jaegerConfig)
	cfgPath := filepath.Join(dir, "config-badger.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s.p, err = h.startProc("Jaeger", s.logPath, nil, h.opts.jaeger, "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	// healthcheckv2 answers 200 on /status once every component started.
	return h.ready(s, "http://"+addrs[5]+"/status")
}

const prometheusConfig = `# No scrape jobs: the only samples are the remote_write stream.
global:
  scrape_interval: 1m
`

func (h *harness) startPrometheus(tag string) (*server, error) {
	dir, addr, err := h.workspace(tag, 1)
	if err != nil {
		return nil, err
	}
	s := &server{name: "Prometheus", dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "prometheus.log"),
		httpBase: "http://" + addr[0]}
	s.metricsURL = s.httpBase + "/metrics"
	s.writeURL = s.httpBase + "/api/v1/write"
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(prometheusConfig), 0o644); err != nil {
		return nil, err
	}
	s.p, err = h.startProc("Prometheus", s.logPath, nil, h.opts.prometheus,
		"--config.file="+cfgPath, "--storage.tsdb.path="+s.dataDir, "--web.listen-address="+addr[0],
		"--web.enable-remote-write-receiver", "--log.level=warn")
	if err != nil {
		return nil, err
	}
	return h.ready(s, s.httpBase+"/-/ready")
}

func (h *harness) startVictoria(tag string) (*server, error) {
	dir, addr, err := h.workspace(tag, 1)
	if err != nil {
		return nil, err
	}
	s := &server{name: "VictoriaMetrics", dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "victoria.log"),
		httpBase: "http://" + addr[0]}
	s.metricsURL = s.httpBase + "/metrics"
	s.writeURL = s.httpBase + "/api/v1/write"
	// latencyOffset=0 and no result cache: queries see the same data as the
	// other systems and are computed every time, as theirs are.
	s.p, err = h.startProc("VictoriaMetrics", s.logPath, nil, h.opts.victoria,
		"-storageDataPath="+s.dataDir, "-httpListenAddr="+addr[0], "-retentionPeriod=1y",
		"-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=WARN")
	if err != nil {
		return nil, err
	}
	return h.ready(s, s.httpBase+"/health")
}

func (h *harness) startVictoriaLogs() (*server, error) {
	dir, addr, err := h.workspace("victorialogs", 1)
	if err != nil {
		return nil, err
	}
	s := &server{name: "VictoriaLogs", dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "victorialogs.log"),
		httpBase: "http://" + addr[0]}
	s.metricsURL = s.httpBase + "/metrics"
	s.lokiPushURL = s.httpBase + "/insert/loki/api/v1/push"
	// Defaults otherwise: VictoriaLogs caches no query results unless
	// asked, so every query is computed, as vigil's are.
	s.p, err = h.startProc("VictoriaLogs", s.logPath, nil, h.opts.victoriaLogs,
		"-storageDataPath="+s.dataDir, "-httpListenAddr="+addr[0], "-loggerLevel=WARN")
	if err != nil {
		return nil, err
	}
	return h.ready(s, s.httpBase+"/health")
}

// sample is one reading of a server's resource use.
type sample struct {
	cpu float64 // CPU-seconds used so far
	at  time.Time
}

func (s *server) sample() sample {
	c, _ := procfs.CPUSeconds(s.p.pid())
	return sample{cpu: c, at: time.Now()}
}

func (s *server) peakRSS() int64 {
	v, _ := procfs.StatusBytes(s.p.pid(), "VmHWM")
	return v
}

// metric sums the values of the named series in the server's /metrics
// whose labels include every given name="value" pair. Any of names may
// match: exporters differ on suffixes such as _total.
// errNoSeries: the metric is not exposed (yet): counters with labels
// appear at their first increment.
var errNoSeries = errors.New("metric not exposed")

func (h *harness) metric(url string, names []string, labels ...string) (float64, error) {
	resp, err := h.client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	var (
		sum   float64
		found bool
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !contains(names, name) {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("%v at %s: %w", names, url, errNoSeries)
	}
	return sum, sc.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// profile saves a CPU profile of vigil over d into path, for the phases
// where vigil loses. It runs while the load does.
func (h *harness) profile(s *server, d time.Duration, path string) error {
	if s.pprofURL == "" {
		return nil
	}
	resp, err := h.client.Get(fmt.Sprintf("%s?seconds=%d", s.pprofURL, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pprof: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop summarises a profile with go tool pprof, if Go is installed.
func pprofTop(binary, profile string) string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	out, err := exec.Command(goBin, "tool", "pprof", "-top", "-nodecount=25", binary, profile).Output()
	if err != nil {
		return ""
	}
	// Drop pprof's header down to the table's column names.
	s := string(out)
	if i := strings.Index(s, "      flat  flat%"); i >= 0 {
		s = s[i:]
	}
	return strings.TrimRight(s, "\n")
}

// workspace makes the system's directory under the work dir and picks n
// free loopback addresses for it.
func (h *harness) workspace(tag string, n int) (string, []string, error) {
	dir := filepath.Join(h.work, tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	addrs, err := procfs.FreeAddrs(n)
	return dir, addrs, err
}

// ready waits for the system's readiness URL, stopping it (and showing the
// end of its log) when it does not come up.
func (h *harness) ready(s *server, url string) (*server, error) {
	if err := h.waitReady(s.p, url, 2*time.Minute); err != nil {
		s.p.stop(10 * time.Second)
		return nil, fmt.Errorf("%w\n%s", err, tail(s.logPath, 20))
	}
	return s, nil
}

// stopAfter stops s's process unless it already exited; deferred by each
// phase.
func stopAfter(s *server) {
	if !s.p.exited() {
		s.p.stop(time.Minute)
	}
}
