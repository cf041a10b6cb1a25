package promremote

import (
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// benchSeries builds the label sets of a realistic scrape fleet, sorted by
// name as Prometheus sends them: per host, request counters by route and
// code, histogram buckets by route and le, and gauges.
func benchSeries(hosts int) [][]prompb.Label {
	codes := []string{"200", "204", "404", "500"}
	les := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	var out [][]prompb.Label
	for h := range hosts {
		instance := fmt.Sprintf("10.0.%d.%d:9100", h/250, h%250)
		for r := range 15 {
			route := fmt.Sprintf("/api/v1/resource%d", r)
			for _, code := range codes {
				out = append(out, []prompb.Label{
					{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: code},
					{Name: "instance", Value: instance}, {Name: "job", Value: "api"},
					{Name: "method", Value: "GET"}, {Name: "route", Value: route},
				})
			}
		}
		for r := range 10 {
			route := fmt.Sprintf("/api/v1/resource%d", r)
			for _, le := range les {
				out = append(out, []prompb.Label{
					{Name: "__name__", Value: "http_request_duration_seconds_bucket"},
					{Name: "instance", Value: instance}, {Name: "job", Value: "api"},
					{Name: "le", Value: le}, {Name: "route", Value: route},
				})
			}
		}
		for g := range 20 {
			out = append(out, []prompb.Label{
				{Name: "__name__", Value: "node_memory_bytes"}, {Name: "instance", Value: instance},
				{Name: "job", Value: "node"}, {Name: "kind", Value: "kind" + strconv.Itoa(g)},
			})
		}
	}
	return out
}

// BenchmarkRemoteWrite posts remote_write requests of 2000 series with one
// sample each, cycling through 100,000 distinct series as a fleet scraped
// every interval does, through the handler into the embedded TSDB (WAL
// committed before each answer). It reports samples acknowledged per second.
func BenchmarkRemoteWrite(b *testing.B) {
	const perRequest = 2000
	all := benchSeries(500) // 500 hosts × 200 series
	db, err := embedded.OpenMetrics(embedded.MetricsOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	handler := NewHandler(Options{Appendable: db})

	base := time.Now().Add(-time.Minute).UnixMilli()
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, perRequest)}
	samples := make([]prompb.Sample, perRequest)
	body := func(i int) []byte {
		first := (i * perRequest) % len(all)
		ts := base + int64(i*perRequest/len(all)) // one millisecond later each pass
		for j := range perRequest {
			samples[j] = prompb.Sample{Timestamp: ts, Value: float64(i + j)}
			req.Timeseries[j] = prompb.TimeSeries{Labels: all[(first+j)%len(all)], Samples: samples[j : j+1]}
		}
		return encode(b, req)
	}
	// The first pass creates the series; the benchmark measures the
	// steady state of known series.
	for i := range len(all) / perRequest {
		if w := post(handler, body(i), nil); w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	// Encoded before the clock starts, so that the process's CPU time
	// is the handler's and the TSDB's alone.
	next := len(all) / perRequest
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = body(next + i)
	}
	b.ReportAllocs()
	cpu := processCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if w := post(handler, bodies[i], nil); w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.StopTimer()
	// CPU time moves less than wall clock on a shared machine.
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N*perRequest), "cpu-ns/sample")
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "samples/s")
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
