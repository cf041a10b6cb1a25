package configcentre

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeVigil emulates GET /api/v1/config/{ns}/{group}/{key} with the shapes
// of vigil's configapi: the envelope, 404 for an item never put, the long
// poll on md5= (answer on change, 304 with no body at wait), and a 503
// with Retry-After when told to fail.
type fakeVigil struct {
	mu      sync.Mutex
	items   map[string]Snapshot // by "ns/group/key"
	grayFor string              // instance id that gets the gray content
	gray    map[string]Snapshot
	changed chan struct{}
	fail503 int // answer this many requests with 503 first
	polls   atomic.Int64
	queries chan string // raw query of each request, when not nil
	lastReq atomic.Pointer[http.Request]
}

func newFakeVigil() *fakeVigil {
	return &fakeVigil{items: map[string]Snapshot{}, gray: map[string]Snapshot{}, changed: make(chan struct{})}
}

func sum(content string) string {
	h := md5.Sum([]byte(content))
	return hex.EncodeToString(h[:])
}

// put publishes content as item's next formal version and wakes watchers.
func (f *fakeVigil) put(item, content, contentType string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.items[item]
	f.items[item] = Snapshot{Content: content, ContentType: contentType, Version: prev.Version + 1, MD5: sum(content)}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeVigil) resolve(item, instance string) (Snapshot, bool, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok := f.gray[item]; ok && instance == f.grayFor {
		return g, true, f.changed
	}
	s, ok := f.items[item]
	return s, ok, f.changed
}

func writeEnvelope(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeVigil) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.lastReq.Store(r)
	if f.queries != nil {
		f.queries <- r.URL.RawQuery
	}
	item, ok := strings.CutPrefix(r.URL.Path, "/api/v1/config/")
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	if f.fail503 > 0 {
		f.fail503--
		f.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		writeEnvelope(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "errorType": "unavailable", "error": "no leader"})
		return
	}
	f.mu.Unlock()
	q := r.URL.Query()
	instance := q.Get("instance")
	held, watching := q.Get("md5"), q.Has("md5")
	if watching {
		f.polls.Add(1)
	}
	wait := 30 * time.Second
	if s := q.Get("wait"); s != "" {
		wait, _ = time.ParseDuration(s)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s, found, changed := f.resolve(item, instance)
		switch {
		case found && (!watching || s.MD5 != held):
			writeEnvelope(w, http.StatusOK, map[string]any{"status": "success", "data": s})
			return
		case !found && !watching:
			writeEnvelope(w, http.StatusNotFound, map[string]string{"status": "error", "errorType": "not_found", "error": "no item " + item})
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestClient(t *testing.T, url string, mutate func(*Options)) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{
		URL: url, Instance: "pod-a", Labels: map[string]string{"service.version": "1.2.0", "zone": "eu-1"},
		Wait: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: quietLogger(), Registerer: reg,
	}
	if mutate != nil {
		mutate(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, reg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appliedMetric(item, version, cohort string) string {
	return "vigil_config_applied_info{cohort=\"" + cohort + "\",item=\"" + item + "\",version=\"" + version + "\"} 1"
}

func TestWatchGetAndChange(t *testing.T) {
	f := newFakeVigil()
	f.put("shop/payment/settings", "timeout: 2s\nflag: false\n", "yaml")
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, reg := newTestClient(t, srv.URL, func(o *Options) { o.BearerToken = "s3cret" })

	v, err := c.Watch("shop", "payment", "settings")
	if err != nil {
		t.Fatal(err)
	}
	s := v.Get()
	if s.Version != 1 || s.Content != "timeout: 2s\nflag: false\n" || s.MD5 != sum(s.Content) || s.Gray || s.FromCache {
		t.Fatalf("Get after Watch = %+v", s)
	}
	r := f.lastReq.Load()
	if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got)
	}
	q := r.URL.Query()
	if q.Get("instance") != "pod-a" || q.Get("label.service.version") != "1.2.0" || q.Get("label.zone") != "eu-1" {
		t.Errorf("query = %s, want the instance and labels", r.URL.RawQuery)
	}
	var settings struct {
		Timeout string
		Flag    bool
	}
	if err := v.Decode(&settings); err != nil || settings.Timeout != "2s" || settings.Flag {
		t.Fatalf("Decode = %+v, %v", settings, err)
	}

	var mu sync.Mutex
	var calls []Snapshot
	v.OnChange(func(s Snapshot) {
		mu.Lock()
		calls = append(calls, s)
		mu.Unlock()
	})
	type cfg struct {
		Timeout string `yaml:"timeout"`
		Flag    bool   `yaml:"flag"`
	}
	typed := make(chan cfg, 4)
	Of[cfg](v).OnChange(func(x cfg, _ Snapshot) { typed <- x })

	// Let a poll reach 304 at least once, then change the value.
	waitFor(t, "a second poll", func() bool { return f.polls.Load() >= 2 })
	f.put("shop/payment/settings", "timeout: 5s\nflag: true\n", "yaml")
	waitFor(t, "the change", func() bool { return v.Get().Version == 2 })
	if x := <-typed; x.Timeout != "5s" || !x.Flag {
		t.Errorf("typed OnChange got %+v", x)
	}
	// More polls answer 304; the callback must not run again.
	n := f.polls.Load()
	waitFor(t, "two more polls", func() bool { return f.polls.Load() >= n+2 })
	mu.Lock()
	if len(calls) != 1 || calls[0].Version != 2 || calls[0].Content != "timeout: 5s\nflag: true\n" {
		t.Errorf("OnChange calls = %+v, want one with version 2", calls)
	}
	mu.Unlock()

	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_config_applied_info The configuration version each watched item applies (1), and whether it is the item's gray or formal version.
# TYPE vigil_config_applied_info gauge
`+appliedMetric("shop/payment/settings", "2", "formal")+"\n"), "vigil_config_applied_info"); err != nil {
		t.Error(err)
	}
	got, _, err := Of[cfg](v).Get()
	if err != nil || got.Timeout != "5s" {
		t.Errorf("Of.Get = %+v, %v", got, err)
	}
}

func TestGrayCohortMetric(t *testing.T) {
	f := newFakeVigil()
	f.put("shop/payment/flags", `{"new_checkout":false}`, "json")
	f.grayFor = "pod-a"
	f.gray["shop/payment/flags"] = Snapshot{Content: `{"new_checkout":true}`, ContentType: "json", Version: 2, MD5: sum(`{"new_checkout":true}`), Gray: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, reg := newTestClient(t, srv.URL, nil)
	v, err := c.Watch("shop", "payment", "flags")
	if err != nil {
		t.Fatal(err)
	}
	var flags struct {
		NewCheckout bool `json:"new_checkout"`
	}
	if err := v.Decode(&flags); err != nil || !flags.NewCheckout || !v.Get().Gray {
		t.Fatalf("gray value: %+v %+v %v", v.Get(), flags, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_config_applied_info The configuration version each watched item applies (1), and whether it is the item's gray or formal version.
# TYPE vigil_config_applied_info gauge
`+appliedMetric("shop/payment/flags", "2", "gray")+"\n"), "vigil_config_applied_info"); err != nil {
		t.Error(err)
	}
	// Abort the gray: back to formal version 1, and the series follows.
	f.mu.Lock()
	delete(f.gray, "shop/payment/flags")
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	waitFor(t, "the abort", func() bool { return v.Get().Version == 1 })
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_config_applied_info The configuration version each watched item applies (1), and whether it is the item's gray or formal version.
# TYPE vigil_config_applied_info gauge
`+appliedMetric("shop/payment/flags", "1", "formal")+"\n"), "vigil_config_applied_info"); err != nil {
		t.Error(err)
	}
}

func TestRetryAfterOn503(t *testing.T) {
	f := newFakeVigil()
	f.put("a/b/c", "x", "text")
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	v, err := c.Watch("a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	// The next poll gets a 503 with Retry-After: 1; the client must wait
	// the second, not its own 10ms backoff.
	f.mu.Lock()
	f.fail503 = 1
	f.mu.Unlock()
	waitFor(t, "the 503", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.fail503 == 0
	})
	failedAt := time.Now()
	f.put("a/b/c", "y", "text")
	waitFor(t, "the change after the 503", func() bool { return v.Get().Content == "y" })
	if d := time.Since(failedAt); d < 400*time.Millisecond {
		t.Errorf("retried after %s, want Retry-After (1s, with jitter no less than half)", d)
	}
}

func TestItemPutLater(t *testing.T) {
	f := newFakeVigil()
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	v, err := c.Watch("a", "b", "later")
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Get(); s.Version != 0 {
		t.Fatalf("value of an item never put: %+v", s)
	}
	if err := v.Decode(&struct{}{}); err == nil {
		t.Error("Decode without a value succeeded")
	}
	got := make(chan Snapshot, 2)
	v.OnChange(func(s Snapshot) { got <- s })
	f.put("a/b/later", "hello", "text")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.Content != "hello" || s.Version != 1 {
		t.Errorf("OnChange got %+v", s)
	}
}

func TestDiskCacheWhenVigilIsDown(t *testing.T) {
	dir := t.TempDir()
	f := newFakeVigil()
	f.put("shop/payment/settings", "timeout: 2s\n", "yaml")
	srv := httptest.NewServer(f)
	c, _ := newTestClient(t, srv.URL, func(o *Options) { o.CacheDir = dir })
	if _, err := c.Watch("shop", "payment", "settings"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Close() // vigil is down from now on
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "shop~payment~settings.json" {
		t.Fatalf("cache dir holds %v (%v), want one file", entries, err)
	}

	// A restart while vigil is down starts from the cache.
	c2, reg := newTestClient(t, srv.URL, func(o *Options) { o.CacheDir = dir; o.StartTimeout = 200 * time.Millisecond })
	v, err := c2.Watch("shop", "payment", "settings")
	if err != nil {
		t.Fatal(err)
	}
	s := v.Get()
	if s.Version != 1 || s.Content != "timeout: 2s\n" || !s.FromCache {
		t.Fatalf("value while vigil is down = %+v, want the cached version 1", s)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_config_applied_info The configuration version each watched item applies (1), and whether it is the item's gray or formal version.
# TYPE vigil_config_applied_info gauge
`+appliedMetric("shop/payment/settings", "1", "formal")+"\n"), "vigil_config_applied_info"); err != nil {
		t.Error(err)
	}
	// Without a cache and without vigil there is no value, and no error:
	// the watch waits for one.
	c3, _ := newTestClient(t, srv.URL, func(o *Options) { o.StartTimeout = 200 * time.Millisecond })
	v3, err := c3.Watch("shop", "payment", "settings")
	if err != nil || v3.Get().Version != 0 {
		t.Fatalf("no cache, no vigil: %+v, %v", v3.Get(), err)
	}
}

func TestCacheConfirmedByServer(t *testing.T) {
	dir := t.TempDir()
	f := newFakeVigil()
	f.put("a/b/c", "one", "text")
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, func(o *Options) { o.CacheDir = dir })
	if _, err := c.Watch("a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Reading the cache at start and then the server's same value: no
	// OnChange, FromCache cleared.
	c2, _ := newTestClient(t, srv.URL, func(o *Options) { o.CacheDir = dir })
	v, err := c2.Watch("a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Get(); s.FromCache || s.Content != "one" {
		t.Errorf("after a reachable start: %+v", s)
	}
}

func TestInvalidItemAndURL(t *testing.T) {
	if _, err := New(Options{URL: "localhost:7070"}); err == nil {
		t.Error("New accepted a URL without a scheme")
	}
	c, _ := newTestClient(t, "http://127.0.0.1:1", nil)
	for _, parts := range [][3]string{{"", "b", "c"}, {"a", "b/c", "d"}, {"a", "b", strings.Repeat("k", 257)}} {
		if _, err := c.Watch(parts[0], parts[1], parts[2]); err == nil {
			t.Errorf("Watch%q succeeded", parts)
		}
	}
}

func TestCloseStopsWatches(t *testing.T) {
	f := newFakeVigil()
	f.put("a/b/c", "x", "text")
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, func(o *Options) { o.Wait = time.Minute })
	v, err := c.Watch("a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a long poll", func() bool { return f.polls.Load() >= 1 })
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end a pending long poll")
	}
	if v.Get().Content != "x" {
		t.Error("the value was lost at Close")
	}
	if _, err := c.Watch("a", "b", "d"); err == nil {
		t.Error("Watch after Close succeeded")
	}
}

func TestConcurrentWatchOfOneItem(t *testing.T) {
	f := newFakeVigil()
	f.put("a/b/c", "x", "text")
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	var wg sync.WaitGroup
	vals := make([]*Value, 8)
	for i := range vals {
		wg.Go(func() {
			v, err := c.Watch("a", "b", "c")
			if err != nil {
				t.Error(err)
				return
			}
			if v.Get().Content != "x" {
				t.Errorf("Watch returned before the first fetch: %+v", v.Get())
			}
			vals[i] = v
		})
	}
	wg.Wait()
	for _, v := range vals[1:] {
		if v != vals[0] {
			t.Fatal("two Values for one item")
		}
	}
}
