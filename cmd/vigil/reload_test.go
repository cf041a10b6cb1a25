package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

func TestRestartPending(t *testing.T) {
	running := querylimit.Limits{Timeout: 2 * time.Minute, MaxSamples: 1000, MaxSeries: 100,
		MaxResponseBytes: 1 << 20, MaxConcurrency: 4, QueueWait: 5 * time.Second, MaxTraceSpans: 50}
	for _, tc := range []struct {
		name   string
		change func(*querylimit.Limits)
		want   []string
	}{
		{"unchanged", func(*querylimit.Limits) {}, nil},
		{"timeout", func(l *querylimit.Limits) { l.Timeout = 10 * time.Second },
			[]string{"query.timeout (running 2m0s, configured 10s)"}},
		{"samples and concurrency", func(l *querylimit.Limits) { l.MaxSamples, l.MaxConcurrency = 2000, 8 },
			[]string{"query.max_samples (running 1000, configured 2000)", "query.max_concurrency (running 4, configured 8)"}},
		{"series, answer size and spans", func(l *querylimit.Limits) { l.MaxSeries, l.MaxResponseBytes, l.MaxTraceSpans = 1, 2, 3 },
			[]string{"query.max_series (running 100, configured 1)", "query.max_response_bytes (running 1048576, configured 2)",
				"query.max_trace_spans (running 50, configured 3)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := running
			tc.change(&next)
			if got := restartPending(running, next); !slices.Equal(got, tc.want) {
				t.Errorf("restartPending = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRestartSections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*config.Config)
		want   []string
	}{
		{"unchanged", func(*config.Config) {}, nil},
		{"listener and retention", func(c *config.Config) {
			c.HTTPAddr, c.Retention = "127.0.0.1:1", model.Duration(time.Hour)
		}, []string{"http_addr", "retention"}},
		{"storage and ingest", func(c *config.Config) {
			c.Storage.Backend = "clickhouse"
			c.Ingest.MaxRequestsInFlight++
		}, []string{"storage", "ingest"}},
		{"a cluster added", func(c *config.Config) { c.Cluster = &config.Cluster{NodeID: "n1"} }, []string{"cluster"}},
		// What a reload applies is not listed.
		{"reloadable parts", func(c *config.Config) {
			c.AlertmanagerConfigFile, c.WebConfigFile = "am.yml", "web.yml"
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running, next := new(config.Config), new(config.Config)
			tc.change(next)
			if got := restartSections(running, next); !slices.Equal(got, tc.want) {
				t.Errorf("restartSections = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReloadHandler(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pending  []string
		err      error
		code     int
		wantBody string
	}{
		{"applied", nil, nil, http.StatusOK, "configuration reloaded\n"},
		{"applied, a limit waits for a restart", []string{"query.timeout (running 2m0s, configured 10s)"}, nil, http.StatusOK,
			"configuration reloaded\nneeds a restart to take effect: query.timeout (running 2m0s, configured 10s)\n"},
		{"refused", nil, errors.New("rules: bad"), http.StatusBadRequest,
			"reload failed, the previous configuration keeps running: rules: bad\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := reloadHandler(func(context.Context) ([]string, error) { return tc.pending, tc.err })
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/reload", nil))
			if rec.Code != tc.code || rec.Body.String() != tc.wantBody {
				t.Errorf("POST /-/reload: %d %q, want %d %q", rec.Code, rec.Body.String(), tc.code, tc.wantBody)
			}
		})
	}
}

// TestReloadReportsQueryLimitsNeedRestart: the query limits are fixed at
// start-up, so a reload that changes one says so instead of answering as
// if it had been applied, and the running limit is still the old one.
func TestReloadReportsQueryLimitsNeedRestart(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "query:\n  timeout: 1m\n")
	s := startServer(t, t.TempDir(), "--config", cfg, "--enable-admin")
	if err := os.WriteFile(cfg, []byte("query:\n  timeout: 10s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "needs a restart to take effect: query.timeout (running 1m0s, configured 10s)") {
		t.Errorf("reload changing query.timeout: %d %q", resp.StatusCode, body)
	}
	// The server logs before it answers, but its output reaches s.logs
	// through a pipe, after the answer at times.
	waitFor(t, "the warning in the log", 10*time.Second, func() bool {
		return strings.Contains(s.logs.String(), "some settings take effect only after a restart")
	}, s.logs.String)
	// The same file again: nothing pending beyond the limit (the flags
	// the server started with are applied to the file read again).
	resp, err = http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "configuration reloaded\nneeds a restart to take effect: query.timeout (running 1m0s, configured 10s)\n" {
		t.Errorf("reload of the same file: %q", body)
	}
	// A section built at start-up changed: named, its values not shown.
	if err := os.WriteFile(cfg, []byte("query:\n  timeout: 1m\nretention: 48h\ningest:\n  max_requests_in_flight: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "configuration reloaded\nneeds a restart to take effect: retention\nneeds a restart to take effect: ingest\n" {
		t.Errorf("reload changing retention and ingest: %q", body)
	}
}
