package jaegerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// searchStore holds the conformance suite's fixtures at their own epoch,
// so the golden answers do not depend on the day the test runs.
func searchStore(t *testing.T) *memory.Store {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	for _, f := range []string{"traces_rich.json", "traces_split_a.json", "traces_split_b.json"} {
		if err := st.WriteTraces(t.Context(), storagetest.LoadTraces(t, f, storagetest.FixtureEpoch)); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

type fixedDeps []storage.Dependency

func (d fixedDeps) Dependencies(_ context.Context, end time.Time, lookback time.Duration) ([]storage.Dependency, error) {
	// Encode the window into the answer so the test sees what was asked.
	out := append([]storage.Dependency(nil), d...)
	out = append(out, storage.Dependency{Parent: end.UTC().Format(time.RFC3339), Child: lookback.String()})
	return out, nil
}

func usParam(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func TestSearchGolden(t *testing.T) {
	epoch := storagetest.FixtureEpoch
	h := NewHandler(Options{
		Traces:       searchStore(t),
		Dependencies: fixedDeps{{Parent: "checkout", Child: "payments", CallCount: 7}},
		Now:          func() time.Time { return epoch.Add(time.Minute) },
	})
	window := "&start=" + usParam(epoch.Add(-time.Minute)) + "&end=" + usParam(epoch.Add(time.Minute))
	tests := []struct{ golden, path string }{
		{"services.golden.json", "/api/services"},
		{"service_operations.golden.json", "/api/services/checkout/operations"},
		{"operations.golden.json", "/api/operations?service=checkout"},
		{"operations_server.golden.json", "/api/operations?service=checkout&spanKind=server"},
		{"search_traces.golden.json", "/api/traces?service=payments&limit=20" + window},
		{"search_tags.golden.json", "/api/traces?service=checkout&tags=" + url.QueryEscape(`{"db.system":"postgresql"}`) + window},
		{"search_by_ids.golden.json", "/api/traces?traceID=c0ffee00c0ffee00c0ffee00c0ffee00&traceID=00000000000000000000000000000001"},
		{"summaries.golden.json", "/api/trace-summaries?limit=10" + window},
		{"summaries_min_duration.golden.json", "/api/trace-summaries?minDuration=200ms" + window},
		{"dependencies.golden.json", "/api/dependencies?endTs=" + strconv.FormatInt(epoch.UnixMilli(), 10) + "&lookback=3600000"},
		{"dependencies_default.golden.json", "/api/dependencies"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tt.path)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d %s", tt.path, rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			compareGolden(t, tt.golden, rec.Body.Bytes())
		})
	}
}

// The default window is the hour before now: fixtures an hour and a half
// old are outside it.
func TestSearchDefaultWindow(t *testing.T) {
	epoch := storagetest.FixtureEpoch
	for _, tc := range []struct {
		now  time.Time
		want int
	}{{epoch.Add(30 * time.Minute), 3}, {epoch.Add(90 * time.Minute), 0}} {
		h := NewHandler(Options{Traces: searchStore(t), Now: func() time.Time { return tc.now }})
		rec := get(t, h, http.MethodGet, "/api/trace-summaries")
		var got struct{ Data []summary }
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		if len(got.Data) != tc.want {
			t.Errorf("now=%s: %d traces, want %d", tc.now, len(got.Data), tc.want)
		}
	}
}

func TestSearchBadRequests(t *testing.T) {
	h := NewHandler(Options{Traces: searchStore(t)})
	tests := []struct{ path, msg string }{
		{"/api/traces?limit=-1", "limit"},
		{"/api/traces?limit=x", "limit"},
		{"/api/traces?start=abc", "start"},
		{"/api/traces?end=1.5", "end"},
		{"/api/traces?start=2000&end=1000", "not before end"},
		{"/api/traces?minDuration=fast", "minDuration"},
		{"/api/traces?maxDuration=-1s", "maxDuration"},
		{"/api/traces?minDuration=2s&maxDuration=1s", "below minDuration"},
		{"/api/traces?lookback=yesterday", "lookback"},
		{"/api/traces?tags=not-json", "JSON object"},
		{"/api/traces?tags=" + url.QueryEscape(`{"a":{"b":1}}`), "value must be"},
		{"/api/traces?tag=novalue", "key:value"},
		{"/api/traces?" + manyTags(storage.MaxTraceTags+1), "at most 64"},
		{"/api/traces?tags=" + url.QueryEscape(`{"span.kind":"sideways"}`), "span.kind"},
		{"/api/trace-summaries?tags=" + url.QueryEscape(`{"error":"maybe"}`), "error"},
		{"/api/traces?traceID=xyz", "not hexadecimal"},
		{"/api/operations", "service is required"},
		{"/api/operations?service=a&spanKind=weird", "spanKind"},
		{"/api/dependencies?endTs=soon", "endTs"},
		{"/api/dependencies?lookback=0", "lookback"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tt.path)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("GET %s = %d, want 400: %s", tt.path, rec.Code, rec.Body)
			}
			var resp response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Errors) != 1 {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if !strings.Contains(resp.Errors[0].Msg, tt.msg) {
				t.Errorf("message %q does not mention %q", resp.Errors[0].Msg, tt.msg)
			}
		})
	}
	if rec := get(t, h, http.MethodPost, "/api/services"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/services = %d, want 405", rec.Code)
	}
}

// manyTags is a query string of n distinct tag=k:v filters.
func manyTags(n int) string {
	v := url.Values{}
	for i := range n {
		v.Add("tag", fmt.Sprintf("k%d:v", i))
	}
	return v.Encode()
}
