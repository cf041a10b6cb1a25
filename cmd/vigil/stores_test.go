package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/units"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// What the Prometheus API answers where the metric backends differ: the
// embedded TSDB serves its status pages and admin endpoints, ClickHouse
// has neither and says so; neither keeps exemplars from this request, and
// both answer the exemplar query with an empty list.
func TestMetricCapabilitiesPerBackend(t *testing.T) {
	tests := []struct {
		name  string
		extra func(t *testing.T) []string
		// Answers: status code and a substring of the body.
		statusTSDB, admin answer
	}{
		{
			name:       "embedded",
			extra:      func(*testing.T) []string { return nil },
			statusTSDB: answer{http.StatusOK, `"headStats":`},
			admin:      answer{http.StatusNoContent, ""},
		},
		{
			name: "clickhouse",
			extra: func(t *testing.T) []string {
				ch := chtest.Start(t)
				cfg := filepath.Join(t.TempDir(), "vigil.yaml")
				if err := os.WriteFile(cfg, fmt.Appendf(nil, "storage:\n  backend: clickhouse\n  clickhouse:\n    dsn: %s\n", ch.DSN("vigil")), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"--config", cfg}
			},
			statusTSDB: answer{http.StatusInternalServerError, "TSDB status not available"},
			admin:      answer{http.StatusNotFound, "admin endpoints are off"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), append(tt.extra(t), "--enable-admin")...)
			do := func(method, path string) answer {
				req, err := http.NewRequestWithContext(t.Context(), method, s.httpURL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return answer{resp.StatusCode, readAll(t, resp)}
			}
			for _, c := range []struct {
				method, path string
				want         answer
			}{
				{http.MethodGet, "/api/v1/status/tsdb", tt.statusTSDB},
				{http.MethodPost, "/api/v1/admin/tsdb/clean_tombstones", tt.admin},
				{http.MethodGet, "/api/v1/query_exemplars?query=up&start=0&end=1", answer{http.StatusOK, `"data":[]`}},
			} {
				if got := do(c.method, c.path); got.code != c.want.code || !strings.Contains(got.body, c.want.body) {
					t.Errorf("%s %s: HTTP %d %s, want HTTP %d with %q", c.method, c.path, got.code, got.body, c.want.code, c.want.body)
				}
			}
		})
	}
}

type answer struct {
	code int
	body string
}

// The recent traces the embedded store holds take the store's default,
// or under a memory cap a sixteenth of what DuckDB leaves of it.
func TestRecentTraceBytes(t *testing.T) {
	for _, c := range []struct {
		limit units.Base2Bytes
		duck  string
		want  int64
	}{
		{0, "1GB", 0},
		{4 << 30, "1GB", embedded.DefaultRecentTraceBytes},
		{1 << 30, "512MB", 32 << 20},
		{512 << 20, "512MB", -1},
	} {
		cfg := &config.Config{Limits: config.Limits{MemoryLimit: c.limit}, Storage: config.Storage{DuckDBMemoryLimit: c.duck}}
		if got := recentTraceBytes(cfg); got != c.want {
			t.Errorf("memory limit %v, DuckDB %s: %d bytes, want %d", c.limit, c.duck, got, c.want)
		}
	}
}
