package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

const (
	tracesPerRequest = 10
	spansPerTrace    = 5
	logsPerRequest   = 50
	seriesPerRequest = 10
)

// acked records what the server acknowledged before it was killed.
type acked struct {
	mu        sync.Mutex
	traceIDs  []pcommon.TraceID
	logTraces []pcommon.TraceID // each carries logsPerRequest records
	rwReqs    []int             // remote_write request numbers
}

// TestKill9KeepsAcknowledgedData is the durability promise: whatever vigil
// answered with success (OTLP 200, remote_write 204) survives kill -9.
func TestKill9KeepsAcknowledgedData(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)

	var (
		a       acked
		stop    atomic.Bool
		wg      sync.WaitGroup
		reqs    atomic.Int64
		client  = &http.Client{Timeout: 30 * time.Second}
		ctx     = context.Background()
		started = time.Now()
	)
	run := func(seed uint64, send func(g *loadgen.Generator, n int) error) {
		defer wg.Done()
		g := loadgen.New(seed)
		for n := 0; !stop.Load(); n++ {
			if err := send(g, n); err == nil {
				reqs.Add(1)
			} else if stop.Load() {
				return
			}
		}
	}
	for w := range 2 {
		wg.Add(3)
		go run(uint64(10+w), func(g *loadgen.Generator, n int) error {
			td, ids := g.Traces(tracesPerRequest, spansPerTrace, time.Now())
			if err := loadgen.PostTraces(ctx, client, s.otlpHTTPURL, td); err != nil {
				return err
			}
			a.mu.Lock()
			a.traceIDs = append(a.traceIDs, ids...)
			a.mu.Unlock()
			return nil
		})
		go run(uint64(20+w), func(g *loadgen.Generator, n int) error {
			tid := g.TraceID()
			if err := loadgen.PostLogs(ctx, client, s.otlpHTTPURL, g.Logs(logsPerRequest, time.Now(), []pcommon.TraceID{tid})); err != nil {
				return err
			}
			a.mu.Lock()
			a.logTraces = append(a.logTraces, tid)
			a.mu.Unlock()
			return nil
		})
		go run(uint64(30+w), func(g *loadgen.Generator, n int) error {
			id := w*1_000_000 + n
			req := g.WriteRequest("e2e_kill", seriesPerRequest, time.Now(), prompb.Label{Name: "req", Value: strconv.Itoa(id)})
			if err := loadgen.PostRemoteWrite(ctx, client, s.httpURL+"/api/v1/write", req); err != nil {
				return err
			}
			a.mu.Lock()
			a.rwReqs = append(a.rwReqs, id)
			a.mu.Unlock()
			return nil
		})
	}
	// Kill mid-load once every signal has a fair number of acknowledgements.
	waitFor(t, "load to be acknowledged", 3*time.Minute, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		enough := len(a.traceIDs) >= 40*tracesPerRequest && len(a.logTraces) >= 40 && len(a.rwReqs) >= 40
		// At full size the load runs for half a minute first: WAL
		// segments roll and checkpoints run under it before the kill.
		return enough && (!fullReliability() || time.Since(started) > 30*time.Second)
	})
	s.kill9(t)
	stop.Store(true)
	wg.Wait()
	t.Logf("killed after %v and %d acknowledged requests: %d traces, %d log batches, %d remote_write requests",
		time.Since(started).Round(time.Millisecond), reqs.Load(), len(a.traceIDs), len(a.logTraces), len(a.rwReqs))

	s = startServer(t, dir)

	missingSpans := 0
	for _, id := range a.traceIDs {
		var tr struct {
			Data []struct {
				Spans []struct{} `json:"spans"`
			} `json:"data"`
		}
		code := s.getJSON(t, "/api/traces/"+id.String(), &tr)
		if code != http.StatusOK || len(tr.Data) != 1 || len(tr.Data[0].Spans) != spansPerTrace {
			missingSpans++
			if missingSpans <= 5 {
				t.Errorf("trace %s: HTTP %d, %v", id, code, tr.Data)
			}
		}
	}
	missingLogs := 0
	for _, id := range a.logTraces {
		var lr struct {
			Data []struct{} `json:"data"`
		}
		q := url.Values{"trace_id": {id.String()}, "limit": {"1000"}}
		code := s.getJSON(t, "/api/logs?"+q.Encode(), &lr)
		if code != http.StatusOK || len(lr.Data) != logsPerRequest {
			missingLogs++
			if missingLogs <= 5 {
				t.Errorf("logs of trace %s: HTTP %d, %d records, want %d", id, code, len(lr.Data), logsPerRequest)
			}
		}
	}
	got := map[string]string{}
	for _, r := range s.promQuery(t, "count by (req) (last_over_time(e2e_kill[1h]))") {
		got[r.Metric["req"]] = fmt.Sprint(r.Value[1])
	}
	missingSamples := 0
	for _, id := range a.rwReqs {
		if got[strconv.Itoa(id)] != strconv.Itoa(seriesPerRequest) {
			missingSamples++
			if missingSamples <= 5 {
				t.Errorf("remote_write request %d: %q series found, want %d", id, got[strconv.Itoa(id)], seriesPerRequest)
			}
		}
	}
	if missingSpans+missingLogs+missingSamples > 0 {
		t.Fatalf("acknowledged data lost: %d traces, %d log batches, %d remote_write requests", missingSpans, missingLogs, missingSamples)
	}
}
