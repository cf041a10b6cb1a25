package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// stuckGRPCCall opens an OTLP/gRPC export on a raw HTTP/2 connection and
// sends half of its message, never the rest: the call stays in flight, as
// one from a client that hung or lost its network mid-send.
func stuckGRPCCall(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", addr},
		{":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// gRPC's length prefix promises 1000 bytes; 10 follow.
	msg := append([]byte{0, 0, 0, 0x03, 0xe8}, make([]byte, 10)...)
	if err := fr.WriteData(1, false, msg); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, c) }() // the server's settings and pings
}

// halfSentPOST sends an OTLP/HTTP export's headers and the first half of its
// body; the returned function sends the rest and reads the answer.
func halfSentPOST(t *testing.T, addr string) (finish func() (*http.Response, error)) {
	t.Helper()
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("late")
	span.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	span.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	now := time.Now()
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	head := fmt.Sprintf("POST /v1/traces HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	return func() (*http.Response, error) {
		if _, err := c.Write(body[len(body)/2:]); err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
}

// TestReliabilitySIGTERMWithStuckClients: clients stuck mid-request (a gRPC
// call holding a half-sent message, an OTLP/HTTP body that never ends; one
// of each, a hundred at full size) do
// not keep vigil from stopping: it exits within shutdown_timeout. And from
// the signal on nothing new is acknowledged: a body completed after it is
// answered 503 with Retry-After, not 200.
func TestReliabilitySIGTERMWithStuckClients(t *testing.T) {
	t.Parallel()
	const budget = 3 * time.Second
	// The stores close after the budget; on a loaded machine that and
	// the process's exit take a moment more.
	const margin = 5 * time.Second
	stuck := 1
	if fullReliability() {
		stuck = 100
	}
	// Room for every stuck call, so that each holds its place in the
	// stop rather than being refused as overload at once.
	cfg := writeConfig(t, fmt.Sprintf("shutdown_timeout: %s\ningest:\n  max_requests_in_flight: %d\n", budget, 2*stuck+16))
	s := startServer(t, t.TempDir(), "--config", cfg)
	otlpAddr := strings.TrimPrefix(s.otlpHTTPURL, "http://")

	late := halfSentPOST(t, otlpAddr)
	for range stuck {
		stuckGRPCCall(t, s.grpcA)
		_ = halfSentPOST(t, otlpAddr) // never finished
	}
	time.Sleep(200 * time.Millisecond) // the server is reading all three

	begin := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(s.logs.String(), "ingest refused from now on") {
		if time.Since(begin) > budget {
			t.Fatalf("no sign within %v of SIGTERM that ingest is refused", budget)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := late()
	switch {
	case err != nil:
		t.Errorf("a body completed after SIGTERM got no answer (%v); want 503 with Retry-After", err)
	case resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "":
		t.Errorf("a body completed after SIGTERM was answered %s (Retry-After %q); want 503 with Retry-After: it must not be acknowledged",
			resp.Status, resp.Header.Get("Retry-After"))
	}

	expectExitWithin(t, s, begin, budget, margin)
}

// expectExitWithin waits for s to exit after a SIGTERM sent at begin and
// fails unless it exited cleanly within budget+margin, logging no error.
func expectExitWithin(t *testing.T, s *server, begin time.Time, budget, margin time.Duration) {
	t.Helper()
	select {
	case err := <-s.done:
		took := time.Since(begin)
		t.Logf("exited %v after SIGTERM (shutdown_timeout %v)", took.Round(10*time.Millisecond), budget)
		if err != nil {
			t.Errorf("exit: %v", err)
		}
		if took > budget+margin {
			t.Errorf("took %v to exit; want within shutdown_timeout %v (+%v)", took, budget, margin)
		}
	case <-time.After(budget + margin + 20*time.Second):
		t.Fatalf("still running %v after SIGTERM (shutdown_timeout %v)", time.Since(begin).Round(time.Second), budget)
	}
	if logs := s.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("errors logged by a stop that lost nothing:\n%s", grepLines(logs, `"level":"ERROR"`))
	}
}

// TestRestartAfterCleanStopIsClean: a start after a clean stop must not
// report the stop as unclean (a lock file warning, and
// prometheus_tsdb_clean_start 0, which alerts on crashes would page on).
func TestRestartAfterCleanStopIsClean(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startServer(t, dir)
	first.stop(t)
	s := startServer(t, dir)
	defer s.stop(t)
	if logs := s.logs.String(); strings.Contains(strings.ToLower(logs), "lockfile") {
		t.Errorf("start after a clean stop warns of a lock file:\n%s", logs)
	}
	resp, err := http.Get(s.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nprometheus_tsdb_clean_start 1\n") {
		t.Errorf("prometheus_tsdb_clean_start is not 1 after a clean stop:\n%s", grepLines(string(b), "prometheus_tsdb_clean_start"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// slowExpr takes tens of seconds to evaluate (345,600 outer steps, each
// over 21,600 inner ones) without holding much memory.
const slowExpr = `sum_over_time((sum_over_time(vector(time())[6h:1s]))[4d:1s])`

// TestReliabilitySIGTERMDuringSlowWork: a query or rule evaluation that
// would run for tens of seconds neither holds a stop past shutdown_timeout
// nor makes it log an error: nothing acknowledged was lost.
func TestReliabilitySIGTERMDuringSlowWork(t *testing.T) {
	const budget, margin = 3 * time.Second, 5 * time.Second
	for _, tc := range []struct {
		name  string
		rules string // a rule file, evaluated every second
		query bool   // a query in flight at SIGTERM
	}{
		{name: "slow query", query: true},
		{name: "slow rule evaluation", rules: "groups:\n  - name: slow\n    rules:\n      - record: vigil:slow\n        expr: " + slowExpr + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			yaml := fmt.Sprintf("shutdown_timeout: %s\n", budget)
			if tc.rules != "" {
				yaml += "global:\n  evaluation_interval: 1s\nrule_files: [\"slow.rules.yml\"]\n"
			}
			cfg := writeConfig(t, yaml)
			if tc.rules != "" {
				if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), "slow.rules.yml"), []byte(tc.rules), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s := startServer(t, t.TempDir(), "--config", cfg)
			if tc.query {
				go func() {
					resp, err := http.Get(s.httpURL + "/api/v1/query?query=" + url.QueryEscape(slowExpr))
					if err == nil {
						resp.Body.Close()
					}
				}()
			}
			time.Sleep(2 * time.Second) // the query or the first evaluation is under way
			begin := time.Now()
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			expectExitWithin(t, s, begin, budget, margin)
		})
	}
}

// stopStages are the components of the server's stop, stage by stage, in
// the order docs/architecture.md documents: a component of a stage is
// stopped only once every component of the stages before has.
var stopStages = [][]string{
	{"ingest gate", "reloader", "config watches", "registry"},
	{"http", "otlp http", "otlp grpc"},
	{"scrape", "profile scrape"},
	{"memory guard", "idle memory trim", "traces queue", "logs queue", "rules", "doctor", "config guard"},
	{"span metrics recorder", "drained"},
	{"alertmanager"},
	{"storage", "config centre"},
}

// TestSIGTERMStopsInOrderAndKeepsAcknowledged: on SIGTERM under load the
// components stop in the documented order, and whatever was acknowledged
// up to the signal is there after a restart: the spans and logs, and the
// span metrics counted from them, which reach the TSDB only in the
// recorder's last flush, before storage closes.
func TestSIGTERMStopsInOrderAndKeepsAcknowledged(t *testing.T) {
	t.Parallel()
	const budget, margin = 10 * time.Second, 10 * time.Second
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("shutdown_timeout: %s\n", budget))
	s := startServer(t, dir, "--config", cfg, "--log-level", "debug")

	var (
		a      acked
		stop   atomic.Bool
		wg     sync.WaitGroup
		client = &http.Client{Timeout: 30 * time.Second}
		ctx    = context.Background()
	)
	for w := range 2 {
		wg.Go(func() {
			g := loadgen.New(uint64(40 + w))
			for !stop.Load() {
				td, ids := g.Traces(tracesPerRequest, spansPerTrace, time.Now())
				if loadgen.PostTraces(ctx, client, s.otlpHTTPURL, td) == nil {
					a.mu.Lock()
					a.traceIDs = append(a.traceIDs, ids...)
					a.mu.Unlock()
				}
			}
		})
		wg.Go(func() {
			g := loadgen.New(uint64(50 + w))
			for !stop.Load() {
				tid := g.TraceID()
				if loadgen.PostLogs(ctx, client, s.otlpHTTPURL, g.Logs(logsPerRequest, time.Now(), []pcommon.TraceID{tid})) == nil {
					a.mu.Lock()
					a.logTraces = append(a.logTraces, tid)
					a.mu.Unlock()
				}
			}
		})
	}
	waitFor(t, "load to be acknowledged", time.Minute, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.traceIDs) >= 20*tracesPerRequest && len(a.logTraces) >= 20
	})
	// The senders go on until the server refuses them: requests are in
	// flight when the signal comes.
	begin := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectExitWithin(t, s, begin, budget, margin)
	stop.Store(true)
	wg.Wait()
	checkStopOrder(t, s.logs.String())

	s = startServer(t, dir)
	defer s.stop(t)
	t.Logf("%d traces and %d log batches acknowledged", len(a.traceIDs), len(a.logTraces))
	for _, id := range a.traceIDs {
		var tr struct {
			Data []struct {
				Spans []struct{} `json:"spans"`
			} `json:"data"`
		}
		if code := s.getJSON(t, "/api/traces/"+id.String(), &tr); code != http.StatusOK || len(tr.Data) != 1 || len(tr.Data[0].Spans) != spansPerTrace {
			t.Fatalf("acknowledged trace %s after the restart: HTTP %d, %v", id, code, tr.Data)
		}
	}
	for _, id := range a.logTraces {
		var lr struct {
			Data []struct{} `json:"data"`
		}
		q := url.Values{"trace_id": {id.String()}, "limit": {"1000"}}
		if code := s.getJSON(t, "/api/logs?"+q.Encode(), &lr); code != http.StatusOK || len(lr.Data) != logsPerRequest {
			t.Fatalf("acknowledged logs of trace %s after the restart: HTTP %d, %d records, want %d", id, code, len(lr.Data), logsPerRequest)
		}
	}
	// Stored spans may outnumber acknowledged ones (a batch stored whose
	// answer was cut off), never the other way round.
	calls := 0.0
	for _, r := range s.promQuery(t, "sum(max_over_time(traces_span_metrics_calls_total[1h]))") {
		calls, _ = strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
	}
	if want := len(a.traceIDs) * spansPerTrace; calls < float64(want) {
		t.Errorf("span metrics count %v calls after the restart, want at least the %d spans acknowledged: the recorder's last flush was lost", calls, want)
	}
}

// checkStopOrder checks the "stopped" lines the server logged at debug
// level against stopStages.
func checkStopOrder(t *testing.T, logs string) {
	t.Helper()
	stageOf := map[string]int{}
	for i, stage := range stopStages {
		for _, c := range stage {
			stageOf[c] = i
		}
	}
	seen := map[string]bool{}
	last := -1
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct{ Msg, Component, Stage string }
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "stopped" || l.Stage == "" {
			continue
		}
		i, ok := stageOf[l.Component]
		switch {
		case !ok:
			t.Errorf("component %q (stage %s) stopped; the documented order does not list it", l.Component, l.Stage)
			continue
		case seen[l.Component]:
			t.Errorf("component %q stopped twice", l.Component)
		case i < last:
			t.Errorf("component %q of stage %d stopped after one of stage %d", l.Component, i, last)
		}
		seen[l.Component] = true
		last = max(last, i)
	}
	for c := range stageOf {
		if !seen[c] {
			t.Errorf("component %q never logged its stop", c)
		}
	}
}
