// Command vigil-load drives a running vigil with realistic telemetry over
// its real ingest protocols and reports acknowledged items per second, so
// that every throughput figure in docs/performance.md can be reproduced.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

func main() {
	var (
		signal      = flag.String("signal", "traces", "traces, traces-pre (OTLP/HTTP requests encoded once, ids and times rewritten per send: a generator far cheaper than the server), traces-grpc, logs (OTLP/HTTP), logs-loki (Loki push) or metrics")
		otlpHTTP    = flag.String("otlp-http", "http://localhost:4318", "OTLP/HTTP base URL")
		lokiPush    = flag.String("loki-push", "http://localhost:7070/loki/api/v1/push", "Loki push URL (signal logs-loki)")
		otlpGRPC    = flag.String("otlp-grpc", "localhost:4317", "OTLP/gRPC address")
		rwURL       = flag.String("remote-write", "http://localhost:7070/api/v1/write", "remote_write URL")
		duration    = flag.Duration("duration", 30*time.Second, "how long to send")
		concurrency = flag.Int("concurrency", 8, "concurrent senders")
		batch       = flag.Int("batch", 500, "items per request (spans, log records or series)")
		rate        = flag.Int("rate", 0, "items per second over all senders, each sender on its own schedule (0: as fast as they are acknowledged)")
	)
	flag.Parse()
	if err := run(*signal, *otlpHTTP, *otlpGRPC, *lokiPush, *rwURL, *duration, *concurrency, *batch, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-load:", err)
		os.Exit(1)
	}
}

type result struct {
	// attempted counts the items of every request sent, whatever its answer.
	items, attempted, requests, refused, failed atomic.Int64
	mu                                          sync.Mutex
	latencies                                   []time.Duration
}

func run(signal, otlpHTTP, otlpGRPC, lokiPush, rwURL string, d time.Duration, conc, batch, rate int) error {
	const spansPerTrace = 5
	// rings[w] is sender w's pre-encoded requests (signal traces-pre).
	rings := make([]*loadgen.EncodedTraces, conc)
	if signal == "traces-pre" {
		for w := range rings {
			r, err := loadgen.New(uint64(w)+uint64(time.Now().UnixNano())).EncodeTraces(16, batch/spansPerTrace, spansPerTrace, time.Now())
			if err != nil {
				return err
			}
			rings[w] = r
		}
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0) // the encoding above is not load
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	var grpcClient ptraceotlp.GRPCClient
	if signal == "traces-grpc" {
		conn, err := grpc.NewClient(otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		grpcClient = ptraceotlp.NewGRPCClient(conn)
	}
	// lastTS[w] is sender w's last remote_write timestamp: each request must
	// move its series forward, even when two fall in one millisecond.
	lastTS := make([]time.Time, conc)
	send := func(g *loadgen.Generator, sender int) (int, error) {
		now := time.Now()
		switch signal {
		case "traces":
			td, _ := g.Traces(batch/spansPerTrace, spansPerTrace, now)
			return td.SpanCount(), loadgen.PostTraces(ctx, client, otlpHTTP, td)
		case "traces-pre":
			body, n := rings[sender].Next(now)
			return n, loadgen.PostEncodedTraces(ctx, client, otlpHTTP, body)
		case "traces-grpc":
			td, _ := g.Traces(batch/spansPerTrace, spansPerTrace, now)
			_, err := grpcClient.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
			return td.SpanCount(), err
		case "logs":
			return batch, loadgen.PostLogs(ctx, client, otlpHTTP, g.Logs(batch, now, nil))
		case "logs-loki":
			return batch, postLoki(ctx, client, lokiPush, g.Logs(batch, now, nil))
		case "metrics":
			// Each sender writes its own series: two senders appending to one
			// series at the same millisecond would be duplicates, not load.
			if !now.After(lastTS[sender].Add(time.Millisecond)) {
				now = lastTS[sender].Add(time.Millisecond)
			}
			lastTS[sender] = now
			req := g.WriteRequest("load_test_metric", batch, now, prompb.Label{Name: "sender", Value: strconv.Itoa(sender)})
			return batch, loadgen.PostRemoteWrite(ctx, client, rwURL, req)
		}
		return 0, fmt.Errorf("unknown signal %q", signal)
	}
	var (
		res   result
		wg    sync.WaitGroup
		start = time.Now()
		// every is how often each sender sends under -rate; a sender that
		// falls behind sends at once until it is back on schedule.
		every time.Duration
	)
	if rate > 0 {
		every = time.Duration(float64(time.Second) * float64(batch*conc) / float64(rate))
	}
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := loadgen.New(uint64(w) + uint64(start.UnixNano()))
			next := start.Add(every * time.Duration(w) / time.Duration(conc))
			for ctx.Err() == nil {
				if every > 0 {
					if wait := time.Until(next); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					}
					next = next.Add(every)
				}
				t0 := time.Now()
				n, err := send(g, w)
				if ctx.Err() == nil || err == nil {
					res.attempted.Add(int64(n))
				}
				var se *loadgen.StatusError
				switch {
				case err == nil:
					res.items.Add(int64(n))
					res.requests.Add(1)
					res.mu.Lock()
					res.latencies = append(res.latencies, time.Since(t0))
					res.mu.Unlock()
				case errors.As(err, &se) && (se.Code == 429 || se.Code == 503):
					if res.refused.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first refusal:", err)
					}
					time.Sleep(50 * time.Millisecond)
				case ctx.Err() != nil:
				default:
					if res.failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first failure:", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(res.latencies)
	q := func(p float64) time.Duration {
		if len(res.latencies) == 0 {
			return 0
		}
		return res.latencies[int(p*float64(len(res.latencies)-1))].Round(time.Microsecond)
	}
	fmt.Printf("signal=%s duration=%v concurrency=%d batch=%d\n", signal, elapsed.Round(time.Millisecond), conc, batch)
	fmt.Printf("acknowledged: %d items in %d requests = %.0f items/s\n", res.items.Load(), res.requests.Load(), float64(res.items.Load())/elapsed.Seconds())
	fmt.Printf("attempted: %d items (acknowledged, refused or failed) = %.0f items/s\n", res.attempted.Load(), float64(res.attempted.Load())/elapsed.Seconds())
	fmt.Printf("refused (429/503, retryable): %d  failed: %d\n", res.refused.Load(), res.failed.Load())
	fmt.Printf("request latency: p50=%v p90=%v p99=%v\n", q(0.5), q(0.9), q(0.99))
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		fmt.Printf("generator CPU: %.1fs (%.0f%% of one core)\n", cpu.Seconds(), 100*cpu.Seconds()/elapsed.Seconds())
	}
	if res.failed.Load() > 0 {
		return fmt.Errorf("%d requests failed", res.failed.Load())
	}
	return nil
}
