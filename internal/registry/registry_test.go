package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// clock is a settable time for the registry's Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest() (*Registry, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(Options{Now: c.now, DeregisterAfter: time.Minute}), c
}

func ttlInstance(id string, ttl, deregister time.Duration) Instance {
	return Instance{ID: id, Service: "shop", Address: "10.0.0.1", Port: 8080, Tags: []string{"v1"},
		Meta:   map[string]string{"version": "1.2.3"},
		Checks: []CheckSpec{{Type: TTL, TTL: ttl, DeregisterAfter: deregister}}}
}

func health(t *testing.T, r *Registry, id string) Status {
	t.Helper()
	es, _ := r.Entries("")
	for _, e := range es {
		if e.ID == id {
			return e.Health
		}
	}
	return ""
}

// TestTTL: a TTL check starts critical, a heartbeat sets its status and
// restarts the TTL, a check not refreshed within its TTL turns critical,
// and an instance critical for its deregister-after period is removed.
func TestTTL(t *testing.T) {
	type step struct {
		advance time.Duration
		update  Status // "": no heartbeat at this step
		want    Status // "": the instance is gone
	}
	for _, tc := range []struct {
		name       string
		deregister time.Duration
		steps      []step
	}{
		{"starts critical", 0, []step{{0, "", Critical}}},
		{"pass then expire", 0, []step{{0, Passing, Passing}, {9 * time.Second, "", Passing}, {time.Second, "", Critical}}},
		{"heartbeats keep it passing", 0, []step{{0, Passing, Passing}, {8 * time.Second, Passing, Passing}, {8 * time.Second, Passing, Passing}, {8 * time.Second, "", Passing}}},
		{"warn", 0, []step{{0, Warning, Warning}, {10 * time.Second, "", Critical}}},
		{"fail", 0, []step{{0, Passing, Passing}, {time.Second, Critical, Critical}}},
		{"removed after the default period", 0, []step{{0, Passing, Passing}, {10 * time.Second, "", Critical}, {59 * time.Second, "", Critical}, {time.Second, "", ""}}},
		{"removed after its own period", 30 * time.Second, []step{{0, Passing, Passing}, {10 * time.Second, "", Critical}, {30 * time.Second, "", ""}}},
		{"a heartbeat saves it", 0, []step{{10 * time.Second, "", Critical}, {40 * time.Second, Passing, Passing}, {30 * time.Second, "", Critical}, {20 * time.Second, "", Critical}, {20 * time.Second, "", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c := newTest()
			if err := r.Register(ttlInstance("shop-1", 10*time.Second, tc.deregister)); err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				c.advance(s.advance)
				r.Expire(c.t)
				if s.update != "" {
					if err := r.UpdateCheck("service:shop-1", s.update, ""); err != nil {
						t.Fatal(err)
					}
				}
				if got := health(t, r, "shop-1"); got != s.want {
					t.Fatalf("step %d: health %q, want %q", i, got, s.want)
				}
			}
		})
	}
}

func TestRegisterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Instance
	}{
		{"no name", Instance{ID: "x"}},
		{"bad port", Instance{Service: "s", Port: 70000}},
		{"TTL without TTL", Instance{Service: "s", Checks: []CheckSpec{{Type: TTL}}}},
		{"HTTP without URL", Instance{Service: "s", Checks: []CheckSpec{{Type: HTTP}}}},
		{"no type", Instance{Service: "s", Checks: []CheckSpec{{}}}},
		{"too many tags", Instance{Service: "s", Tags: make([]string, MaxTags+1)}},
		{"long meta value", Instance{Service: "s", Meta: map[string]string{"k": strings.Repeat("v", MaxMetaValueLen+1)}}},
		{"long name", Instance{Service: strings.Repeat("s", MaxStringLen+1)}},
		{"bad status", Instance{Service: "s", Checks: []CheckSpec{{Type: TTL, TTL: time.Second, Status: "fine"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTest()
			if err := r.Register(tc.in); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Register: %v, want ErrInvalid", err)
			}
			if es, _ := r.Entries(""); len(es) != 0 {
				t.Fatalf("registered %v", es)
			}
		})
	}
}

func TestDeregisterAndUnknown(t *testing.T) {
	r, _ := newTest()
	if err := r.Register(ttlInstance("shop-1", time.Second, 0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister("shop-1"); err != nil {
		t.Fatal(err)
	}
	if es, _ := r.Entries("shop"); len(es) != 0 {
		t.Fatalf("still there: %v", es)
	}
	if err := r.Deregister("shop-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Deregister: %v", err)
	}
	if err := r.UpdateCheck("service:shop-1", Passing, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateCheck: %v", err)
	}
}

func TestCheckIDsAndServices(t *testing.T) {
	r, _ := newTest()
	in := ttlInstance("a", time.Second, 0)
	in.Checks = append(in.Checks, CheckSpec{Type: HTTP, URL: "http://x/health"})
	if err := r.Register(in); err != nil {
		t.Fatal(err)
	}
	b := ttlInstance("b", time.Second, 0)
	b.Tags = []string{"canary", "v1"}
	if err := r.Register(b); err != nil {
		t.Fatal(err)
	}
	es, _ := r.Entries("shop")
	if len(es) != 2 || es[0].Checks[0].ID != "service:a:1" || es[0].Checks[1].ID != "service:a:2" || es[1].Checks[0].ID != "service:b" {
		t.Fatalf("entries %+v", es)
	}
	svcs, _ := r.Services()
	if got := svcs["shop"]; len(got) != 2 || got[0] != "canary" || got[1] != "v1" {
		t.Fatalf("services %v", svcs)
	}
}

// TestWatch: the index moves and watchers wake at a change, not at a
// heartbeat that changes nothing.
func TestWatch(t *testing.T) {
	r, c := newTest()
	for _, tc := range []struct {
		name   string
		change func() error
		wakes  bool
	}{
		{"register", func() error { return r.Register(ttlInstance("a", 10*time.Second, 0)) }, true},
		{"pass", func() error { return r.UpdateCheck("service:a", Passing, "") }, true},
		{"same heartbeat", func() error { return r.UpdateCheck("service:a", Passing, "") }, false},
		{"expiry", func() error { c.advance(10 * time.Second); r.Expire(c.t); return nil }, true},
		{"nothing to expire", func() error { c.advance(time.Second); r.Expire(c.t); return nil }, false},
		{"deregister", func() error { return r.Deregister("a") }, true},
	} {
		idx, ch := r.Watch()
		if err := tc.change(); err != nil {
			t.Fatal(err)
		}
		idx2, _ := r.Watch()
		woke := false
		select {
		case <-ch:
			woke = true
		default:
		}
		if woke != tc.wakes || (idx2 > idx) != tc.wakes {
			t.Errorf("%s: woke %v, index %d -> %d; want wake %v", tc.name, woke, idx, idx2, tc.wakes)
		}
	}
}

// TestRunnerProbesHTTP: the runner probes an HTTP check and records what
// the endpoint answered.
func TestRunnerProbesHTTP(t *testing.T) {
	code := make(chan int, 1)
	code <- http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c := <-code
		code <- c
		w.WriteHeader(c)
	}))
	defer srv.Close()
	r := New(Options{})
	if err := r.Register(Instance{ID: "a", Service: "shop", Checks: []CheckSpec{{Type: HTTP, URL: srv.URL, Interval: time.Second}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&Runner{Registry: r, Tick: 50 * time.Millisecond}).Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitHealth := func(want Status) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for health(t, r, "a") != want {
			if time.Now().After(deadline) {
				t.Fatalf("health %q, want %q", health(t, r, "a"), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitHealth(Passing)
	<-code
	code <- http.StatusInternalServerError
	waitHealth(Critical)
	<-code
	code <- http.StatusTooManyRequests
	waitHealth(Warning)
}
