package profilescrape

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"go.uber.org/goleak"

	"github.com/vigil-observability/vigil/internal/ingest/pyroscope"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

// TestMain fails the package's tests if a target's loop, a discovery
// goroutine or a kept-alive connection outlives its scraper.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recordingStore keeps every profile written, in order, beside the
// memory store.
type recordingStore struct {
	*memory.ProfileStore
	mu      sync.Mutex
	written []storage.Profile
}

func (s *recordingStore) WriteProfiles(ctx context.Context, ps []storage.Profile) error {
	s.mu.Lock()
	s.written = append(s.written, ps...)
	s.mu.Unlock()
	return s.ProfileStore.WriteProfiles(ctx, ps)
}

func (s *recordingStore) of(kind string) []storage.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.Profile
	for _, p := range s.written {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// pprofTarget is a server with net/http/pprof's real handlers.
func pprofTarget(t testing.TB) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

//go:noinline
func burnCPU(stop *atomic.Bool) int {
	x := 0
	for !stop.Load() {
		for i := range 1 << 16 {
			x += i * i % 7
		}
	}
	return x
}

var sink [][]byte

// allocateBefore and allocateAfter allocate 64 MiB in 1 MiB pieces, kept
// by nobody, so that the memory profiles' alloc_space shows them.
//
//go:noinline
func allocateBefore() {
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
		sink = sink[:0]
	}
}

//go:noinline
func allocateAfter() {
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
		sink = sink[:0]
	}
}

// valueOf sums the values of sample type st of p's samples whose stack
// holds fn.
func valueOf(t *testing.T, p storage.Profile, st, fn string) int64 {
	t.Helper()
	pp, err := profile.Parse(bytes.NewReader(p.Data))
	if err != nil {
		t.Fatal(err)
	}
	idx := slices.IndexFunc(pp.SampleType, func(v *profile.ValueType) bool { return v.Type == st })
	if idx < 0 {
		t.Fatalf("no sample type %s in %v", st, pp.SampleType)
	}
	var sum int64
	for _, s := range pp.Sample {
		if slices.ContainsFunc(s.Location, func(l *profile.Location) bool {
			return slices.ContainsFunc(l.Line, func(ln profile.Line) bool { return strings.HasSuffix(ln.Function.Name, "."+fn) })
		}) {
			sum += s.Value[idx]
		}
	}
	return sum
}

// topFunction is the function with the most self value of sample type st.
func topFunction(t *testing.T, p storage.Profile, st string) string {
	t.Helper()
	pp, err := profile.Parse(bytes.NewReader(p.Data))
	if err != nil {
		t.Fatal(err)
	}
	idx := slices.IndexFunc(pp.SampleType, func(v *profile.ValueType) bool { return v.Type == st })
	self := map[string]int64{}
	for _, s := range pp.Sample {
		if len(s.Location) > 0 && len(s.Location[0].Line) > 0 {
			self[s.Location[0].Line[0].Function.Name] += s.Value[idx]
		}
	}
	top, best := "", int64(-1)
	for f, v := range self {
		if v > best {
			top, best = f, v
		}
	}
	return top
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func host(srv *httptest.Server) string {
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// TestScrapeRealPprof scrapes a target serving net/http/pprof while it
// burns CPU and allocates, beside targets that answer 404, garbage and
// nothing at all.
func TestScrapeRealPprof(t *testing.T) {
	good := pprofTarget(t)
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("this is not a profile"))
	}))
	defer garbage.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()

	var stop atomic.Bool
	burned := make(chan int)
	go func() { burned <- burnCPU(&stop) }()
	defer func() { stop.Store(true); <-burned }()
	// Counted since the process started: a cumulative store would show
	// it in every memory profile, a delta in none.
	allocateBefore()
	runtime.GC()
	runtime.GC()

	reg := prometheus.NewRegistry()
	ingestMetrics := selfobs.NewIngestMetrics(reg)
	store := &recordingStore{ProfileStore: memory.NewProfileStore()}
	s, err := New(Options{
		Writer:                  pyroscope.NewWriter(pyroscope.WriterOptions{Profiles: store, Ingest: ingestMetrics}),
		Ingest:                  ingestMetrics,
		Registerer:              reg,
		DiscoveryUpdateInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := decode(t, fmt.Sprintf(`
- job_name: shop
  scrape_interval: 2s
  static_configs:
    - targets: [%s, %s, %s, %s]
      labels: {env: test}
  profiles:
    cpu: {seconds: 1}
    mutex: {enabled: false}
    block: {enabled: false}
`, host(good), host(notFound), host(garbage), host(hang)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyConfig(jobs); err != nil {
		t.Fatal(err)
	}
	stopScraper := runScraper(t, s)
	defer stopScraper()

	waitFor(t, "a memory profile", 15*time.Second, func() bool { return len(store.of(storage.ProfileMemory)) > 0 })
	firstMem := store.of(storage.ProfileMemory)[0]
	if v := valueOf(t, firstMem, "alloc_space", "allocateBefore"); v != 0 {
		t.Errorf("first memory scrape: allocateBefore alloc_space %d, want 0 (what counts since the process started is no scrape's)", v)
	}
	allocateAfter()
	runtime.GC()
	runtime.GC()

	var second storage.Profile
	waitFor(t, "a memory profile with allocateAfter's allocations", 15*time.Second, func() bool {
		for _, p := range store.of(storage.ProfileMemory)[1:] {
			if valueOf(t, p, "alloc_space", "allocateAfter") > 0 {
				second = p
				return true
			}
		}
		return false
	})
	if v := valueOf(t, second, "alloc_space", "allocateAfter"); v < 32<<20 || v > 128<<20 {
		t.Errorf("allocateAfter alloc_space %d, want about 64 MiB", v)
	}
	for i, p := range store.of(storage.ProfileMemory) {
		if v := valueOf(t, p, "alloc_space", "allocateBefore"); v != 0 {
			t.Errorf("memory profile %d: allocateBefore alloc_space %d, want 0: a delta against the previous scrape, not the total since start", i, v)
		}
	}
	if second.Service != "shop" || second.Labels["instance"] != host(good) || second.Labels["env"] != "test" || len(second.Labels) != 2 {
		t.Errorf("profile of service %q with labels %v; want the job as service, instance and env as labels", second.Service, second.Labels)
	}
	if d := second.End.Sub(second.Start); d < time.Second || d > 5*time.Second {
		t.Errorf("the delta covers %s, want the time since the previous scrape (about 2s)", d)
	}

	waitFor(t, "a cpu profile", 15*time.Second, func() bool { return len(store.of(storage.ProfileCPU)) > 0 })
	cpu := store.of(storage.ProfileCPU)[0]
	if top := topFunction(t, cpu, "cpu"); !strings.HasSuffix(top, ".burnCPU") {
		t.Errorf("top CPU function %q, want burnCPU", top)
	}
	if d := cpu.End.Sub(cpu.Start); d < time.Second {
		t.Errorf("the cpu profile covers %s, want its second at least", d)
	}
	waitFor(t, "a goroutine profile", 15*time.Second, func() bool { return len(store.of(storage.ProfileGoroutine)) > 0 })
	if v := valueOf(t, store.of(storage.ProfileGoroutine)[0], "goroutine", "burnCPU"); v != 1 {
		t.Errorf("goroutines in burnCPU: %d, want 1", v)
	}

	// The bad targets are reported, each with its own error, and
	// counted; the good one is up.
	wantErr := map[string]string{
		host(notFound): "404 Not Found",
		host(garbage):  "undecodable",
		host(hang):     "context deadline exceeded",
	}
	waitFor(t, "every target's errors reported", 15*time.Second, func() bool {
		for _, ts := range s.Targets() {
			tj := targetToJSON(ts)
			if want, bad := wantErr[ts.Labels["instance"]]; bad && (tj.Health != HealthDown || !strings.Contains(tj.LastError, want)) {
				return false
			}
		}
		return true
	})
	waitFor(t, "the good target up", 15*time.Second, func() bool {
		for _, ts := range s.Targets() {
			if ts.Labels["instance"] == host(good) {
				return targetToJSON(ts).Health == HealthUp
			}
		}
		return false
	})
	if n := len(s.Targets()); n != 4 {
		t.Errorf("%d targets, want 4", n)
	}
	for result, want := range map[string]bool{ResultSuccess: true, ResultFailed: true, ResultRejected: true} {
		if got := testutil.ToFloat64(s.scrapes.WithLabelValues("shop", storage.ProfileMemory, result)); (got > 0) != want {
			t.Errorf("vigil_profile_scrapes_total{profile=memory,result=%s} = %v", result, got)
		}
	}
	if got := testutil.ToFloat64(ingestMetrics.Rejected.WithLabelValues("profiles", "undecodable")); got == 0 {
		t.Error(`vigil_rejected_total{signal="profiles",reason="undecodable"} = 0, want the garbage target's answers`)
	}
	if got := testutil.ToFloat64(ingestMetrics.Stored.WithLabelValues("profiles")); got < 3 {
		t.Errorf(`vigil_stored_total{signal="profiles"} = %v`, got)
	}
}

// A reload changes a running scraper: a changed job restarts with its new
// profiles, a removed one stops, and a section emptied leaves no target.
func TestApplyConfigWhileRunning(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	s, err := New(Options{Writer: pyroscope.NewWriter(pyroscope.WriterOptions{Profiles: memory.NewProfileStore()}), DiscoveryUpdateInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	jobsOf := func(src string) []*JobConfig {
		jobs, err := decode(t, fmt.Sprintf(src, host(srv)))
		if err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	kindsOf := func() map[string]string {
		out := map[string]string{}
		for _, ts := range s.Targets() {
			var ks []string
			for _, p := range ts.Profiles {
				ks = append(ks, p.Kind)
			}
			out[ts.Job] = strings.Join(ks, ",")
		}
		return out
	}
	if err := s.ApplyConfig(jobsOf(`
- job_name: a
  static_configs: [{targets: ["%[1]s"]}]
- job_name: b
  static_configs: [{targets: ["%[1]s"]}]
`)); err != nil {
		t.Fatal(err)
	}
	stop := runScraper(t, s)
	defer stop()
	all := "memory,goroutine,mutex,block,cpu"
	waitFor(t, "both jobs' targets", 5*time.Second, func() bool {
		k := kindsOf()
		return k["a"] == all && k["b"] == all
	})

	if err := s.ApplyConfig(jobsOf(`
- job_name: a
  static_configs: [{targets: ["%[1]s"]}]
  profiles: {cpu: {enabled: false}, mutex: {enabled: false}, block: {enabled: false}}
`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job a changed, job b gone", 5*time.Second, func() bool {
		k := kindsOf()
		return len(k) == 1 && k["a"] == "memory,goroutine"
	})

	if err := s.ApplyConfig(nil); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Targets()); n != 0 {
		t.Errorf("%d targets left after the section was emptied", n)
	}
}

// A target redirecting elsewhere is a failed scrape: vigil connects only
// to the targets the section finds.
func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirect.Close()
	s, err := New(Options{Writer: pyroscope.NewWriter(pyroscope.WriterOptions{Profiles: memory.NewProfileStore()}), DiscoveryUpdateInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := decode(t, fmt.Sprintf(`
- job_name: a
  scrape_interval: 1s
  static_configs: [{targets: ["%s"]}]
  profiles: {cpu: {enabled: false}}
`, host(redirect)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyConfig(jobs); err != nil {
		t.Fatal(err)
	}
	stop := runScraper(t, s)
	waitFor(t, "the redirect reported", 5*time.Second, func() bool {
		ts := s.Targets()
		return len(ts) == 1 && strings.Contains(targetToJSON(ts[0]).LastError, "302 Found")
	})
	stop()
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect's destination got %d requests", n)
	}
}

// Targets follow service discovery: a file_sd file that loses a target
// stops its loop, one that gains a target starts one.
func TestFileSDTargetsFollow(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "targets.json")
	writeTargets := func(instances ...string) {
		t.Helper()
		body := fmt.Sprintf(`[{"targets": ["%s"], "labels": {"team": "shop"}}]`, strings.Join(instances, `", "`))
		if err := os.WriteFile(file+".tmp", []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	writeTargets(host(srv), "localhost:1")
	s, err := New(Options{Writer: pyroscope.NewWriter(pyroscope.WriterOptions{Profiles: memory.NewProfileStore()}), DiscoveryUpdateInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := decode(t, fmt.Sprintf("- job_name: files\n  file_sd_configs: [{files: [%q]}]\n", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyConfig(jobs); err != nil {
		t.Fatal(err)
	}
	stop := runScraper(t, s)
	defer stop()
	instances := func() string {
		var out []string
		for _, ts := range s.Targets() {
			out = append(out, ts.Labels["instance"]+"/"+ts.Labels["team"])
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	want := []string{host(srv) + "/shop", "localhost:1/shop"}
	slices.Sort(want)
	waitFor(t, "both file targets", 10*time.Second, func() bool { return instances() == strings.Join(want, ",") })
	writeTargets(host(srv))
	waitFor(t, "one file target", 10*time.Second, func() bool { return instances() == host(srv)+"/shop" })
}

// A target's profiles are its service_name's after relabelling, else its
// job's; its other labels are the profile's, job only when it is not the
// service. The URLs carry __param_* labels and each profile's path.
func TestTargetServiceAndLabels(t *testing.T) {
	for _, tc := range []struct {
		name, job   string
		wantService string
		wantLabels  map[string]string
		wantCPU     string
	}{
		{
			name: "the job is the service",
			job: `
- job_name: shop
  static_configs: [{targets: ["10.0.0.1:6060"], labels: {env: prod}}]
  profiles: {cpu: {seconds: 5}}`,
			wantService: "shop",
			wantLabels:  map[string]string{"instance": "10.0.0.1:6060", "env": "prod"},
			wantCPU:     "http://10.0.0.1:6060/debug/pprof/profile?seconds=5",
		},
		{
			name: "relabelling names the service",
			job: `
- job_name: pods
  scheme: https
  static_configs: [{targets: ["10.0.0.2:6060"], labels: {__meta_app: payments, env: prod}}]
  relabel_configs:
    - {source_labels: [__meta_app], target_label: service_name}
    - {target_label: __param_debug, replacement: "0"}
  profiles: {cpu: {seconds: 5, path: /pprof/profile}}`,
			wantService: "payments",
			wantLabels:  map[string]string{"instance": "10.0.0.2:6060", "env": "prod", "job": "pods"},
			wantCPU:     "https://10.0.0.2:6060/pprof/profile?debug=0&seconds=5",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs, err := decode(t, tc.job)
			if err != nil {
				t.Fatal(err)
			}
			j := jobs[0]
			tg := j.ServiceDiscoveryConfigs[0].(discovery.StaticConfig)[0]
			lb := labels.NewBuilder(labels.EmptyLabels())
			pts, errs := promscrape.TargetsFromGroup(tg, j.scrape, nil, lb)
			if len(errs) > 0 || len(pts) != 1 {
				t.Fatalf("targets %v, errors %v", pts, errs)
			}
			s, _ := New(Options{Writer: discardWriter{}})
			tgt := newTarget(&pool{s: s, cfg: j}, pts[0], lb)
			if tgt.service != tc.wantService || !maps.Equal(tgt.plabels, tc.wantLabels) {
				t.Errorf("service %q labels %v, want %q %v", tgt.service, tgt.plabels, tc.wantService, tc.wantLabels)
			}
			if got := tgt.status[storage.ProfileCPU].url; got != tc.wantCPU {
				t.Errorf("cpu url %q, want %q", got, tc.wantCPU)
			}
		})
	}
}

// runScraper runs s until the returned stop, which reports Run's error.
func runScraper(t *testing.T, s *Scraper) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
