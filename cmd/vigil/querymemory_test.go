package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// TestReliabilityHostileQueries fires the reported reproductions of queries
// that exhausted memory, many at once, against a server capped at 1 GiB:
// subqueries whose cost only shows after duration expressions are resolved
// or whose times the old guard could not parse (refused, 400), range
// queries over 20k series (3.2 GB before; now ended by the sample, series
// and answer limits, 422, or made to wait for a slot, 503) and a trace of
// 20k spans read by id (2.2 GB before; now truncated, with a warning).
// Peak memory stays under limits.memory_limit plus a margin for what is
// not the queries' (the runtime, DuckDB's buffers above its share, page
// cache of mapped TSDB chunks), and the server answers afterwards.
func TestReliabilityHostileQueries(t *testing.T) {
	const (
		memLimit = 1 << 30
		margin   = 128 << 20
		series   = 20_000
		spans    = 20_000
	)
	samplesPerSeries, spanAttrBytes, rounds, parallel := 5, 1<<10, 1, 12
	if fullReliability() {
		// The sizes: 327 MB of trace JSON, an hour of samples.
		samplesPerSeries, spanAttrBytes, rounds, parallel = 60, 15<<10, 3, 16
	}
	cfg := writeConfig(t, fmt.Sprintf("limits:\n  memory_limit: %dMiB\n", memLimit>>20))
	s := startServer(t, t.TempDir(), "--config", cfg)
	client := &http.Client{Timeout: 5 * time.Minute}

	// 20k series, a sample a minute up to now.
	now := time.Now()
	g := loadgen.New(7)
	for i := samplesPerSeries - 1; i >= 0; i-- {
		req := g.WriteRequest("hostile", series, now.Add(-time.Duration(i)*time.Minute), prompb.Label{Name: "k", Value: "v"})
		if err := loadgen.PostRemoteWrite(t.Context(), client, s.httpURL+"/api/v1/write", req); err != nil {
			t.Fatalf("remote_write: %v", err)
		}
	}
	// One trace of 20k spans, each with a large attribute.
	traceID := pcommon.TraceID{0xab, 0xcd, 1}
	big := strings.Repeat("x", spanAttrBytes)
	const batch = 500
	for first := 0; first < spans; first += batch {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "hostile")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for i := first; i < first+batch; i++ {
			sp := ss.AppendEmpty()
			sp.SetTraceID(traceID)
			sp.SetSpanID(pcommon.SpanID{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 1})
			if i > 0 {
				sp.SetParentSpanID(pcommon.SpanID{0, 0, 0, 0, 1})
			}
			sp.SetName("op")
			at := now.Add(-time.Minute + time.Duration(i)*time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
			sp.Attributes().PutStr("payload", big)
		}
		if err := loadgen.PostTraces(t.Context(), client, s.otlpHTTPURL, td); err != nil {
			t.Fatalf("OTLP traces: %v", err)
		}
	}
	// The spans are searchable once written; wait for the trace to be there.
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(s.httpURL + "/api/traces/" + traceIDHex(traceID))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the trace was not readable within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}

	rangeQ := func(q string) string {
		return "/api/v1/query_range?" + url.Values{"query": {q}, "start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)},
			"end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"1"}}.Encode()
	}
	type attack struct {
		name, path string
		want       []int // acceptable status codes
	}
	attacks := []attack{
		{"subquery behind a duration expression", "/api/v1/query?" + url.Values{"query": {"count_over_time(vector(1)[(100000d):1ms])"}}.Encode(), []int{400}},
		{"range query at times the guard could not parse", "/api/v1/query_range?" + url.Values{"query": {"count_over_time(vector(1)[100d:1s])"},
			"start": {"999000000000"}, "end": {"1000000100000"}, "step": {"100010"}}.Encode(), []int{400}},
		{"range over 20k series", rangeQ("hostile"), []int{422, 503}},
		{"binary operation over 20k series", rangeQ("hostile + 0"), []int{422, 503}},
		{"aggregation keeping 20k series", rangeQ("sum by (series) (hostile)"), []int{422, 503}},
		{"trace of 20k spans by id", "/api/traces/" + traceIDHex(traceID), []int{200, 503}},
	}
	var (
		mu      sync.Mutex
		answers = map[string]map[int]int{}
		wg      sync.WaitGroup
	)
	for _, a := range attacks {
		answers[a.name] = map[int]int{}
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					code := -1
					resp, err := client.Get(s.httpURL + a.path)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						code = resp.StatusCode
					}
					mu.Lock()
					answers[a.name][code]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, a := range attacks {
		t.Logf("%s: answers %v", a.name, answers[a.name])
		for code, n := range answers[a.name] {
			if !slices.Contains(a.want, code) {
				t.Errorf("%s: %d answered %d, want one of %v", a.name, n, code, a.want)
			}
		}
	}
	rss := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("peak RSS %d MiB (limit %d MiB + margin %d MiB)", rss>>20, memLimit>>20, margin>>20)
	if rss > memLimit+margin {
		t.Errorf("peak RSS %d MiB is above limits.memory_limit %d MiB + %d MiB", rss>>20, memLimit>>20, margin>>20)
	}

	// Alone, the trace is answered truncated, with Jaeger's warning.
	var tr struct {
		Data []struct {
			Spans    []json.RawMessage `json:"spans"`
			Warnings []string          `json:"warnings"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/traces/"+traceIDHex(traceID), &tr); code != http.StatusOK || len(tr.Data) != 1 {
		t.Fatalf("trace by id: HTTP %d, %d traces", code, len(tr.Data))
	}
	if n := len(tr.Data[0].Spans); n >= spans || len(tr.Data[0].Warnings) == 0 || !strings.Contains(tr.Data[0].Warnings[0], "truncated") {
		t.Errorf("trace of %d spans: %d spans answered with warnings %q, want it truncated and saying so", spans, n, tr.Data[0].Warnings)
	}
	// The server still answers, and ordinary queries work.
	if got := s.promQuery(t, `count(hostile)`); len(got) != 1 || got[0].Value[1] != strconv.Itoa(series) {
		t.Errorf("count(hostile) after the attack = %v, want %d", got, series)
	}
}

func traceIDHex(id pcommon.TraceID) string { return fmt.Sprintf("%x", id[:]) }
