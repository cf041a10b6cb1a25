package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// The reliability suite runs short in `make test` and at full size with
// VIGIL_RELIABILITY=full (`make test-reliability`): the sizes the issue
// names, a minute of overload and a million new series.
func fullReliability() bool { return os.Getenv("VIGIL_RELIABILITY") == "full" }

// peakRSS is the process's high-water resident set, from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReliabilitySeriesFlood sends new series far past limits.max_series
// (a million in a minute at full size): the head stops growing at the
// limit, the refused samples are counted and answered as not retryable, a
// series that existed before keeps every sample, and memory stays under the
// configured cap.
func TestReliabilitySeriesFlood(t *testing.T) {
	const (
		maxSeries  = 50_000
		perRequest = 2000
		senders    = 4
		memLimit   = 1 << 30
	)
	total, pace := 200_000, time.Duration(0)
	if fullReliability() {
		total, pace = 1_000_000, time.Minute
	}
	cfg := writeConfig(t, fmt.Sprintf("limits:\n  max_series: %d\n  memory_limit: %dMiB\n", maxSeries, memLimit>>20))
	s := startServer(t, t.TempDir(), "--config", cfg)
	client := &http.Client{Timeout: time.Minute}
	writeURL := s.httpURL + "/api/v1/write"

	// The canary exists before the flood and is written all through it.
	canary := func(ts time.Time) *prompb.WriteRequest {
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "flood_canary"}, {Name: "job", Value: "canary"}},
			Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: 1}},
		}}}
	}
	if err := loadgen.PostRemoteWrite(t.Context(), client, writeURL, canary(time.Now())); err != nil {
		t.Fatal(err)
	}
	canaryAcked := 1
	floodDone := make(chan struct{})
	canaryDone := make(chan struct{})
	go func() {
		defer close(canaryDone)
		for {
			select {
			case <-floodDone:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if err := loadgen.PostRemoteWrite(t.Context(), client, writeURL, canary(time.Now())); err != nil {
				t.Errorf("canary sample refused during the flood: %v", err)
				continue
			}
			canaryAcked++
		}
	}()

	var (
		mu              sync.Mutex
		codes           = map[int]int{}
		refusedRequests int
		next            atomic.Int64
		wg              sync.WaitGroup
	)
	requests := total / perRequest
	start := time.Now()
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := loadgen.New(uint64(200 + w))
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				if pace > 0 {
					time.Sleep(time.Until(start.Add(pace * time.Duration(i) / time.Duration(requests))))
				}
				req := g.WriteRequest("flood", perRequest, time.Now(), prompb.Label{Name: "batch", Value: strconv.Itoa(i)})
				err := loadgen.PostRemoteWrite(t.Context(), client, writeURL, req)
				var se *loadgen.StatusError
				mu.Lock()
				switch {
				case err == nil:
					codes[http.StatusNoContent]++
				case errors.As(err, &se):
					codes[se.Code]++
					if se.Code == http.StatusBadRequest && strings.Contains(se.Body, "series") {
						refusedRequests++
					}
				default:
					codes[-1]++
					t.Errorf("request %d: %v", i, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(floodDone)
	<-canaryDone
	t.Logf("%d new series in %d requests over %v: status codes %v", total, requests, took.Round(time.Millisecond), codes)

	for code, n := range codes {
		if code != http.StatusNoContent && code != http.StatusBadRequest {
			t.Errorf("%d requests answered %d; a series flood must get 204 or 400 (not retryable)", n, code)
		}
	}
	if refusedRequests == 0 {
		t.Error("no request was refused for the series limit")
	}
	head := s.metricValue(t, "prometheus_tsdb_head_series")
	// Concurrent appenders may each pass the count before creating their
	// series: the overshoot is at most one per appender in flight.
	if head < maxSeries || head > maxSeries+64 {
		t.Errorf("head holds %v series; want the limit %d (plus at most the appenders in flight)", head, maxSeries)
	}
	rejected := s.metricValue(t, `vigil_rejected_total{reason="series_limit",signal="metrics"}`)
	if want := float64(total) - head; rejected < want-64 || rejected > want+64 {
		t.Errorf("vigil_rejected_total{series_limit} = %v, want about %v (offered %d, held %v)", rejected, want, total, head)
	}
	got := s.promQuery(t, `count_over_time(flood_canary[10m])`)
	if len(got) != 1 || got[0].Value[1] != strconv.Itoa(canaryAcked) {
		t.Errorf("canary: %d samples acknowledged, stored %v", canaryAcked, got)
	}
	rss := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("head series %v, rejected %v samples, canary %d samples kept, peak RSS %d MiB (cap %d MiB)", head, rejected, canaryAcked, rss>>20, memLimit>>20)
	if rss > memLimit {
		t.Errorf("peak RSS %d MiB is above limits.memory_limit %d MiB", rss>>20, memLimit>>20)
	}
	if code := s.getJSON(t, "/-/healthy", nil); code != http.StatusOK {
		t.Errorf("healthy after the flood: %d", code)
	}
}

// TestReliabilityOverload offers four times the rate vigil sustains on this
// machine (measured first, in the same run, with as many closed-loop senders
// as the receiver admits) for 10 s, or 60 s at full size:
// every answer is a success or a retryable refusal, memory stays under
// limits.memory_limit, the server stays up, and once the load stops the
// backlog drains and everything acknowledged is stored.
func TestReliabilityOverload(t *testing.T) {
	const (
		memLimit   = 1 << 30
		perRequest = 500 // spans: 100 traces of 5
	)
	overloadFor := 10 * time.Second
	if fullReliability() {
		overloadFor = time.Minute
	}
	cfg := writeConfig(t, fmt.Sprintf("limits:\n  memory_limit: %dMiB\n", memLimit>>20))
	s := startServer(t, t.TempDir(), "--config", cfg)
	client := &http.Client{Timeout: 2 * time.Minute}

	// Payloads are encoded up front, so the sender spends its CPU sending.
	g := loadgen.New(7)
	payloads := make([][]byte, 64)
	for i := range payloads {
		td, _ := g.Traces(perRequest/5, 5, time.Now())
		b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		payloads[i] = b
	}
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		acked atomic.Int64
	)
	send := func(i int) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.otlpHTTPURL+"/v1/traces", bytes.NewReader(payloads[i%len(payloads)]))
		req.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := client.Do(req)
		if err != nil {
			mu.Lock()
			codes[-1]++
			mu.Unlock()
			return
		}
		resp.Body.Close()
		mu.Lock()
		codes[resp.StatusCode]++
		mu.Unlock()
		switch resp.StatusCode {
		case http.StatusOK:
			acked.Add(perRequest)
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After", resp.StatusCode)
			}
		}
	}

	// Sustainable rate: what closed-loop senders, as many as the receiver
	// admits at once, get acknowledged.
	const closedLoop = 16
	measure := 8 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), measure)
	var wg sync.WaitGroup
	for w := range closedLoop {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i += closedLoop {
				send(i)
			}
		}()
	}
	wg.Wait()
	cancel()
	storedBefore := s.metricValue(t, `vigil_stored_total{signal="traces"}`)
	sustained := storedBefore / measure.Seconds()
	if sustained <= 0 {
		t.Fatalf("nothing stored while measuring the sustainable rate (codes %v)", codes)
	}

	// Overload: requests leave on a schedule at four times that rate,
	// whatever the answers, as many in flight as it takes (up to 256).
	mu.Lock()
	clear(codes)
	mu.Unlock()
	acked.Store(0)
	offered := 4 * sustained
	interval := time.Duration(float64(time.Second) * perRequest / offered)
	slots := make(chan struct{}, 256)
	var sent, skipped int
	var peak int64
	deadline := time.Now().Add(overloadFor)
	tick := time.NewTicker(interval)
	for i := 0; time.Now().Before(deadline); i++ {
		<-tick.C
		select {
		case slots <- struct{}{}:
			sent++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				send(i)
			}()
		default:
			skipped++
		}
		if i%50 == 0 {
			peak = max(peak, peakRSS(t, s.cmd.Process.Pid))
		}
	}
	tick.Stop()
	wg.Wait()
	t.Logf("sustained %.0f spans/s; offered %.0f spans/s for %v: %d requests sent, %d not sent (all 256 senders busy), codes %v",
		sustained, offered, overloadFor, sent, skipped, codes)

	for code, n := range codes {
		switch code {
		case http.StatusOK, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		default:
			t.Errorf("%d requests answered %d under overload; want 200, or 429/503 with Retry-After", n, code)
		}
	}
	if codes[http.StatusTooManyRequests]+codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("nothing refused at 4x the sustained rate (codes %v): the admission bound did not act", codes)
	}
	if code := s.getJSON(t, "/-/healthy", nil); code != http.StatusOK {
		t.Fatalf("unhealthy after overload: %d", code)
	}

	// The backlog drains and everything acknowledged is stored.
	want := storedBefore + float64(acked.Load())
	waitFor(t, "the backlog to drain", 3*time.Minute, func() bool {
		return s.metricValue(t, `vigil_queue_depth{signal="traces"}`) == 0 &&
			s.metricValue(t, `vigil_stored_total{signal="traces"}`) >= want
	})
	if stored := s.metricValue(t, `vigil_stored_total{signal="traces"}`); stored != want {
		t.Errorf("stored %v spans, acknowledged %v", stored, want)
	}
	peak = max(peak, peakRSS(t, s.cmd.Process.Pid))
	t.Logf("peak RSS %d MiB (cap %d MiB); %v spans acknowledged and stored", peak>>20, memLimit>>20, want)
	if peak > memLimit {
		t.Errorf("peak RSS %d MiB above limits.memory_limit %d MiB", peak>>20, memLimit>>20)
	}
	select {
	case err := <-s.done:
		t.Fatalf("vigil exited: %v", err)
	default:
	}
}
