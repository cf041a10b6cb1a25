package logsapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage/memory"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// conformanceStore holds the storage suite's logs at their own epoch.
func conformanceStore(t *testing.T) *memory.Store {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	if err := st.WriteLogs(t.Context(), storagetest.LoadLogs(t, "logs.json", storagetest.FixtureEpoch)); err != nil {
		t.Fatal(err)
	}
	return st
}

func getPath(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rec
}

func TestHistogramGolden(t *testing.T) {
	epoch := storagetest.FixtureEpoch
	h := NewHandler(Options{Logs: conformanceStore(t), Now: func() time.Time { return epoch.Add(time.Minute) }})
	for _, tc := range []struct{ golden, query string }{
		// Default range (the hour before now) and step (one minute for an hour).
		{"histogram_default.golden.json", ""},
		{"histogram_step.golden.json", "start=" + epoch.Add(-3*time.Hour).Format(time.RFC3339) + "&step=3600"},
		{"histogram_filtered.golden.json", "step=5&severity=error&q=payment"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			rec := getPath(t, h, "/api/logs/histogram?"+tc.query)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			compareGolden(t, tc.golden, rec.Body.Bytes())
		})
	}
}

func TestHistogramBadRequests(t *testing.T) {
	h := NewHandler(Options{Logs: conformanceStore(t), Now: func() time.Time { return fixtureNow }})
	for _, tc := range []struct{ query, msg string }{
		{"step=0", "invalid step"},
		{"step=abc", "invalid step"},
		{"step=1&start=2000-01-01T00:00:00Z", "more than"},
		{"limit=5", "does not apply"},
		{"cursor=x", "does not apply"},
		{"severity=loud", "invalid severity"},
		{"q=%22open", "not closed"},
	} {
		rec := getPath(t, h, "/api/logs/histogram?"+tc.query)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", tc.query, rec.Code, rec.Body, tc.msg)
		}
	}
}

// Following next_cursor pages through exactly the records one large page holds.
func TestPaginationThroughHandler(t *testing.T) {
	epoch := storagetest.FixtureEpoch
	h := NewHandler(Options{Logs: conformanceStore(t), Now: func() time.Time { return epoch.Add(time.Minute) }})
	start := "start=" + epoch.Add(-3*time.Hour).Format(time.RFC3339)
	var all struct{ Data []record }
	if err := json.Unmarshal(getPath(t, h, "/api/logs?limit=100&"+start).Body.Bytes(), &all); err != nil {
		t.Fatal(err)
	}
	var paged []record
	cursor := ""
	for range 20 {
		rec := getPath(t, h, "/api/logs?limit=5&"+start+cursor)
		var page response
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != 200 {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		paged = append(paged, page.Data...)
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	if len(all.Data) != 12 || len(paged) != len(all.Data) {
		t.Fatalf("paged %d records, one page %d, want 12", len(paged), len(all.Data))
	}
	for i := range paged {
		if paged[i].Body != all.Data[i].Body || paged[i].Timestamp != all.Data[i].Timestamp {
			t.Errorf("record %d: paged %+v, want %+v", i, paged[i], all.Data[i])
		}
	}
	if rec := getPath(t, h, "/api/logs?cursor=garbage"); rec.Code != http.StatusBadRequest {
		t.Errorf("bad cursor: %d %s, want 400", rec.Code, rec.Body)
	}
}
