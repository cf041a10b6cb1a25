// Command vigil-peers benchmarks vigil side by side with the systems users
// compare it with, on one machine with one load generator per signal:
// traces against Jaeger v2 (Badger), metrics against Prometheus and
// VictoriaMetrics, and logs on their own. Peers are taken as binaries by
// path and never built here. It writes docs/benchmarks.md (`make bench-peers`).
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// pinnedEnv marks the re-executed harness, already pinned to the load CPU.
const pinnedEnv = "VIGIL_PEERS_PINNED"

type options struct {
	vigil, vigilLoad                           string
	jaeger, prometheus, victoria, victoriaLogs string
	vigilLokiPush                              bool
	logQueryRuns                               int
	sections                                   string
	out, workDir, profileDir                   string
	duration, step                             time.Duration
	spanRates                                  string
	series, queries, promqlRuns                int
	historySeries                              int
	skip                                       string
	// rwRate caps the remote_write load's samples per second (0: a
	// closed loop, as fast as each system acknowledges).
	rwRate int
}

// pinning says where servers and load run.
type pinning struct {
	enabled            bool
	serverCPU, loadCPU string
	note               string
	cpus               int
	tasksetPath        string
}

type harness struct {
	opts     options
	pin      pinning
	work     string
	client   *http.Client
	commands []string
	seen     map[string]bool
	log      io.Writer
}

func main() {
	var o options
	flag.StringVar(&o.vigil, "vigil", "bin/vigil", "vigil binary")
	flag.StringVar(&o.vigilLoad, "vigil-load", "bench/bin/vigil-load", "vigil-load binary (traces and logs load)")
	flag.StringVar(&o.jaeger, "jaeger", os.Getenv("JAEGER_BIN"), "Jaeger v2 all-in-one binary (default $JAEGER_BIN)")
	flag.StringVar(&o.prometheus, "prometheus", envOrPath("PROMETHEUS_BIN", "prometheus"), "Prometheus binary (default $PROMETHEUS_BIN or prometheus on PATH)")
	flag.StringVar(&o.victoria, "victoria", envOrPath("VICTORIA_BIN", "victoria-metrics"), "VictoriaMetrics single-node binary (default $VICTORIA_BIN or victoria-metrics on PATH)")
	flag.StringVar(&o.victoriaLogs, "victorialogs", os.Getenv("VICTORIALOGS_BIN"), "VictoriaLogs single-node binary (default $VICTORIALOGS_BIN); empty: the logs section has no peer")
	flag.BoolVar(&o.vigilLokiPush, "vigil-loki-push", true, "also send vigil the logs load over Loki's push API (POST /loki/api/v1/push on its web listener), as VictoriaLogs is sent it")
	flag.IntVar(&o.logQueryRuns, "log-query-runs", 20, "runs of each log query per system")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "report to write")
	flag.StringVar(&o.workDir, "work-dir", "", "directory for data and logs (default: a new temporary directory, removed afterwards)")
	flag.StringVar(&o.profileDir, "profile-dir", "bench/results", "where vigil's CPU profiles are saved")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "length of the metrics and logs load phases")
	flag.DurationVar(&o.step, "step", 20*time.Second, "length of each step of the traces rate ramp")
	flag.StringVar(&o.spanRates, "span-rates", "10000,25000,50000,75000,100000,125000,150000,200000", "target spans/s of the traces ramp; it stops at the first step losing 1% or more")
	flag.IntVar(&o.series, "series", 100_000, "active series in the remote_write stream")
	flag.IntVar(&o.rwRate, "rw-rate", 0, "cap the remote_write load at this many samples/s in all, so that systems are compared holding the same samples (0: closed loop, as fast as each acknowledges)")
	flag.IntVar(&o.historySeries, "history-series", 10_000, "series in the back-filled history whose compacted blocks give bytes per sample (0: skip it)")
	flag.IntVar(&o.queries, "queries", 200, "trace-by-id and search queries per system")
	flag.IntVar(&o.promqlRuns, "promql-runs", 20, "runs of each PromQL query per system")
	flag.StringVar(&o.skip, "skip", "", "comma-separated sections to leave out: traces, metrics, logs")
	flag.StringVar(&o.sections, "sections", "", "comma-separated sections to run (traces, metrics, logs); the other sections of an existing -out report are kept as they are")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-peers:", err)
		os.Exit(1)
	}
}

func envOrPath(env, name string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

func run(o options) error {
	pin := decidePinning()
	if pin.enabled && os.Getenv(pinnedEnv) == "" {
		// Re-execute on the load CPU so the harness's own work (the
		// remote_write generator, queries, polling) never shares the
		// server's CPU. A process-wide affinity change from Go would only
		// move the calling thread.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		argv := append([]string{pin.tasksetPath, "-c", pin.loadCPU, self}, os.Args[1:]...)
		env := append(os.Environ(), fmt.Sprintf("%s=%d", pinnedEnv, pin.cpus))
		return syscall.Exec(pin.tasksetPath, argv, env)
	}
	h := &harness{opts: o, pin: pin, client: &http.Client{Timeout: 2 * time.Minute}, seen: map[string]bool{}, log: os.Stderr}
	for _, p := range []*string{&h.opts.vigil, &h.opts.vigilLoad, &h.opts.out, &h.opts.profileDir} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	if o.workDir == "" {
		dir, err := os.MkdirTemp("", "vigil-peers-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		h.work = dir
	} else {
		if err := os.MkdirAll(o.workDir, 0o755); err != nil {
			return err
		}
		h.work = o.workDir
	}
	if _, err := os.Stat(h.opts.vigil); err != nil {
		return fmt.Errorf("vigil binary: %w (run make build-go)", err)
	}
	rep := &report{started: time.Now(), pin: pin, opts: h.opts}
	rep.machine = machineInfo(pin)
	rep.versions = h.versions()
	run, err := selectSections(o.sections, o.skip)
	if err != nil {
		return err
	}
	if run["traces"] {
		rep.traces = h.runTraces()
	}
	if run["metrics"] {
		rep.metrics = h.runMetrics()
	}
	if run["logs"] {
		rep.logs = h.runLogs()
	}
	rep.finished = time.Now()
	rep.commands = h.commands
	if err := os.MkdirAll(filepath.Dir(h.opts.out), 0o755); err != nil {
		return err
	}
	md := rep.markdown()
	if o.sections != "" {
		// A partial run replaces its own sections of the last full report
		// and keeps the others.
		if prev, err := os.ReadFile(h.opts.out); err == nil {
			md = mergeReport(string(prev), md, run, rep)
		}
	}
	if err := os.WriteFile(h.opts.out, []byte(md), 0o644); err != nil {
		return err
	}
	h.logf("wrote %s (%v)", h.opts.out, rep.finished.Sub(rep.started).Round(time.Second))
	return nil
}

// decidePinning pins servers to CPU 0 and load to CPU 1 when taskset exists
// and the process may use at least two CPUs.
func decidePinning() pinning {
	cpus := runtime.NumCPU()
	if v := os.Getenv(pinnedEnv); v != "" {
		// Re-executed: NumCPU now sees only the load CPU.
		fmt.Sscan(v, &cpus)
		return pinning{enabled: true, serverCPU: "0", loadCPU: "1", cpus: cpus, tasksetPath: "taskset",
			note: "servers pinned to CPU 0 (taskset -c 0, GOMAXPROCS=1); load generators and the harness to CPU 1"}
	}
	ts, err := exec.LookPath("taskset")
	switch {
	case err != nil:
		return pinning{cpus: cpus, note: "not pinned: taskset not found, so servers and load generators share all CPUs"}
	case cpus < 2:
		return pinning{cpus: cpus, note: "not pinned: only one CPU, so servers and load generators share it"}
	}
	return pinning{enabled: true, serverCPU: "0", loadCPU: "1", cpus: cpus, tasksetPath: ts}
}

// loadCommand prefixes a load generator's command line with its pinning.
func (h *harness) loadCommand(argv ...string) []string {
	if h.pin.enabled {
		return append([]string{"taskset", "-c", h.pin.loadCPU}, argv...)
	}
	return argv
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// recordCommand keeps a command line for the report, with the work
// directory written as $WORK and the same command listed once.
func (h *harness) recordCommand(name string, env, argv []string) {
	line := strings.Join(argv, " ")
	if len(env) > 0 {
		line = strings.Join(env, " ") + " " + line
	}
	line = strings.ReplaceAll(line, h.work, "$WORK")
	for bin := range h.peerEnv() {
		if bin != "" {
			line = strings.ReplaceAll(line, bin, h.displayBin(bin))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		line = strings.ReplaceAll(line, wd+"/", "")
	}
	key := name + "\x00" + line
	if h.seen[key] {
		return
	}
	h.seen[key] = true
	h.commands = append(h.commands, fmt.Sprintf("# %s\n%s", name, line))
}

// waitReady polls url until it answers 200 or the process exits.
func (h *harness) waitReady(p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited during startup: %v", p.name, p.err)
		}
		resp, err := h.client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s within %v", p.name, url, timeout)
}

// tail returns the last lines of a log file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
