package health

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func fixedClock() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

func ok(context.Context) error { return nil }

func failWith(msg string) func(context.Context) error {
	return func(context.Context) error { return errors.New(msg) }
}

// blockUntilDone simulates a hung dependency that only gives up when its
// context is cancelled, so timeouts are exercised without sleeping.
func blockUntilDone(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func serve(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestHealthzGolden(t *testing.T) {
	tests := []struct {
		golden   string
		register func(c *Checker)
		wantCode int
	}{
		{"healthz_down.golden.json", func(c *Checker) {
			c.Register("db", ok, Critical())
			c.Register("cache", failWith("connection refused"))
			c.Register("queue", blockUntilDone, Critical(), WithTimeout(10*time.Millisecond))
		}, http.StatusServiceUnavailable},
		{"healthz_degraded.golden.json", func(c *Checker) {
			c.Register("db", ok, Critical())
			c.Register("cache", failWith("connection refused"))
		}, http.StatusOK},
		{"healthz_ok.golden.json", func(c *Checker) {
			c.Register("db", ok, Critical())
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			c := New(Options{Now: fixedClock})
			tt.register(c)
			code, body := serve(t, c.Healthz())
			if code != tt.wantCode {
				t.Fatalf("status code = %d, want %d", code, tt.wantCode)
			}
			golden := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(golden, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if body != string(want) {
				t.Errorf("healthz body mismatch\n got: %s\nwant: %s", body, want)
			}
		})
	}
}

func TestHealthzStatusCodes(t *testing.T) {
	type reg struct {
		name     string
		fn       func(context.Context) error
		critical bool
	}
	tests := []struct {
		name       string
		checks     []reg
		wantCode   int
		wantStatus Status
	}{
		{"no checks", nil, http.StatusOK, StatusOK},
		{"all ok", []reg{{"db", ok, true}, {"cache", ok, false}}, http.StatusOK, StatusOK},
		{"non-critical fails", []reg{{"db", ok, true}, {"cache", failWith("x"), false}}, http.StatusOK, StatusDegraded},
		{"critical fails", []reg{{"db", failWith("x"), true}, {"cache", ok, false}}, http.StatusServiceUnavailable, StatusDown},
		{"both fail", []reg{{"db", failWith("x"), true}, {"cache", failWith("y"), false}}, http.StatusServiceUnavailable, StatusDown},
		{"critical panics", []reg{{"db", func(context.Context) error { panic("boom") }, true}}, http.StatusServiceUnavailable, StatusDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Options{Now: fixedClock})
			for _, r := range tt.checks {
				var opts []CheckOption
				if r.critical {
					opts = append(opts, Critical())
				}
				c.Register(r.name, r.fn, opts...)
			}
			code, body := serve(t, c.Healthz())
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			var rep Report
			if err := json.Unmarshal([]byte(body), &rep); err != nil {
				t.Fatalf("decode %q: %v", body, err)
			}
			if rep.Status != tt.wantStatus {
				t.Errorf("status = %q, want %q", rep.Status, tt.wantStatus)
			}
			if len(rep.Components) != len(tt.checks) {
				t.Errorf("got %d components, want %d", len(rep.Components), len(tt.checks))
			}
		})
	}
}

func TestReadyzStatusCodes(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(c *Checker)
		wantCode int
		wantBody string
	}{
		{"starting", func(*Checker) {}, http.StatusServiceUnavailable, "starting"},
		{"ready", func(c *Checker) { c.SetReady(true) }, http.StatusOK, "ok"},
		{"ready then unready", func(c *Checker) { c.SetReady(true); c.SetReady(false) }, http.StatusServiceUnavailable, "starting"},
		{"shutdown", func(c *Checker) { c.SetReady(true); c.Shutdown() }, http.StatusServiceUnavailable, "shutting down"},
		{"set ready after shutdown", func(c *Checker) { c.Shutdown(); c.SetReady(true) }, http.StatusServiceUnavailable, "shutting down"},
		{"critical check fails", func(c *Checker) {
			c.SetReady(true)
			c.Register("db", failWith("down"), Critical())
		}, http.StatusServiceUnavailable, "[db]"},
		{"critical check times out", func(c *Checker) {
			c.SetReady(true)
			c.Register("db", blockUntilDone, Critical(), WithTimeout(time.Millisecond))
		}, http.StatusServiceUnavailable, "[db]"},
		{"non-critical check fails", func(c *Checker) {
			c.SetReady(true)
			c.Register("cache", failWith("down"))
		}, http.StatusOK, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Options{})
			tt.setup(c)
			code, body := serve(t, c.Readyz())
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body %q does not contain %q", body, tt.wantBody)
			}
		})
	}
}

func TestLivezIgnoresChecksAndShutdown(t *testing.T) {
	c := New(Options{})
	c.Register("db", failWith("down"), Critical())
	c.Shutdown()
	if code, _ := serve(t, c.Livez()); code != http.StatusOK {
		t.Fatalf("livez = %d, want 200", code)
	}
}

func TestCheckTimeoutReportsError(t *testing.T) {
	c := New(Options{DefaultTimeout: 5 * time.Millisecond})
	c.Register("slow", blockUntilDone, Critical())
	// A check that ignores its context entirely must still be reported.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c.Register("stuck", func(context.Context) error { <-release; return nil }, WithTimeout(time.Millisecond))

	rep := c.Check(t.Context())
	if rep.Status != StatusDown {
		t.Fatalf("status = %q, want down", rep.Status)
	}
	for _, name := range []string{"slow", "stuck"} {
		got := rep.Components[name]
		if got.Status != StatusDown || !strings.Contains(got.Error, ErrCheckTimeout.Error()) {
			t.Errorf("%s = %+v, want down with timeout error", name, got)
		}
	}
	if want := "after 5ms"; !strings.Contains(rep.Components["slow"].Error, want) {
		t.Errorf("slow error %q should mention the default timeout %q", rep.Components["slow"].Error, want)
	}
}

func TestChecksRunConcurrently(t *testing.T) {
	// Each check waits until the other has started; run sequentially this
	// would deadlock until the (long) timeout and both would fail.
	c := New(Options{DefaultTimeout: time.Minute})
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	c.Register("a", func(ctx context.Context) error {
		close(aStarted)
		select {
		case <-bStarted:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	c.Register("b", func(ctx context.Context) error {
		close(bStarted)
		select {
		case <-aStarted:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if rep := c.Check(t.Context()); rep.Status != StatusOK {
		t.Fatalf("report = %+v, want ok", rep)
	}
}

func TestLatencyUsesInjectedClock(t *testing.T) {
	base := fixedClock()
	calls := 0
	c := New(Options{Now: func() time.Time {
		calls++
		return base.Add(time.Duration(calls-1) * 12 * time.Millisecond)
	}})
	c.Register("db", ok)
	if got := c.Check(t.Context()).Components["db"].LatencyMS; got != 12 {
		t.Fatalf("latency_ms = %d, want 12", got)
	}
}

func TestMount(t *testing.T) {
	c := New(Options{})
	c.SetReady(true)
	mux := http.NewServeMux()
	c.Mount(mux)
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, rec.Code)
		}
	}
}

func TestRegisterPanicsOnInvalidInput(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Register with nil check did not panic")
		}
	}()
	New(Options{}).Register("x", nil)
}

func BenchmarkHealthz(b *testing.B) {
	c := New(Options{})
	c.Register("db", ok, Critical())
	c.Register("cache", ok)
	h := c.Healthz()
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
