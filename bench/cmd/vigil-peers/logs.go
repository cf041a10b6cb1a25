package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/bench/internal/procfs"
)

// The logs load: vigil-load's records (realistic bodies with ids,
// severity, attributes, resource attributes), logsBatch per request from
// logsSenders senders in a closed loop.
const (
	logsBatch   = 500
	logsSenders = 8
	// logsService and logsWord pick the filtered query's lines: one of the
	// five services, and a word of one of its six messages.
	logsService = "checkout"
	logsWord    = "timeout"
	// logsQueryBudget bounds the runs of one log query: runs start only
	// within it. logsQueryTimeout bounds one run.
	logsQueryBudget  = 20 * time.Second
	logsQueryTimeout = 5 * time.Minute
	// logsQueryProfile is the length of vigil's CPU profile over its
	// queries.
	logsQueryProfile = 20 * time.Second
)

// logsAPI is how a system is sent the logs load.
type logsAPI struct {
	name   string // as the report names it
	signal string // vigil-load's -signal
}

var (
	apiOTLP     = logsAPI{"OTLP/HTTP", "logs"}
	apiLokiPush = logsAPI{"Loki push", "logs-loki"}
)

type logsResult struct {
	system             string // "vigil" or "VictoriaLogs"
	api                logsAPI
	notRun, err        string
	acked              int64
	stored             int64 // counted by a query over everything sent
	counter            int64 // vigil: vigil_stored_total{signal="logs"}
	storedByCounter    bool  // the count query failed: stored is counter
	queryTimeouts      int   // queries the server's log says hit their deadline
	elapsed            time.Duration
	perSec             float64
	cpu, cpuPerMillion float64
	loadCPU            float64 // share of the load CPU vigil-load used
	peakRSS, idleRSS   int64
	disk               int64
	queries            []logQueryTiming
	profile            string
	queryProfile       string
}

// column names the result in the report.
func (r *logsResult) column() string { return r.system + " (" + r.api.name + ")" }

// logQuery is one query every log store answers, in its own language.
type logQuery struct {
	name string
	// logql is sent to vigil's Loki API, logsql to VictoriaLogs; in both
	// {step} stands for the step of a count over time and {range} for the
	// whole range, each a duration in seconds ("10s").
	logql, logsql string
	kind          logQueryKind
}

type logQueryKind int

const (
	// linesQuery returns the newest 100 matching lines.
	linesQuery logQueryKind = iota
	// seriesQuery returns counts per service over time steps.
	seriesQuery
	// countQuery returns one number: the records in the range.
	countQuery
)

var logQueries = []logQuery{
	{"newest 100 lines of one service containing a word",
		`{service_name="` + logsService + `"} |= "` + logsWord + `"`,
		`_stream:{service_name="` + logsService + `"} ` + logsWord, linesQuery},
	{"records per service over time",
		`sum by (service_name) (count_over_time({service_name=~".+"}[{step}]))`,
		`* | stats by (service_name) count() hits`, seriesQuery},
	{"count of all records",
		`sum(count_over_time({service_name=~".+"}[{range}]))`,
		`* | stats count() hits`, countQuery},
}

type logQueryTiming struct {
	n, errors   int
	median, p95 time.Duration
	// failedAfter is the longest a failed run took, firstErr its error.
	failedAfter time.Duration
	firstErr    string
	// answer sums up the last answer: lines, series or the count.
	answer int64
}

var acknowledged = regexp.MustCompile(`acknowledged: (\d+) items`)

// runLogs drives vigil and VictoriaLogs with the same log records for the
// phase length: vigil over OTLP/HTTP (and, with -vigil-loki-push, over
// Loki's push API too), VictoriaLogs over Loki's push API, then times the
// same queries against both.
func (h *harness) runLogs() []*logsResult {
	if _, err := os.Stat(h.opts.vigilLoad); err != nil {
		return []*logsResult{{system: "vigil", api: apiOTLP,
			notRun: "not run: vigil-load not found at " + h.opts.vigilLoad + " (make bench-peers builds it)"}}
	}
	var out []*logsResult
	h.logf("logs: vigil over OTLP/HTTP")
	out = append(out, h.logsSystem("vigil", apiOTLP, func() (*server, error) { return h.startVigil("vigil-logs") }))
	if h.opts.vigilLokiPush {
		h.logf("logs: vigil over Loki push")
		out = append(out, h.logsSystem("vigil", apiLokiPush, func() (*server, error) { return h.startVigil("vigil-logs-loki") }))
	}
	if h.opts.victoriaLogs == "" {
		out = append(out, &logsResult{system: "VictoriaLogs", api: apiLokiPush,
			notRun: "not run: no VictoriaLogs binary given; set VICTORIALOGS_BIN=/path/to/victoria-logs"})
	} else {
		h.logf("logs: VictoriaLogs over Loki push")
		out = append(out, h.logsSystem("VictoriaLogs", apiLokiPush, h.startVictoriaLogs))
	}
	return out
}

func (h *harness) logsSystem(name string, api logsAPI, start func() (*server, error)) *logsResult {
	r := &logsResult{system: name, api: api}
	s, err := start()
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer stopAfter(s)
	// As in the metrics section: idle once the system has settled.
	time.Sleep(idleSettle)
	r.idleRSS, _ = procfs.StatusBytes(s.p.pid(), "VmRSS")
	d := h.opts.duration
	args := []string{h.opts.vigilLoad, "-signal", api.signal, "-duration", d.String(),
		"-concurrency", strconv.Itoa(logsSenders), "-batch", strconv.Itoa(logsBatch)}
	if api == apiLokiPush {
		args = append(args, "-loki-push", s.lokiPushURL)
	} else {
		args = append(args, "-otlp-http", s.otlpHTTP)
	}
	args = h.loadCommand(args...)
	h.recordCommand("vigil-load (logs, "+api.name+")", nil, args)
	var profErr chan error
	profPath := filepath.Join(h.work, "vigil-logs-"+api.signal+".pprof")
	if s.pprofURL != "" && d >= 15*time.Second {
		profErr = make(chan error, 1)
		go func() {
			time.Sleep(5 * time.Second)
			profErr <- h.profile(s, d-10*time.Second, profPath)
		}()
	}
	s0 := s.sample()
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	from := time.Now()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	err = cmd.Run()
	r.elapsed = time.Since(from)
	out := outBuf.String()
	if err != nil {
		r.err = fmt.Sprintf("vigil-load: %v\n%s", err, tailString(out, 5))
	}
	if ps := cmd.ProcessState; ps != nil && r.elapsed > 0 {
		r.loadCPU = (ps.UserTime() + ps.SystemTime()).Seconds() / r.elapsed.Seconds()
	}
	if m := acknowledged.FindStringSubmatch(out); m != nil {
		r.acked, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if name == "vigil" {
		// vigil acknowledges after its write-ahead log, so what it
		// acknowledged is stored; its counter says so once the queue drains.
		for range 40 {
			v, err := h.metric(s.metricsURL, []string{"vigil_stored_total"}, `signal="logs"`)
			r.counter = int64(v)
			if err == nil && r.counter >= r.acked {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	} else {
		// VictoriaLogs acknowledges from memory and makes recent rows
		// searchable about a second later; flush so queries and the size on
		// disk see them all.
		if _, err := h.get(s.httpBase + "/internal/force_flush"); err != nil && r.err == "" {
			r.err = "force_flush: " + err.Error()
		}
	}
	r.cpu = s.sample().cpu - s0.cpu
	r.perSec = float64(r.acked) / d.Seconds()
	r.peakRSS = s.peakRSS()
	if profErr != nil && <-profErr == nil {
		r.profile = profPath
	}
	// The queries cover the load from a little before its first record
	// (records are stamped up to a second before they are sent) to now.
	qStart, qEnd := from.Add(-5*time.Second).Truncate(time.Second), time.Now().Add(time.Second).Truncate(time.Second)
	time.Sleep(time.Second)
	h.logf("  %s queries", r.column())
	var qprofErr chan error
	qprofPath := filepath.Join(h.work, "vigil-log-queries-"+api.signal+".pprof")
	if s.pprofURL != "" {
		qprofErr = make(chan error, 1)
		go func() { qprofErr <- h.profile(s, logsQueryProfile, qprofPath) }()
	}
	for _, q := range logQueries {
		r.queries = append(r.queries, h.timeLogQuery(s, q, qStart, qEnd))
	}
	if qprofErr != nil && <-qprofErr == nil {
		r.queryProfile = qprofPath
	}
	if b, err := os.ReadFile(s.logPath); err == nil {
		r.queryTimeouts = strings.Count(string(b), "context deadline exceeded")
	}
	if c := r.queries[len(r.queries)-1]; c.answer > 0 {
		r.stored = c.answer
	} else {
		r.stored, r.storedByCounter = r.counter, true
	}
	if r.stored > 0 {
		r.cpuPerMillion = r.cpu / float64(r.stored) * 1e6
	}
	h.logf("  %s: %.0f records/s acknowledged, %d stored, cpu %.1fs, load generator cpu %.0f%%", r.column(), r.perSec, r.stored, r.cpu, 100*r.loadCPU)
	if err := s.p.stop(2 * time.Minute); err != nil && r.err == "" {
		r.err = err.Error()
	}
	if du, err := diskUsage(s.dataDir); err == nil {
		r.disk = du
	}
	return r
}

// logsStep is the step of the count over time: about six points over the
// load, whole seconds.
func logsStep(d time.Duration) time.Duration {
	return max(time.Second, (d / 6).Truncate(time.Second))
}

// timeLogQuery runs q up to -log-query-runs times (within logsQueryBudget),
// one after another, over [start, end].
func (h *harness) timeLogQuery(s *server, q logQuery, start, end time.Time) logQueryTiming {
	step := fmt.Sprintf("%ds", int(logsStep(h.opts.duration).Seconds()))
	expand := strings.NewReplacer("{step}", step, "{range}", fmt.Sprintf("%ds", int(end.Sub(start).Seconds()))).Replace
	var u string
	if s.name == "vigil" {
		v := url.Values{"query": {expand(q.logql)}}
		path := "/loki/api/v1/query_range"
		switch q.kind {
		case linesQuery:
			v.Set("limit", "100")
			v.Set("direction", "backward")
			v.Set("start", strconv.FormatInt(start.UnixNano(), 10))
			v.Set("end", strconv.FormatInt(end.UnixNano(), 10))
		case seriesQuery:
			v.Set("start", strconv.FormatInt(start.UnixNano(), 10))
			v.Set("end", strconv.FormatInt(end.UnixNano(), 10))
			v.Set("step", step)
		case countQuery:
			path = "/loki/api/v1/query"
			v.Set("time", strconv.FormatInt(end.UnixNano(), 10))
		}
		u = s.httpBase + path + "?" + v.Encode()
		h.recordCommand(s.name+" log query: "+q.name, nil, curlCommand(s.httpBase+path, v))
	} else {
		v := url.Values{"query": {expand(q.logsql)},
			"start": {start.Format(time.RFC3339Nano)}, "end": {end.Format(time.RFC3339Nano)}}
		path := "/select/logsql/query"
		switch q.kind {
		case linesQuery:
			v.Set("limit", "100")
		case seriesQuery:
			path = "/select/logsql/stats_query_range"
			v.Set("step", step)
		}
		u = s.httpBase + path + "?" + v.Encode()
		h.recordCommand(s.name+" log query: "+q.name, nil, curlCommand(s.httpBase+path, v))
	}
	client := &http.Client{Timeout: logsQueryTimeout}
	var t logQueryTiming
	var ds []time.Duration
	deadline := time.Now().Add(logsQueryBudget)
	for i := 0; i < h.opts.logQueryRuns && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		body, err := getBody(client, u)
		dt := time.Since(t0)
		t.n++
		var answer int64
		if err == nil {
			answer, err = logAnswer(s.name, q.kind, body)
		}
		if err != nil {
			if t.errors == 0 {
				h.logf("  %s: %s: %v", s.name, q.name, err)
				t.firstErr = err.Error()
			}
			t.errors++
			t.failedAfter = max(t.failedAfter, dt)
			continue
		}
		ds = append(ds, dt)
		t.answer = answer
	}
	t.median, t.p95 = quantiles(ds)
	return t
}

// curlCommand is the query as a command line a reader can paste.
func curlCommand(u string, v url.Values) []string {
	argv := []string{"curl", "-G", u}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		argv = append(argv, "--data-urlencode", "'"+k+"="+strings.ReplaceAll(v.Get(k), "'", `'\''`)+"'")
	}
	return argv
}

func getBody(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, tailString(string(body), 3))
	}
	return body, nil
}

// lokiResponse is the part of Loki's query answers read here.
type lokiResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Values [][]any `json:"values"`
			Value  []any   `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// logAnswer sums an answer up: the lines returned, the series, or the
// count.
func logAnswer(system string, kind logQueryKind, body []byte) (int64, error) {
	if system != "vigil" && kind != seriesQuery {
		// VictoriaLogs answers /select/logsql/query with one JSON object
		// per line.
		lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
		if kind == linesQuery {
			if len(lines[0]) == 0 {
				return 0, nil
			}
			return int64(len(lines)), nil
		}
		var row struct {
			Hits string `json:"hits"`
		}
		if err := json.Unmarshal(lines[0], &row); err != nil {
			return 0, err
		}
		return strconv.ParseInt(row.Hits, 10, 64)
	}
	// vigil's Loki API, and VictoriaLogs' stats_query_range, answer as
	// Loki and Prometheus do.
	var lr lokiResponse
	if err := json.Unmarshal(body, &lr); err != nil {
		return 0, err
	}
	if lr.Status != "success" {
		return 0, fmt.Errorf("status %q", lr.Status)
	}
	switch kind {
	case linesQuery:
		var n int64
		for _, s := range lr.Data.Result {
			n += int64(len(s.Values))
		}
		return n, nil
	case seriesQuery:
		return int64(len(lr.Data.Result)), nil
	}
	if len(lr.Data.Result) == 0 || len(lr.Data.Result[0].Value) != 2 {
		return 0, nil
	}
	s, _ := lr.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	return int64(f), err
}
