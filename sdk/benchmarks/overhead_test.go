package benchmarks

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/pyroscope-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	vigil "github.com/vigil-observability/vigil/sdk"
)

// The profiling overhead harness: what Config.Profiling costs a service,
// as the process CPU time (getrusage, user + system) it spends per
// request with profiling off and on. Wall time and ns/op say little on a
// shared, noisy machine; CPU time per request moves less with the
// neighbours' load, but still by 10-20% from one minute to the next when
// they build. So the modes run side by side: one child process per mode
// (this test binary, running TestOverheadService), all at once and
// driven at the same fixed rate, so that whatever the neighbours do hits
// every mode in the same seconds. Each window's ratio (mode over the
// first, the baseline) pairs measurements of the same seconds; the
// median over many windows, of several sets of fresh children, is the
// figure. A window lasts a whole number of upload intervals (15 s by
// default), so each holds the same number of uploads.
//
// The children report their own rusage, so the load generator's and the
// profile sink's CPU are not counted. The sink accepts pyroscope-go's
// uploads and discards them, standing in for vigil.
//
//	VIGIL_PROFILING_OVERHEAD=1 go test -run TestProfilingOverhead -v -timeout 60m .
//
// Settings (environment): VIGIL_OVERHEAD_SESSIONS (sets of fresh
// children, default 4), VIGIL_OVERHEAD_WINDOWS (measured windows per
// session, default 6), VIGIL_OVERHEAD_WINDOW (seconds, default 15),
// VIGIL_OVERHEAD_RPS (each child's rate, default 300),
// VIGIL_OVERHEAD_LIVE_MB (a live heap each child holds, default 0),
// VIGIL_OVERHEAD_MODES (comma-separated, the first the baseline; default
// "off,on"; see overheadModes).
func TestProfilingOverhead(t *testing.T) {
	if os.Getenv("VIGIL_PROFILING_OVERHEAD") == "" {
		t.Skip("a harness of minutes: VIGIL_PROFILING_OVERHEAD=1 go test -run TestProfilingOverhead -v -timeout 60m .")
	}
	sessions := envInt(t, "VIGIL_OVERHEAD_SESSIONS", 4)
	windows := envInt(t, "VIGIL_OVERHEAD_WINDOWS", 6)
	window := time.Duration(envInt(t, "VIGIL_OVERHEAD_WINDOW", 15)) * time.Second
	rps := envInt(t, "VIGIL_OVERHEAD_RPS", 300)
	modes := strings.Split(envOr("VIGIL_OVERHEAD_MODES", "off,on"), ",")
	for _, m := range modes {
		if _, ok := overheadModes[m]; !ok {
			t.Fatalf("VIGIL_OVERHEAD_MODES: unknown mode %q", m)
		}
	}

	var uploads atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		uploads.Add(1)
	}))
	defer sink.Close()

	perReq := map[string][]float64{} // µs of CPU per request, by mode, by window
	for session := range sessions {
		children := make([]*overheadChild, len(modes))
		for i, mode := range modes {
			children[i] = startOverheadChild(t, mode, sink.URL, rps)
		}
		// Past start-up and the profiler's first upload.
		time.Sleep(5 * time.Second)
		for w := range windows {
			before := make([]overheadSample, len(children))
			for i, c := range children {
				before[i] = c.sample(t)
			}
			ups := uploads.Load()
			time.Sleep(window)
			line := fmt.Sprintf("session %d window %d:", session, w)
			for i, c := range children {
				d := c.sample(t).minus(before[i])
				if d.requests < int64(float64(rps)*window.Seconds()*0.9) {
					t.Errorf("%s: %d requests in %v, want about %d: the machine could not keep the rate", c.mode, d.requests, window, int(float64(rps)*window.Seconds()))
				}
				perReq[c.mode] = append(perReq[c.mode], d.cpuPerRequest())
				line += fmt.Sprintf("  %s %.1f µs/request (%d requests, user %.2fs sys %.2fs)", c.mode, d.cpuPerRequest(), d.requests, d.user.Seconds(), d.sys.Seconds())
			}
			t.Logf("%s  %d uploads", line, uploads.Load()-ups)
		}
		for _, c := range children {
			c.stop()
		}
	}

	base := modes[0]
	n := len(perReq[base])
	t.Logf("%d sessions of %d windows of %v, each mode at %d requests/s; medians [min, max]:", sessions, windows, window, rps)
	for _, mode := range modes {
		t.Logf("  %-6s %7.1f µs CPU/request [%.1f, %.1f]", mode, median(perReq[mode]), slices.Min(perReq[mode]), slices.Max(perReq[mode]))
	}
	for _, mode := range modes[1:] {
		ratios := make([]float64, n)
		for i := range ratios {
			ratios[i] = perReq[mode][i] / perReq[base][i]
		}
		sorted := slices.Sorted(slices.Values(ratios))
		t.Logf("  %s/%s per window: median %.4f, quartiles [%.4f, %.4f], range [%.4f, %.4f]",
			mode, base, median(ratios), quantile(sorted, 0.25), quantile(sorted, 0.75), sorted[0], sorted[n-1])
	}
}

// overheadModes are the child's configurations: the SDK without
// profiling, with it as Config.Profiling sets it up by default, and
// variants that tell its costs apart.
var overheadModes = map[string]vigil.Profiling{
	"off": {},
	"on":  {Enabled: true},
	// CPU profile only, no alloc/inuse/goroutine collection.
	"cpu": {Enabled: true, Types: []pyroscope.ProfileType{pyroscope.ProfileCPU}},
	// A collection forced before a memory profile when none ran since
	// the last upload (pyroscope-go's default).
	"on-gc": {Enabled: true, ForceGC: true},
}

// overheadChild is a child process serving in one mode, and its load.
type overheadChild struct {
	mode   string
	base   string
	client *http.Client
	done   atomic.Int64 // requests answered
	stop   func()
}

// overheadSample is a child's CPU time and answered requests so far.
type overheadSample struct {
	requests  int64
	user, sys time.Duration
}

func (s overheadSample) minus(o overheadSample) overheadSample {
	return overheadSample{s.requests - o.requests, s.user - o.user, s.sys - o.sys}
}

// cpuPerRequest is in µs.
func (s overheadSample) cpuPerRequest() float64 {
	return float64((s.user + s.sys).Microseconds()) / float64(s.requests)
}

func (c *overheadChild) sample(t *testing.T) overheadSample {
	t.Helper()
	n := c.done.Load()
	user, sys := childRusage(t, c.client, c.base)
	return overheadSample{n, user, sys}
}

// startOverheadChild starts the service in a child process in mode and
// drives it at rps until stop.
func startOverheadChild(t *testing.T, mode, sink string, rps int) *overheadChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOverheadService$")
	cmd.Env = append(os.Environ(), "VIGIL_OVERHEAD_CHILD="+mode, "VIGIL_OVERHEAD_SINK="+sink)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var addr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		_ = stdin.Close()
		_ = cmd.Wait()
		t.Fatalf("child %s did not say where it listens", mode)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	c := &overheadChild{
		mode: mode, base: "http://" + addr,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { driveLoad(ctx, c.client, c.base+"/orders/42", rps, &c.done) })
	c.stop = func() {
		cancel()
		wg.Wait()
		_ = stdin.Close() // the child stops when its stdin closes
		_ = cmd.Wait()
	}
	return c
}

// driveLoad sends GETs to url at rps until ctx ends, from a few workers
// fed on a fixed schedule (a late tick is caught up, not dropped), and
// counts the answered ones in done.
func driveLoad(ctx context.Context, client *http.Client, url string, rps int, done *atomic.Int64) {
	ticks := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range ticks {
				resp, err := client.Get(url)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					done.Add(1)
				}
			}
		})
	}
	defer wg.Wait()
	defer close(ticks)
	interval := time.Second / time.Duration(rps)
	next := time.Now()
	for ctx.Err() == nil {
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		select {
		case ticks <- struct{}{}:
		default: // workers saturated: the shortfall shows in the count
		}
	}
}

// childRusage asks the child for its own user and system CPU time.
func childRusage(t *testing.T, client *http.Client, base string) (user, sys time.Duration) {
	t.Helper()
	resp, err := client.Get(base + "/rusage")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ru struct{ UserMicros, SysMicros int64 }
	if err := json.NewDecoder(resp.Body).Decode(&ru); err != nil {
		t.Fatalf("rusage: %v", err)
	}
	return time.Duration(ru.UserMicros) * time.Microsecond, time.Duration(ru.SysMicros) * time.Microsecond
}

// TestOverheadService is the harness's child: an SDK service with a
// handler doing a request's worth of work (an order of 40 lines encoded
// as JSON, 32 KiB hashed: about 155 µs of CPU a request in all, with the
// HTTP server's and the kernel's), spans sampled and discarded, profiles
// sent to the harness's sink. It serves until its stdin closes.
func TestOverheadService(t *testing.T) {
	mode := os.Getenv("VIGIL_OVERHEAD_CHILD")
	if mode == "" {
		t.Skip("the child process of TestProfilingOverhead")
	}
	prof := overheadModes[mode]
	prof.ServerAddress = os.Getenv("VIGIL_OVERHEAD_SINK")
	// A live heap, as a service's caches and connections hold, in small
	// linked objects the collector has to mark.
	type node struct {
		next *node
		id   [7]int64 // 64 bytes a node in all
	}
	var live *node
	for i := range envInt(t, "VIGIL_OVERHEAD_LIVE_MB", 0) << 20 / 64 {
		live = &node{next: live, id: [7]int64{int64(i)}}
	}
	defer runtime.KeepAlive(live)
	svc, err := vigil.Start(context.Background(), vigil.Config{
		ServiceName: "overhead", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, SelfCheckTimeout: time.Millisecond,
		WrapSpanExporter: func(sdktrace.SpanExporter) sdktrace.SpanExporter { return discardSpans{} },
		Profiling:        prof,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = svc.Shutdown(ctx)
	}()

	type line struct {
		SKU   string  `json:"sku"`
		Name  string  `json:"name"`
		Qty   int     `json:"qty"`
		Price float64 `json:"price"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		lines := make([]line, 40)
		for i := range lines {
			lines[i] = line{SKU: "SKU-" + strconv.Itoa(i) + "-" + r.PathValue("id"), Name: "a product with a longer name", Qty: i % 7, Price: float64(i) * 1.25}
		}
		body, err := json.Marshal(map[string]any{"id": r.PathValue("id"), "lines": lines})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		buf := make([]byte, 32<<10)
		copy(buf, body)
		sum := sha256.Sum256(buf)
		w.Header().Set("ETag", fmt.Sprintf("%x", sum[:8]))
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /rusage", func(w http.ResponseWriter, r *http.Request) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]int64{
			"UserMicros": ru.Utime.Sec*1e6 + ru.Utime.Usec,
			"SysMicros":  ru.Stime.Sec*1e6 + ru.Stime.Usec,
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := svc.NewServer("", mux)
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("listening", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}

// discardSpans is a span exporter that drops everything: spans are made
// and sampled (otel-profiling-go labels sampled spans only), not sent.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

func median(xs []float64) float64 {
	return quantile(slices.Sorted(slices.Values(xs)), 0.5)
}

// quantile of sorted xs, interpolated between neighbours.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[i]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}
