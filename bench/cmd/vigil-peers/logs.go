package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

type logsResult struct {
	notRun, err        string
	acked, stored      int64
	elapsed            time.Duration
	perSec             float64
	cpu, cpuPerMillion float64
	peakRSS            int64
	disk               int64
	profile            string
}

var acknowledged = regexp.MustCompile(`acknowledged: (\d+) items`)

// runLogs drives vigil with vigil-load's log records (realistic bodies and
// attributes, 500 per OTLP/HTTP request, 8 senders) for the phase length.
func (h *harness) runLogs() *logsResult {
	r := &logsResult{}
	if _, err := os.Stat(h.opts.vigilLoad); err != nil {
		r.notRun = "not run: vigil-load not found at " + h.opts.vigilLoad + " (make bench-peers builds it)"
		return r
	}
	h.logf("logs: vigil")
	s, err := h.startVigil("vigil-logs")
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer stopAfter(s)
	d := h.opts.duration
	args := h.loadCommand(h.opts.vigilLoad, "-signal", "logs", "-duration", d.String(),
		"-concurrency", "8", "-batch", "500", "-otlp-http", s.otlpHTTP)
	h.recordCommand("vigil-load (logs)", nil, args)
	var profErr chan error
	profPath := filepath.Join(h.work, "vigil-logs.pprof")
	if d >= 15*time.Second {
		profErr = make(chan error, 1)
		go func() {
			time.Sleep(5 * time.Second)
			profErr <- h.profile(s, d-10*time.Second, profPath)
		}()
	}
	s0 := s.sample()
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	r.elapsed = time.Since(t0)
	if err != nil {
		r.err = fmt.Sprintf("vigil-load: %v\n%s", err, tailString(string(out), 5))
	}
	if m := acknowledged.FindStringSubmatch(string(out)); m != nil {
		r.acked, _ = strconv.ParseInt(m[1], 10, 64)
	}
	// vigil acknowledges after its write-ahead log, so what it acknowledged
	// is stored; its counter says so once the queue drains.
	var stored int64
	for range 20 {
		v, err := h.metric(s.metricsURL, []string{"vigil_stored_total"}, `signal="logs"`)
		if err == nil && int64(v) >= r.acked {
			stored = int64(v)
			break
		}
		stored = int64(v)
		time.Sleep(500 * time.Millisecond)
	}
	r.stored = stored
	s1 := s.sample()
	r.cpu = s1.cpu - s0.cpu
	r.perSec = float64(r.acked) / d.Seconds()
	if r.stored > 0 {
		r.cpuPerMillion = r.cpu / float64(r.stored) * 1e6
	}
	r.peakRSS = s.peakRSS()
	if profErr != nil && <-profErr == nil {
		r.profile = profPath
	}
	h.logf("  vigil logs: %.0f/s acknowledged, %d stored, cpu %.1fs", r.perSec, r.stored, r.cpu)
	if err := s.p.stop(2 * time.Minute); err != nil && r.err == "" {
		r.err = err.Error()
	}
	if du, err := diskUsage(s.dataDir); err == nil {
		r.disk = du
	}
	return r
}
