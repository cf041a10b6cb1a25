package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-observability/vigil/bench/internal/procfs"
	"github.com/vigil-observability/vigil/internal/loadgen"
)

const (
	rwSenders       = 8
	rwSeriesPerReq  = 2000
	seriesPerHost   = 70
	routesPerHost   = 5
	gaugesPerHost   = 10
	bucketsPerRoute = 10
	// The stream's timeline is synthetic: pass p of the series carries
	// timestamp origin + p*passSpacing, like a scrape every 5 s, so every
	// system holds the same samples with the same timestamps and the
	// queries, evaluated at pass queryPasses, see identical data however
	// fast each system ingested. The origin lies far enough in the past
	// that the fastest system stays behind the wall clock.
	passSpacing   = 5 * time.Second
	queryPasses   = 36
	originBackoff = 100 * time.Minute
	// idleSettle is how long a system runs after it is ready before its
	// idle RSS is read.
	idleSettle = 5 * time.Second
)

var bucketBounds = [bucketsPerRoute]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, math.Inf(1)}

type promQuery struct {
	name, expr string
	isRange    bool
}

// promQueries is the fixed PromQL set every metrics system answers, at the
// same evaluation time (the end of the load).
var promQueries = []promQuery{
	{"count of all series", `count({__name__=~"bench_.+"})`, false},
	{"rate, summed", `sum(rate(bench_requests_total[1m]))`, false},
	{"rate, sum by route and code", `sum by (route, code) (rate(bench_requests_total[1m]))`, false},
	{"histogram_quantile by route", `histogram_quantile(0.99, sum by (le, route) (rate(bench_request_duration_seconds_bucket[1m])))`, false},
	{"one host's gauges", `bench_memory_bytes{instance="host-7:9100"}`, false},
	{"topk over gauges", `topk(10, bench_memory_bytes)`, false},
	{"sum of counters (same data everywhere, so the same answer)", `sum(bench_requests_total)`, false},
	{"range: rate sum by route", `sum by (route) (rate(bench_requests_total[1m]))`, true},
	{"range: histogram_quantile", `histogram_quantile(0.9, sum by (le) (rate(bench_request_duration_seconds_bucket[1m])))`, true},
}

// Range queries cover the last two minutes of the query window.
const (
	queryRange = 2 * time.Minute
	queryStep  = 10 * time.Second
)

type queryTiming struct {
	q                promQuery
	n, errors, empty int
	median, p95      time.Duration
	resultSeries     int
	value            string
}

type metricsResult struct {
	system, notRun, err string
	series              int
	acked, refused      int64
	total               int64 // acknowledged samples, the catch-up past the measurement included
	failed              int64
	elapsed             time.Duration
	samplesPerSec       float64
	cpu, cpuPerMillion  float64
	loadCPU             float64 // share of the load CPU the generator used
	capped              bool    // the stream caught up with the wall clock
	peakRSS, idleRSS    int64
	disk                int64
	queries             []queryTiming
	profile             string
	history             historyResult
}

func (h *harness) runMetrics() []*metricsResult {
	var out []*metricsResult
	systems := []struct {
		name, bin, missing string
		start              func(tag string) (*server, error)
	}{
		{"vigil", h.opts.vigil, "", h.startVigil},
		{"Prometheus", h.opts.prometheus, "not run: prometheus not found; apt-get install prometheus, or set PROMETHEUS_BIN=/path/to/prometheus", h.startPrometheus},
		{"VictoriaMetrics", h.opts.victoria, "not run: victoria-metrics not found; apt-get install victoria-metrics, or set VICTORIA_BIN=/path/to/victoria-metrics", h.startVictoria},
	}
	for _, sys := range systems {
		if sys.bin == "" {
			out = append(out, &metricsResult{system: sys.name, notRun: sys.missing})
			continue
		}
		tag := strings.ToLower(sys.name)
		h.logf("metrics: %s", sys.name)
		r := h.metricsSystem(sys.name, func() (*server, error) { return sys.start(tag + "-metrics") })
		if h.opts.historySeries > 0 && r.err == "" {
			h.logf("metrics: %s, compacted history", sys.name)
			r.history = h.historySystem(sys.name, func() (*server, error) { return sys.start(tag + "-history") })
		}
		out = append(out, r)
	}
	return out
}

func (h *harness) metricsSystem(name string, start func() (*server, error)) *metricsResult {
	r := &metricsResult{system: name}
	s, err := start()
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer stopAfter(s)
	// Idle is read once the system has settled: vigil used to return
	// its start-up memory just after it answered ready, and read at once
	// its RSS came out anywhere between 40 and 230 MiB from run to run,
	// which the "above idle" row then subtracted (it now returns it
	// before). Every system waits the same.
	time.Sleep(idleSettle)
	r.idleRSS, _ = procfs.StatusBytes(s.p.pid(), "VmRSS")
	stream := newRWStream(h.opts.series)
	r.series = len(stream.labels)
	var profErr chan error
	profPath := filepath.Join(h.work, "vigil-metrics.pprof")
	if s.pprofURL != "" && h.opts.duration >= 15*time.Second {
		profErr = make(chan error, 1)
		go func() {
			time.Sleep(5 * time.Second)
			profErr <- h.profile(s, h.opts.duration-10*time.Second, profPath)
		}()
	}
	origin := time.Now().Add(-originBackoff).Truncate(time.Minute)
	s0 := s.sample()
	self0, _ := procfs.CPUSeconds(os.Getpid())
	h.sendRemoteWrite(s.writeURL, stream, origin, h.opts.duration, r, func() {
		self1, _ := procfs.CPUSeconds(os.Getpid())
		r.cpu = s.sample().cpu - s0.cpu
		r.loadCPU = (self1 - self0) / r.elapsed.Seconds()
	})
	r.samplesPerSec = float64(r.acked) / r.elapsed.Seconds()
	if r.acked > 0 {
		r.cpuPerMillion = r.cpu / float64(r.acked) * 1e6
	}
	h.logf("  %s: %.0f samples/s acknowledged (%d refused, %d failed), cpu %.1fs", name, r.samplesPerSec, r.refused, r.failed, r.cpu)
	if profErr != nil && <-profErr == nil {
		r.profile = profPath
	}
	r.peakRSS = s.peakRSS()
	evalAt := origin.Add((queryPasses - 1) * passSpacing)
	if name == "VictoriaMetrics" {
		// VictoriaMetrics buffers recent samples in memory for a few
		// seconds; flush so queries and the size on disk see them all.
		if _, err := h.get(s.httpBase + "/internal/force_flush"); err != nil {
			r.err = "force_flush: " + err.Error()
		}
	}
	time.Sleep(2 * time.Second)
	h.logf("  %s queries", name)
	for _, q := range promQueries {
		r.queries = append(r.queries, h.timePromQL(s.httpBase, q, evalAt))
	}
	if err := s.p.stop(2 * time.Minute); err != nil && r.err == "" {
		r.err = err.Error()
	}
	if d, err := diskUsage(s.dataDir); err == nil {
		r.disk = d
	}
	return r
}

// rwStream is the remote_write stream: per host, request counters by route
// and code, a classic latency histogram by route and memory gauges, so
// that rate, sum by and histogram_quantile have realistic work. Every
// system gets the same series with the same values; only timestamps
// follow the wall clock.
type rwStream struct {
	labels [][]prompb.Label
	kind   []uint8 // counter, bucket or gauge
}

const (
	kindCounter = iota
	kindBucket
	kindGauge
)

func newRWStream(n int) *rwStream {
	hosts := (n + seriesPerHost - 1) / seriesPerHost
	s := &rwStream{}
	add := func(kind uint8, lbls ...prompb.Label) {
		s.labels = append(s.labels, lbls)
		s.kind = append(s.kind, kind)
	}
	for h := range hosts {
		inst := prompb.Label{Name: "instance", Value: fmt.Sprintf("host-%d:9100", h)}
		job := prompb.Label{Name: "job", Value: "node"}
		for r := range routesPerHost {
			route := prompb.Label{Name: "route", Value: fmt.Sprintf("/api/v1/r%d", r)}
			for _, code := range []string{"200", "500"} {
				add(kindCounter, prompb.Label{Name: "__name__", Value: "bench_requests_total"}, prompb.Label{Name: "code", Value: code}, inst, job, route)
			}
			for _, le := range bucketBounds {
				add(kindBucket, prompb.Label{Name: "__name__", Value: "bench_request_duration_seconds_bucket"}, inst, job,
					prompb.Label{Name: "le", Value: strconv.FormatFloat(le, 'g', -1, 64)}, route)
			}
		}
		for g := range gaugesPerHost {
			add(kindGauge, prompb.Label{Name: "__name__", Value: "bench_memory_bytes"},
				prompb.Label{Name: "area", Value: fmt.Sprintf("a%d", g)}, inst, job)
		}
	}
	return s
}

// value returns series i's value at pass p given its previous value. It
// is a pure function of (i, p, prev), so every system sees the same values.
func (s *rwStream) value(i int, p int, prev float64) float64 {
	switch s.kind[i] {
	case kindCounter:
		return prev + float64(1+(i*13+p*7)%5)
	case kindBucket:
		// Cumulative counts: a pass adds c observations to the histogram,
		// of which a fraction cdf(le) fall at or below le.
		perRoute := 2 + bucketsPerRoute
		hist := i/seriesPerHost*routesPerHost + i%seriesPerHost/perRoute
		b := i % seriesPerHost % perRoute
		c := float64(5 + (hist*31+p*17)%11)
		le := bucketBounds[max(0, b-2)]
		return prev + math.Round(c*(1-math.Exp(-le/0.1)))
	default:
		if prev == 0 {
			prev = 1 << 30
		}
		return prev + float64((i*29+p*11)%21-10)*4096
	}
}

// sendRemoteWrite sends the stream as fast as the system acknowledges it
// for d, from rwSenders concurrent senders each owning a share of the
// hosts, 2,000 series (one sample each) per request. Samples/s counts what
// was acknowledged within d; a system slower than queryPasses passes in d
// gets the rest of them afterwards, unmeasured, so the queries see the same
// data everywhere.
// senders splits the series among rwSenders senders, each host's series
// to one sender.
func (s *rwStream) senders() [][]int {
	out := make([][]int, rwSenders)
	for i := range s.labels {
		w := (i / seriesPerHost) % rwSenders
		out[w] = append(out[w], i)
	}
	return slices.DeleteFunc(out, func(m []int) bool { return len(m) == 0 })
}

// request is the write request of pass over the series ids, one sample
// each stamped ts; vals holds each series' previous value and is updated.
func (s *rwStream) request(ids []int, vals []float64, pass int, ts int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(ids))}
	for k, id := range ids {
		vals[k] = s.value(id, pass, vals[k])
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  s.labels[id],
			Samples: []prompb.Sample{{Value: vals[k], Timestamp: ts}},
		})
	}
	return req
}

func (h *harness) sendRemoteWrite(url string, s *rwStream, origin time.Time, d time.Duration, r *metricsResult, measured func()) {
	h.recordCommand("remote_write load (built into vigil-peers)", nil, []string{fmt.Sprintf(
		"%d senders, %d series per request, %d active series, closed loop for %v, to %s", rwSenders, rwSeriesPerReq, len(s.labels), d, url)})
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	// Past d a sender only finishes its passes up to queryPasses; this
	// context bounds that too.
	hard, cancelHard := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancelHard()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: rwSenders}}
	var acked, total, refused, failed atomic.Int64
	var capped atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for _, mine := range s.senders() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals := make([]float64, len(mine))
			// With a rate cap, each sender paces its own share.
			var sent int64
			perSender := float64(h.opts.rwRate) / rwSenders
			for pass := 0; hard.Err() == nil && (ctx.Err() == nil || pass < queryPasses); pass++ {
				at := origin.Add(time.Duration(pass) * passSpacing)
				if at.After(time.Now()) {
					capped.Store(true)
					return
				}
				ts := at.UnixMilli()
				for off := 0; off < len(mine) && hard.Err() == nil; off += rwSeriesPerReq {
					end := min(off+rwSeriesPerReq, len(mine))
					if perSender > 0 {
						due := start.Add(time.Duration(float64(sent) / perSender * float64(time.Second)))
						time.Sleep(time.Until(due))
						sent += int64(end - off)
					}
					req := s.request(mine[off:end], vals[off:end], pass, ts)
					err := loadgen.PostRemoteWrite(hard, client, url, req)
					measured := ctx.Err() == nil
					var se *loadgen.StatusError
					switch {
					case err == nil:
						total.Add(int64(end - off))
						if measured {
							acked.Add(int64(end - off))
						}
					case hard.Err() != nil:
					case errors.As(err, &se) && (se.Code == 429 || se.Code == 503):
						if measured {
							refused.Add(1)
						}
						time.Sleep(50 * time.Millisecond)
					default:
						if failed.Add(1) == 1 {
							h.logf("  first remote_write failure: %v", err)
						}
					}
				}
			}
		}()
	}
	<-ctx.Done()
	r.elapsed = time.Since(start)
	r.acked, r.refused = acked.Load(), refused.Load()
	measured()
	wg.Wait()
	r.failed, r.total = failed.Load(), total.Load()
	if capped.Load() {
		h.logf("  the stream reached the wall clock: the system ingests faster than %v of timeline allows; raise -series", originBackoff)
		r.capped = true
	}
}

type promResponse struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Value  []any `json:"value"`
			Values []any `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// timePromQL runs q promqlRuns times (within a time budget) against the
// Prometheus query API at base, evaluated at (or ending at) at.
func (h *harness) timePromQL(base string, q promQuery, at time.Time) queryTiming {
	t := queryTiming{q: q}
	v := url.Values{"query": {q.expr}}
	path := "/api/v1/query"
	if q.isRange {
		path = "/api/v1/query_range"
		step := max(time.Second, (h.opts.duration / 30).Truncate(time.Second))
		v.Set("start", fmtTime(at.Add(-h.opts.duration)))
		v.Set("end", fmtTime(at))
		v.Set("step", strconv.Itoa(int(step.Seconds())))
	} else {
		v.Set("time", fmtTime(at))
	}
	u := base + path + "?" + v.Encode()
	var ds []time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < h.opts.promqlRuns && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		body, err := h.get(u)
		d := time.Since(t0)
		t.n++
		var pr promResponse
		if err == nil {
			err = json.Unmarshal(body, &pr)
		}
		if err != nil || pr.Status != "success" {
			t.errors++
			continue
		}
		ds = append(ds, d)
		t.resultSeries = len(pr.Data.Result)
		if t.resultSeries == 0 {
			t.empty++
		} else if !q.isRange && len(pr.Data.Result[0].Value) == 2 {
			t.value = fmt.Sprint(pr.Data.Result[0].Value[1])
		}
	}
	t.median, t.p95 = quantiles(ds)
	return t
}

func fmtTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
