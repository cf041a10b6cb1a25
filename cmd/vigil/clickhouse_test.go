package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/loadgen"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
)

// TestClickHouseTwoNodes: two vigil processes on one ClickHouse (one
// server, or two shards behind Distributed tables) both ingest, a
// ClickHouse server restarts in the middle of it, and afterwards every
// acknowledged trace, log batch and remote_write request is there, and
// both nodes answer every query with the same result.
func TestClickHouseTwoNodes(t *testing.T) {
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			t.Parallel()
			testClickHouseTwoNodes(t, shards)
		})
	}
}

func testClickHouseTwoNodes(t *testing.T, shards int) {
	servers := chtest.StartCluster(t, shards)
	cluster := ""
	if shards > 1 {
		cluster = chtest.ClusterName
	}
	ch := servers[len(servers)-1] // the one restarted: in a cluster, not the one vigil connects to
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "storage:\n  backend: clickhouse\n  clickhouse:\n    dsn: %s\n    cluster: %q\n", servers[0].DSN("vigil"), cluster), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := []*server{
		startServer(t, filepath.Join(dir, "a"), "--config", cfg),
		startServer(t, filepath.Join(dir, "b"), "--config", cfg),
	}

	var (
		mu        sync.Mutex
		traceIDs  []pcommon.TraceID
		logTraces []pcommon.TraceID
		rwReqs    []int
		refused   atomic.Int64
		stop      atomic.Bool
		wg        sync.WaitGroup
		client    = &http.Client{Timeout: 30 * time.Second}
		ctx       = context.Background()
	)
	keep := func(err error, record func()) {
		var se *loadgen.StatusError
		switch {
		case err == nil:
			mu.Lock()
			record()
			mu.Unlock()
		case errors.As(err, &se) && (se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests):
			refused.Add(1) // retryable: the client would send it again
		case !stop.Load():
			t.Errorf("unexpected answer: %v", err)
		}
	}
	for i, s := range nodes {
		wg.Add(3)
		go func() {
			defer wg.Done()
			g := loadgen.New(uint64(100 + i))
			for !stop.Load() {
				td, ids := g.Traces(tracesPerRequest, spansPerTrace, time.Now())
				keep(loadgen.PostTraces(ctx, client, s.otlpHTTPURL, td), func() { traceIDs = append(traceIDs, ids...) })
				time.Sleep(20 * time.Millisecond)
			}
		}()
		go func() {
			defer wg.Done()
			g := loadgen.New(uint64(200 + i))
			for !stop.Load() {
				tid := g.TraceID()
				keep(loadgen.PostLogs(ctx, client, s.otlpHTTPURL, g.Logs(logsPerRequest, time.Now(), []pcommon.TraceID{tid})),
					func() { logTraces = append(logTraces, tid) })
				time.Sleep(20 * time.Millisecond)
			}
		}()
		go func() {
			defer wg.Done()
			g := loadgen.New(uint64(300 + i))
			for n := 0; !stop.Load(); n++ {
				id := i*1_000_000 + n
				req := g.WriteRequest("e2e_ch", seriesPerRequest, time.Now(), prompb.Label{Name: "req", Value: strconv.Itoa(id)})
				keep(loadgen.PostRemoteWrite(ctx, client, s.httpURL+"/api/v1/write", req), func() { rwReqs = append(rwReqs, id) })
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	acks := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(traceIDs) >= n*tracesPerRequest && len(logTraces) >= n && len(rwReqs) >= n
		}
	}
	waitFor(t, "load acknowledged", 2*time.Minute, acks(20))
	ch.Restart()
	waitFor(t, "load acknowledged after the restart", 2*time.Minute, acks(60))
	stop.Store(true)
	wg.Wait()
	t.Logf("acknowledged %d traces, %d log batches, %d remote_write requests; %d requests refused as retryable",
		len(traceIDs), len(logTraces), len(rwReqs), refused.Load())

	// Both nodes see every acknowledged item, and say the same of it.
	same := func(what, path string, check func(body []byte) error) {
		t.Helper()
		var bodies [][]byte
		for _, s := range nodes {
			resp, err := http.Get(s.httpURL + path)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s from %s: HTTP %d %s", what, s.httpURL, resp.StatusCode, body)
				return
			}
			if err := check([]byte(body)); err != nil {
				t.Errorf("%s from %s: %v", what, s.httpURL, err)
			}
			bodies = append(bodies, []byte(body))
		}
		var a, b any
		if json.Unmarshal(bodies[0], &a) != nil || json.Unmarshal(bodies[1], &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the nodes disagree:\n%s\n%s", what, bodies[0], bodies[1])
		}
	}
	for i, id := range traceIDs {
		if i%7 != 0 { // a sample keeps the test short; every one was acknowledged alike
			continue
		}
		same("trace "+id.String(), "/api/traces/"+id.String(), func(body []byte) error {
			var tr struct {
				Data []struct {
					Spans []struct{} `json:"spans"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &tr); err != nil {
				return err
			}
			if len(tr.Data) != 1 || len(tr.Data[0].Spans) != spansPerTrace {
				return fmt.Errorf("%+v, want one trace of %d spans", tr.Data, spansPerTrace)
			}
			return nil
		})
	}
	for i, id := range logTraces {
		if i%3 != 0 {
			continue
		}
		q := url.Values{"trace_id": {id.String()}, "limit": {"1000"}}
		same("logs of trace "+id.String(), "/api/logs?"+q.Encode(), func(body []byte) error {
			var lr struct {
				Data []struct{} `json:"data"`
			}
			if err := json.Unmarshal(body, &lr); err != nil {
				return err
			}
			if len(lr.Data) != logsPerRequest {
				return fmt.Errorf("%d records, want %d", len(lr.Data), logsPerRequest)
			}
			return nil
		})
	}
	q := url.Values{"query": {"count by (req) (last_over_time(e2e_ch[1h]))"}, "time": {strconv.FormatInt(time.Now().Unix(), 10)}}
	same("remote_write series", "/api/v1/query?"+q.Encode(), func(body []byte) error {
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		got := map[string]string{}
		for _, s := range r.Data.Result {
			got[s.Metric["req"]] = fmt.Sprint(s.Value[1])
		}
		missing := 0
		for _, id := range rwReqs {
			if got[strconv.Itoa(id)] != strconv.Itoa(seriesPerRequest) {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged remote_write requests are missing", missing, len(rwReqs))
		}
		return nil
	})
}
