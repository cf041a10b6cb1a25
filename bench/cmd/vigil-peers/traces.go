package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The traces load is vigil-load's (-signal traces-pre): the shop's five
// services, traces of spansPerTrace spans (a server span and its client
// calls, about ten attributes each, as otelhttp records them), loadBatch
// spans a request over OTLP/HTTP protobuf from loadSenders senders, each on
// its own schedule. The requests are encoded once and only their trace ids
// and times rewritten per send, so the generator needs a few percent of its
// CPU where an SDK-based one (telemetrygen) saturated near 100k spans/s.
const (
	spansPerTrace = 5
	loadBatch     = 500
	loadSenders   = 32
	maxLoss       = 0.01
	// A service and an operation of vigil-load's data: one service in five,
	// the operation one of its spans in about twelve.
	traceService   = "checkout"
	traceOperation = "GET /api/cart"
	// queryBudget bounds each kind of trace query per system.
	queryBudget = 20 * time.Second
)

type traceStep struct {
	target               int
	sent, stored         int64
	sentRate, storedRate float64
	loss                 float64
	cpu                  float64
	// genCPU is the share of the load CPU the generator used; genLimited:
	// it used (nearly) all of its CPU, so the step measured the generator
	// rather than the server. ackLimited: it fell short of the target with
	// CPU to spare, because the server acknowledged no faster (each sender
	// waits for its answer): the server's own ceiling.
	genCPU     float64
	genLimited bool
	ackLimited bool
}

type latency struct {
	n, errors, empty int
	median, p95      time.Duration
}

type traceResult struct {
	system                 string
	notRun, err            string
	steps                  []traceStep
	best                   int // index into steps, -1 if none passed
	cpuPerMillion          float64
	peakRSS                int64
	stored                 int64
	disk                   int64
	byID, search, searchOp latency
	profile, queryProfile  string
	// genBound: the ramp ended on a step where the generator was
	// saturated, so the sustained rate is a lower bound.
	genBound bool
}

func (r *traceResult) bestRate() float64 {
	if r.best < 0 {
		return 0
	}
	return r.steps[r.best].storedRate
}

// spanRates parses the ramp's target rates.
func (h *harness) spanRates() []int {
	var rates []int
	for _, f := range strings.Split(h.opts.spanRates, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			rates = append(rates, n)
		}
	}
	return rates
}

func (h *harness) runTraces() []*traceResult {
	var out []*traceResult
	if _, err := os.Stat(h.opts.vigilLoad); err != nil {
		msg := "not run: vigil-load not found at " + h.opts.vigilLoad + " (make bench-peers builds it)"
		return []*traceResult{{system: "vigil", notRun: msg, best: -1}, {system: "Jaeger", notRun: msg, best: -1}}
	}
	h.logf("traces: vigil")
	out = append(out, h.traceSystem("vigil", h.startVigilTraces))
	if h.opts.jaeger == "" {
		out = append(out, &traceResult{system: "Jaeger", best: -1,
			notRun: "not run: set JAEGER_BIN=/path/to/jaeger (Jaeger v2 all-in-one, v2.20.x: Jaeger's main branch has since removed the /api/traces search timed here)"})
	} else {
		h.logf("traces: Jaeger")
		out = append(out, h.traceSystem("Jaeger", h.startJaeger))
	}
	return out
}

func (h *harness) startVigilTraces() (*server, error) { return h.startVigil("vigil-traces") }

func (h *harness) traceSystem(name string, start func() (*server, error)) *traceResult {
	r := &traceResult{system: name, best: -1}
	s, err := start()
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer stopAfter(s)
	stored := func() (int64, error) {
		var v float64
		var err error
		if name == "vigil" {
			v, err = h.metric(s.metricsURL, []string{"vigil_stored_total"}, `signal="traces"`)
			if errors.Is(err, errNoSeries) {
				return 0, nil
			}
		} else {
			// Spans the storage exporter wrote to Badger (the exporter
			// writes synchronously, so sent means stored).
			v, err = h.metric(s.metricsURL, []string{"otelcol_exporter_sent_spans", "otelcol_exporter_sent_spans_total"},
				`exporter="jaeger_storage_exporter"`)
			if errors.Is(err, errNoSeries) {
				return 0, nil
			}
		}
		return int64(v), err
	}
	runStart := time.Now()
	var passCPU float64
	var passStored int64
	rates := h.spanRates()
	lastPass, refined := 0, false
	for i := 0; i < len(rates); i++ {
		rate := rates[i]
		st, err := h.traceStep(s, rate, stored)
		if err != nil {
			r.err = err.Error()
			break
		}
		r.steps = append(r.steps, st)
		h.logf("  %s target %d spans/s: sent %.0f/s stored %.0f/s loss %.2f%% cpu %.1fs, generator cpu %.0f%%", name, rate, st.sentRate, st.storedRate, 100*st.loss, st.cpu, 100*st.genCPU)
		if st.loss >= maxLoss {
			if st.genLimited {
				// A loss with the generator saturated may be its own.
				r.genBound = true
				break
			}
			// One more step halfway between the last passing rate and this
			// one narrows the limit down.
			if mid := (lastPass + rate) / 2; !refined && lastPass > 0 && mid > lastPass*11/10 {
				refined = true
				rates = append(rates[:i+1:i+1], mid)
				continue
			}
			break
		}
		passCPU += st.cpu
		passStored += st.stored
		lastPass = rate
		if r.best < 0 || st.storedRate > r.steps[r.best].storedRate {
			r.best = len(r.steps) - 1
		}
		// A step that fell short of its target (the generator saturated,
		// or the server acknowledging no faster) and sent hardly more than
		// the step before is a ceiling: higher targets would measure it
		// again.
		if n := len(r.steps); (st.genLimited || st.ackLimited) && n > 1 && st.sentRate < 1.1*r.steps[n-2].sentRate {
			break
		}
	}
	if passStored > 0 {
		r.cpuPerMillion = passCPU / float64(passStored) * 1e6
	}
	r.peakRSS = s.peakRSS()
	if n, err := stored(); err == nil {
		r.stored = n
	}
	if name == "vigil" && len(r.steps) > 0 {
		if p := filepath.Join(s.dataDir, "..", "traces-last-step.pprof"); fileExists(p) {
			r.profile = p
		}
	}
	if r.stored > 0 && !s.p.exited() {
		h.logf("  %s queries", name)
		h.traceQueries(s, r, runStart)
	}
	if err := s.p.stop(2 * time.Minute); err != nil && r.err == "" {
		r.err = err.Error()
	}
	if d, err := diskUsage(s.dataDir); err == nil {
		r.disk = d
	}
	return r
}

var (
	loadAttempted = regexp.MustCompile(`(?m)^attempted: (\d+) items`)
	loadCPU       = regexp.MustCompile(`(?m)^generator CPU: ([0-9.]+)s`)
)

// traceStep sends spans at rate for one step with vigil-load over
// OTLP/HTTP, waits for the system to finish storing, and compares what it
// stored with what was sent.
func (h *harness) traceStep(s *server, rate int, stored func() (int64, error)) (traceStep, error) {
	st := traceStep{target: rate}
	before, err := stored()
	if err != nil {
		return st, err
	}
	s0 := s.sample()
	step := h.opts.step
	loadArgs := func(rateArg string) []string {
		return h.loadCommand(h.opts.vigilLoad, "-signal", "traces-pre", "-otlp-http", s.otlpHTTP,
			"-duration", step.String(), "-rate", rateArg,
			"-concurrency", strconv.Itoa(loadSenders), "-batch", strconv.Itoa(loadBatch))
	}
	args := loadArgs(strconv.Itoa(rate))
	h.recordCommand("vigil-load (traces), one ramp step against "+s.name, nil, loadArgs("<target spans/s>"))
	ctx, cancel := context.WithTimeout(context.Background(), step+2*time.Minute)
	defer cancel()
	var profErr chan error
	if s.pprofURL != "" && step >= 10*time.Second {
		profErr = make(chan error, 1)
		go func() {
			profErr <- h.profile(s, step-5*time.Second, filepath.Join(s.dataDir, "..", "traces-step.pprof"))
		}()
	}
	// vigil-load exits 1 when requests failed outright (not refused):
	// its counts still hold, and the loss shows what became of them.
	out, runErr := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	m := loadAttempted.FindSubmatch(out)
	if m == nil {
		return st, fmt.Errorf("vigil-load: %v\n%s", runErr, lastLines(string(out), 10))
	}
	st.sent, _ = strconv.ParseInt(string(m[1]), 10, 64)
	if c := loadCPU.FindSubmatch(out); c != nil {
		cpu, _ := strconv.ParseFloat(string(c[1]), 64)
		st.genCPU = cpu / step.Seconds()
	}
	if st.sent == 0 {
		return st, fmt.Errorf("vigil-load sent nothing:\n%s", lastLines(string(out), 10))
	}
	// Wait until the system has stored what it accepted: stored stops moving.
	after := before
	deadline := time.Now().Add(20 * time.Second)
	for still := 0; still < 4 && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		n, err := stored()
		if err != nil {
			return st, err
		}
		if n == after {
			still++
		} else {
			still = 0
		}
		after = n
		if after-before >= st.sent {
			break
		}
	}
	if profErr != nil {
		if err := <-profErr; err == nil {
			os.Rename(filepath.Join(s.dataDir, "..", "traces-step.pprof"), filepath.Join(s.dataDir, "..", "traces-last-step.pprof"))
		}
	}
	s1 := s.sample()
	st.stored = after - before
	st.cpu = s1.cpu - s0.cpu
	sec := step.Seconds()
	st.sentRate = float64(st.sent) / sec
	st.storedRate = float64(st.stored) / sec
	st.loss = max(0, 1-float64(st.stored)/float64(st.sent))
	st.genLimited = st.genCPU > 0.9
	st.ackLimited = !st.genLimited && st.sentRate < 0.9*float64(rate)
	return st, nil
}

func lastLines(s string, n int) string { return tailString(s, n) }

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

type jaegerTraces struct {
	Data []struct {
		TraceID string            `json:"traceID"`
		Spans   []json.RawMessage `json:"spans"`
	} `json:"data"`
}

// traceQueries times trace-by-id and search through the Jaeger HTTP API,
// which both systems serve, over everything the ramp stored.
func (h *harness) traceQueries(s *server, r *traceResult, from time.Time) {
	start := strconv.FormatInt(from.Add(-time.Minute).UnixMicro(), 10)
	end := strconv.FormatInt(time.Now().Add(time.Minute).UnixMicro(), 10)
	search := func(extra url.Values, limit int) string {
		v := url.Values{"service": {traceService}, "start": {start}, "end": {end}, "limit": {strconv.Itoa(limit)}}
		for k, x := range extra {
			v[k] = x
		}
		return s.httpBase + "/api/traces?" + v.Encode()
	}
	var ids []string
	if body, err := h.get(search(nil, 200)); err == nil {
		var t jaegerTraces
		if json.Unmarshal(body, &t) == nil {
			for _, d := range t.Data {
				ids = append(ids, d.TraceID)
			}
		}
	}
	if len(ids) == 0 {
		r.err = "search (GET /api/traces?service=...) returned no traces, so there are no trace ids to query"
		if s.name == "Jaeger" {
			r.err += "; Jaeger releases after v2.20 dropped this endpoint: use a v2.20.x release"
		}
		return
	}
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = s.httpBase + "/api/traces/" + id
	}
	n := h.opts.queries
	r.byID = h.timeQueries(urls, n, queryBudget)
	r.search = h.timeQueries([]string{search(nil, 20)}, n, queryBudget)
	r.searchOp = h.timeQueries([]string{search(url.Values{"operation": {traceOperation}}, 20)}, n, queryBudget)
	if s.pprofURL != "" {
		// A profile of vigil answering the same queries, kept in the report
		// if vigil is slower than the peer.
		path := filepath.Join(s.dataDir, "..", "traces-queries.pprof")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			mix := append(urls, search(nil, 20), search(url.Values{"operation": {traceOperation}}, 20))
			for i := 0; ctx.Err() == nil; i++ {
				h.get(mix[i%len(mix)])
			}
		}()
		if h.profile(s, 10*time.Second, path) == nil {
			r.queryProfile = path
		}
		cancel()
		<-done
	}
}

func (h *harness) get(u string) ([]byte, error) {
	resp, err := h.client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, tailString(string(body), 3))
	}
	return body, nil
}

// timeQueries runs up to n queries (cycling over urls, one at a time)
// within budget and returns their latency; an answer without traces counts
// as empty, a failed one as an error.
func (h *harness) timeQueries(urls []string, n int, budget time.Duration) latency {
	var l latency
	var ds []time.Duration
	deadline := time.Now().Add(budget)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		body, err := h.get(urls[i%len(urls)])
		d := time.Since(t0)
		l.n++
		if err != nil {
			l.errors++
			continue
		}
		var t jaegerTraces
		if json.Unmarshal(body, &t) != nil || len(t.Data) == 0 {
			l.empty++
		}
		ds = append(ds, d)
	}
	l.median, l.p95 = quantiles(ds)
	return l
}

func quantiles(ds []time.Duration) (median, p95 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1)+0.5)] }
	return q(0.5), q(0.95)
}
